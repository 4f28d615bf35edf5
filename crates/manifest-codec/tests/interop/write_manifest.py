"""Writes a manifest file with pyarrow (nullable fields, pyarrow's own list layout), so the
Rust decoder is shown to read files from another writer. Used by tests/interop.rs."""
import datetime
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def main(path: str, compression: str) -> None:
    ts = pa.timestamp("us", tz="UTC")
    obj = pa.struct([("key", pa.string()), ("size", pa.int64())])
    schema = pa.schema(
        [
            ("dataset_id", pa.string()),
            ("name", pa.string()),
            ("schema_fingerprint", pa.string()),
            ("version", pa.int64()),
            ("objects", pa.list_(obj)),
            ("row_count", pa.int64()),
            ("created_at", ts),
            ("updated_at", ts),
        ],
        metadata={"catalogd.manifest.format_version": "1"},
    )
    when = datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc)
    table = pa.table(
        {
            "dataset_id": ["1f2906ae-f562-564c-aa86-f487c2afa750"],
            "name": ["orders"],
            "schema_fingerprint": ["fp-from-python"],
            "version": [3],
            "objects": [[{"key": "lake/o/1.parquet", "size": 10}, {"key": "lake/o/2.parquet", "size": 20}]],
            "row_count": [None],
            "created_at": [when],
            "updated_at": [when],
        },
        schema=schema,
    )
    pq.write_table(table, path, compression=compression)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
