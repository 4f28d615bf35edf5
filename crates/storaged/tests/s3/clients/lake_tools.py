"""pyarrow, polars and DuckDB against storaged's S3 face, each writing and reading Parquet.

Usage: lake_tools.py TOOL ENDPOINT NATIVE_URL (TOOL: pyarrow, polars or duckdb). Asserts as
it goes; prints one JSON line.
"""
import json
import os
import sys
import urllib.request

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

tool, endpoint, native = sys.argv[1:4]
host = endpoint.removeprefix("http://")
table = pa.table({
    "region": ["eu", "eu", "us", "us", "ap"] * 200,
    "order_id": list(range(1000)),
    "amount": [float(i) / 4 for i in range(1000)],
})


def native_keys(prefix):
    with urllib.request.urlopen(f"{native}/v1/objects?prefix={prefix}&limit=1000") as r:
        return [o["key"] for o in json.load(r)["objects"]]


def s3fs():
    return pafs.S3FileSystem(
        endpoint_override=host, scheme="http", access_key="k", secret_key="s", region="us-east-1",
        allow_bucket_creation=True,
    )


def make_bucket():
    s3fs().create_dir("lake")


if tool == "pyarrow":
    fs = s3fs()
    make_bucket()
    # A hive-partitioned dataset; create_dir leaves directory markers, as pyarrow does.
    fs.create_dir("lake/orders/")
    fs.create_dir("lake/markers/sub")
    ds.write_dataset(
        table, "lake/orders", filesystem=fs, format="parquet",
        partitioning=ds.partitioning(pa.schema([("region", pa.string())]), flavor="hive"),
        existing_data_behavior="overwrite_or_ignore",
    )
    keys = native_keys("lake/")
    assert "lake/markers/sub/" in keys, keys
    assert any(k.startswith("lake/orders/region=eu/") and k.endswith(".parquet") for k in keys), keys
    back = ds.dataset("lake/orders", filesystem=fs, format="parquet", partitioning="hive").to_table()
    assert back.num_rows == 1000
    assert sorted(back.column("order_id").to_pylist()) == list(range(1000))
    assert sum(back.column("amount").to_pylist()) == sum(table.column("amount").to_pylist())
    infos = fs.get_file_info(pafs.FileSelector("lake/orders", recursive=True))
    assert sum(1 for i in infos if i.type == pafs.FileType.File) >= 3, infos
    assert fs.get_file_info("lake/markers/sub").type == pafs.FileType.Directory
    print(json.dumps({"rows": back.num_rows}))

elif tool == "polars":
    import polars as pl

    make_bucket()
    options = {
        "aws_endpoint_url": endpoint, "aws_access_key_id": "k", "aws_secret_access_key": "s",
        "aws_region": "us-east-1", "aws_allow_http": "true",
    }
    frame = pl.from_arrow(table)
    for region in ["eu", "us", "ap"]:
        part = frame.filter(pl.col("region") == region)
        part.write_parquet(f"s3://lake/polars/region={region}/part-0.parquet", storage_options=options)
    scanned = pl.scan_parquet("s3://lake/polars/**/*.parquet", storage_options=options, hive_partitioning=True).collect()
    assert scanned.height == 1000, scanned
    assert scanned["order_id"].sort().to_list() == list(range(1000))
    assert sorted(native_keys("lake/polars/")) == [f"lake/polars/region={r}/part-0.parquet" for r in ["ap", "eu", "us"]]
    print(json.dumps({"rows": scanned.height}))

elif tool == "duckdb":
    import duckdb
    import duckdb_extension_httpfs as ext

    make_bucket()
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false; SET autoload_known_extensions = false")
    path = os.path.join(os.path.dirname(ext.__file__), "extensions", "v" + duckdb.__version__, "httpfs.duckdb_extension")
    con.execute(f"LOAD '{path}'")
    con.execute(
        f"CREATE SECRET lake (TYPE s3, KEY_ID 'k', SECRET 's', REGION 'us-east-1', ENDPOINT '{host}', "
        "URL_STYLE 'path', USE_SSL false)"
    )
    # A file of ~16 MB in parts of DuckDB's least size (5 MiB, since at most 10,000 parts
    # make up s3_uploader_max_filesize): COPY ... TO s3:// is then a multipart upload.
    con.execute("SET s3_uploader_max_filesize = '50MB'")
    for i in range(3):
        con.execute(
            f"COPY (SELECT {i} AS file, range AS id, range * 2 AS v, random() AS noise FROM range(2000000)) "
            f"TO 's3://lake/duck/part-{i}.parquet' (FORMAT parquet)"
        )
    count, total = con.execute("SELECT count(*), sum(v) FROM read_parquet('s3://lake/duck/*.parquet')").fetchone()
    assert count == 6_000_000, count
    assert total == 3 * 2 * sum(range(2_000_000)), total
    files = con.execute("SELECT count(DISTINCT file) FROM read_parquet('s3://lake/duck/*.parquet')").fetchone()[0]
    assert files == 3
    assert sorted(native_keys("lake/duck/")) == [f"lake/duck/part-{i}.parquet" for i in range(3)]
    print(json.dumps({"rows": count}))

else:
    raise SystemExit(f"unknown tool {tool}")
