"""Parquet files written by pyarrow for the lake CLI tests (tests/cli.rs).

    write_tree.py tree DIR     a tree: nested directories, spaces and unicode in names
    write_tree.py same FILE    one more file with the tree's schema (3 rows)
    write_tree.py other FILE   a file with another schema
"""
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), ("city", pa.string())])


def table(start, rows):
    return pa.table(
        {"id": list(range(start, start + rows)), "city": [f"c{i}" for i in range(rows)]},
        schema=SCHEMA,
    )


def main(mode, target):
    if mode == "tree":
        files = {
            "a.parquet": 10,
            "2024/b.parquet": 20,
            "2024/sp ace/ünï cødé.parquet": 5,
            "2024/01/deep.parquet": 7,
        }
        start = 0
        for rel, rows in files.items():
            path = os.path.join(target, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            pq.write_table(table(start, rows), path)
            start += rows
        with open(os.path.join(target, "notes.txt"), "w") as f:
            f.write("not parquet\n")
    elif mode == "same":
        pq.write_table(table(1000, 3), target)
    elif mode == "other":
        pq.write_table(pa.table({"id": pa.array([1], pa.int32())}), target)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
