"""Writes Parquet files with pyarrow for the schema fingerprint interop test
(tests/interop.rs): `same.parquet` holds the table the test also writes with arrow-rs,
`wide.parquet` covers the types the canonical form spells, and each `changed-*.parquet`
differs from `same.parquet` in one way a reader would notice."""
import datetime
import decimal
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def same_schema(**change):
    fields = [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("price", pa.decimal128(10, 2)),
        pa.field("at", pa.timestamp("us", tz="UTC")),
        pa.field("tags", pa.list_(pa.string())),
    ]
    for i, f in enumerate(fields):
        if f.name in change:
            fields[i] = change[f.name]
    return pa.schema(fields)


def same_table(schema):
    at = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
    columns = {
        "id": [1, 2],
        "name": ["a", None],
        "price": [decimal.Decimal("1.50"), None],
        "at": [at, None],
        "tags": [["x", "y"], []],
    }
    return pa.table({f.name: columns[f.name] for f in schema}, schema=schema)


def main(out: str) -> None:
    pq.write_table(same_table(same_schema()), f"{out}/same.parquet")
    base = same_table(same_schema())
    changed = {
        "renamed": base.rename_columns(["id", "label", "price", "at", "tags"]),
        "retyped": base.cast(same_schema(id=pa.field("id", pa.int32(), nullable=False))),
        "nullable": base.cast(same_schema(id=pa.field("id", pa.int64()))),
        "reordered": base.select(["name", "id", "price", "at", "tags"]),
        "scale": base.cast(same_schema(price=pa.field("price", pa.decimal128(10, 3)))),
    }
    for label, table in changed.items():
        pq.write_table(table, f"{out}/changed-{label}.parquet")
    # Dictionary-encoded strings and large types: same logical table, same fingerprint.
    t = same_table(same_schema())
    t = t.set_column(1, "name", t.column("name").dictionary_encode())
    t = t.set_column(4, "tags", t.column("tags").cast(pa.large_list(pa.large_string())))
    pq.write_table(t, f"{out}/same-encoded.parquet")
    wide = pa.table(
        {
            "b": pa.array([True], pa.bool_()),
            "i8": pa.array([1], pa.int8()),
            "u32": pa.array([1], pa.uint32()),
            "f32": pa.array([1.0], pa.float32()),
            "f64": pa.array([1.0], pa.float64()),
            "bin": pa.array([b"x"], pa.binary()),
            "fsb": pa.array([b"xy"], pa.binary(2)),
            "d32": pa.array([datetime.date(2024, 1, 1)], pa.date32()),
            "t64": pa.array([datetime.time(1, 2, 3)], pa.time64("us")),
            "t32": pa.array([datetime.time(1, 2, 3)], pa.time32("ms")),
            "dur": pa.array([datetime.timedelta(seconds=3)], pa.duration("ns")),
            "ts": pa.array([datetime.datetime(2024, 1, 1)], pa.timestamp("ns")),
            "tz": pa.array([datetime.datetime(2024, 1, 1)], pa.timestamp("ms", tz="Europe/Paris")),
            "m": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
            "fsl": pa.array([[1, 2]], pa.list_(pa.int16(), 2)),
            "st": pa.array([{"a": 1, "b": "x"}],
                           pa.struct([pa.field("a", pa.int64(), nullable=False), ("b", pa.string())])),
            "d256": pa.array([decimal.Decimal("1.5")], pa.decimal256(50, 1)),
            "ünï côdé": pa.array([1], pa.int64()),
        }
    )
    pq.write_table(wide, f"{out}/wide.parquet")


if __name__ == "__main__":
    main(sys.argv[1])
