"""Reads a manifest file with pyarrow and prints what an independent reader sees, as JSON.

Used by tests/interop.rs; it deliberately uses only pyarrow's public API.
"""
import json
import sys

import pyarrow.parquet as pq


def main(path: str) -> None:
    pf = pq.ParquetFile(path)
    table = pf.read()
    meta = {k.decode(): v.decode() for k, v in (pf.metadata.metadata or {}).items()}
    schema = {f.name: str(f.type) for f in table.schema}
    row = table.to_pylist()
    created = table.column("created_at").type
    out = {
        "num_rows": table.num_rows,
        "format_version": meta.get("catalogd.manifest.format_version"),
        "schema": schema,
        "timestamp_unit": created.unit,
        "timestamp_tz": created.tz,
        "created_at_us": table.column("created_at").cast("int64").to_pylist()[0],
        "updated_at_us": table.column("updated_at").cast("int64").to_pylist()[0],
        "created_at_iso": row[0]["created_at"].isoformat(),
        "dataset_id": row[0]["dataset_id"],
        "name": row[0]["name"],
        "schema_fingerprint": row[0]["schema_fingerprint"],
        "version": row[0]["version"],
        "objects": row[0]["objects"],
        "row_count": row[0]["row_count"],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
