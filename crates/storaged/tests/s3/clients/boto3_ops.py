"""boto3 against storaged's S3 face: every implemented operation but multipart.

Usage: boto3_ops.py ENDPOINT ACCESS_KEY SECRET_KEY NATIVE_URL [NATIVE_TOKEN]. Asserts as it goes (a failure exits
non-zero with the traceback); prints one JSON line of what the Rust side cross-checks.
"""
import json
import sys
import time
import urllib.error
import urllib.request

import boto3
import botocore
from botocore.config import Config

endpoint, access_key, secret_key, native = sys.argv[1:5]
native_token = sys.argv[5] if len(sys.argv) > 5 else None


def native_get(key):
    """The bytes and ETag header the native API serves for `key`."""
    req = urllib.request.Request(f"{native}/v1/objects/{key}")
    if native_token:
        req.add_header("Authorization", f"Bearer {native_token}")
    with urllib.request.urlopen(req) as r:
        return r.read(), r.headers["ETag"]

s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=access_key,
    aws_secret_access_key=secret_key,
    region_name="us-east-1",
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)


def code(call, **kwargs):
    """The S3 error code and HTTP status of a call that must fail."""
    try:
        call(**kwargs)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{call.__name__} {kwargs} succeeded")


# Buckets
assert (got := code(s3.head_bucket, Bucket="lake"))[1] == 404, got
s3.create_bucket(Bucket="lake")
assert (got := code(s3.create_bucket, Bucket="lake"))[0] == "BucketAlreadyOwnedByYou", got
s3.head_bucket(Bucket="lake")
assert s3.get_bucket_location(Bucket="lake").get("LocationConstraint") in (None, "")
s3.create_bucket(Bucket="scratch")
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
assert names == ["lake", "scratch"], names

# Put, get, head, conditions
put = s3.put_object(Bucket="lake", Key="orders/part-0.parquet", Body=b"hello world")
etag = put["ETag"]
import hashlib
assert etag == '"%s"' % hashlib.md5(b"hello world").hexdigest(), etag
got = s3.get_object(Bucket="lake", Key="orders/part-0.parquet")
assert got["Body"].read() == b"hello world" and got["ETag"] == etag and got["ContentLength"] == 11
assert s3.get_object(Bucket="lake", Key="orders/part-0.parquet", Range="bytes=6-")["Body"].read() == b"world"
assert s3.get_object(Bucket="lake", Key="orders/part-0.parquet", Range="bytes=-3")["Body"].read() == b"rld"
assert (got := code(s3.get_object, Bucket="lake", Key="orders/part-0.parquet", Range="bytes=50-")) == ("InvalidRange", 416), got
assert s3.head_object(Bucket="lake", Key="orders/part-0.parquet")["ContentLength"] == 11
assert native_get("lake/orders/part-0.parquet")[0] == b"hello world"
assert s3.get_object(Bucket="lake", Key="orders/part-0.parquet", IfMatch=etag)["Body"].read() == b"hello world"
assert (got := code(s3.get_object, Bucket="lake", Key="orders/part-0.parquet", IfMatch='"0123"')) == ("PreconditionFailed", 412), got
assert (got := code(s3.get_object, Bucket="lake", Key="orders/part-0.parquet", IfNoneMatch=etag))[1] == 304, got
future = time.time() + 3600
assert (got := code(s3.get_object, Bucket="lake", Key="orders/part-0.parquet", IfModifiedSince=future))[1] == 304, got
assert (got := code(s3.get_object, Bucket="lake", Key="orders/part-0.parquet", IfUnmodifiedSince=time.time() - 3600))[1] == 412, got

# Content-Type, Cache-Control, Content-Disposition, Content-Encoding and user metadata are
# kept and returned, on this face and the native one
s3.put_object(
    Bucket="lake", Key="attrs/report.csv", Body=b"a,b\n1,2\n", ContentType="text/csv",
    CacheControl="max-age=60", ContentDisposition='attachment; filename="r.csv"',
    ContentEncoding="identity", Metadata={"Owner": "data-eng", "run": "42"},
)
head = s3.head_object(Bucket="lake", Key="attrs/report.csv")
assert head["ContentType"] == "text/csv" and head["CacheControl"] == "max-age=60", head
assert head["ContentDisposition"] == 'attachment; filename="r.csv"' and head["ContentEncoding"] == "identity"
assert head["Metadata"] == {"owner": "data-eng", "run": "42"}, head["Metadata"]
got = s3.get_object(Bucket="lake", Key="attrs/report.csv")
assert got["ContentType"] == "text/csv" and got["Metadata"]["run"] == "42"
req = urllib.request.Request(f"{native}/v1/objects/attrs/report.csv".replace("/attrs/", "/lake/attrs/"))
if native_token:
    req.add_header("Authorization", f"Bearer {native_token}")
with urllib.request.urlopen(req) as r:
    assert r.headers["Content-Type"] == "text/csv" and r.headers["x-amz-meta-owner"] == "data-eng", dict(r.headers)
    assert r.headers["Cache-Control"] == "max-age=60"
assert s3.head_object(Bucket="lake", Key="orders/part-0.parquet")["ContentType"] == "binary/octet-stream"
s3.copy_object(Bucket="lake", Key="attrs/copy.csv", CopySource={"Bucket": "lake", "Key": "attrs/report.csv"})
assert s3.head_object(Bucket="lake", Key="attrs/copy.csv")["Metadata"] == {"owner": "data-eng", "run": "42"}
s3.copy_object(
    Bucket="lake", Key="attrs/copy.csv", CopySource={"Bucket": "lake", "Key": "attrs/report.csv"},
    MetadataDirective="REPLACE", ContentType="text/plain", Metadata={"fresh": "yes"},
)
replaced = s3.head_object(Bucket="lake", Key="attrs/copy.csv")
assert replaced["ContentType"] == "text/plain" and replaced["Metadata"] == {"fresh": "yes"}, replaced
assert (got := code(s3.put_object, Bucket="lake", Key="attrs/big", Body=b"x", Metadata={"m": "v" * 3000}))[0] == "MetadataTooLarge", got

# Conditional writes: create-only twice, then compare-and-swap
s3.put_object(Bucket="lake", Key="once", Body=b"first", IfNoneMatch="*")
assert (got := code(s3.put_object, Bucket="lake", Key="once", Body=b"second", IfNoneMatch="*")) == ("PreconditionFailed", 412), got
once = s3.head_object(Bucket="lake", Key="once")["ETag"]
s3.put_object(Bucket="lake", Key="once", Body=b"third", IfMatch=once)
assert (got := code(s3.put_object, Bucket="lake", Key="once", Body=b"fourth", IfMatch=once))[1] == 412, got
assert s3.get_object(Bucket="lake", Key="once")["Body"].read() == b"third"

# Digests sent with a body are checked; a mismatch stores nothing
import base64, hashlib, zlib
good_md5 = base64.b64encode(hashlib.md5(b"digest me").digest()).decode()
s3.put_object(Bucket="lake", Key="digest/ok", Body=b"digest me", ContentMD5=good_md5)
bad_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
assert (got := code(s3.put_object, Bucket="lake", Key="digest/bad", Body=b"digest me", ContentMD5=bad_md5)) == ("BadDigest", 400), got
assert (got := code(s3.put_object, Bucket="lake", Key="digest/bad", Body=b"digest me", ContentMD5="bm90IDE2IGJ5dGVz")) == ("InvalidDigest", 400), got
crc = base64.b64encode(zlib.crc32(b"digest me").to_bytes(4, "big")).decode()
s3.put_object(Bucket="lake", Key="digest/crc", Body=b"digest me", ChecksumCRC32=crc)
assert (got := code(s3.put_object, Bucket="lake", Key="digest/bad", Body=b"digest me", ChecksumCRC32="AAAAAA==")) == ("BadDigest", 400), got
sha = base64.b64encode(hashlib.sha256(b"digest me").digest()).decode()
s3.put_object(Bucket="lake", Key="digest/sha", Body=b"digest me", ChecksumSHA256=sha)
assert (got := code(s3.head_object, Bucket="lake", Key="digest/bad"))[1] == 404, got

# Errors
assert (got := code(s3.get_object, Bucket="lake", Key="missing")) == ("NoSuchKey", 404), got
assert (got := code(s3.get_object, Bucket="nobucket", Key="x")) == ("NoSuchBucket", 404), got
assert (got := code(s3.put_object, Bucket="nobucket", Key="x", Body=b"x")) == ("NoSuchBucket", 404), got
assert (got := code(s3.put_object, Bucket="lake", Key="a/../b", Body=b"x"))[0] == "InvalidArgument", got
assert (got := code(s3.delete_bucket, Bucket="lake")) == ("BucketNotEmpty", 409), got

# Directory markers and a delimiter listing across pages (2,500 keys, 1,000 per page)
s3.put_object(Bucket="lake", Key="orders/", Body=b"")
assert native_get("lake/orders/")[0] == b""
s3.put_object(Bucket="lake", Key="orders/2025/", Body=b"")
for i in range(2500):
    s3.put_object(Bucket="lake", Key=f"many/d{i % 5}/k{i:04}", Body=b"x")
for i in range(20):
    s3.put_object(Bucket="lake", Key=f"many/top{i:02}", Body=b"y")
paginator = s3.get_paginator("list_objects_v2")
keys, prefixes, pages = [], [], 0
for page in paginator.paginate(Bucket="lake", Prefix="many/", Delimiter="/", PaginationConfig={"PageSize": 7}):
    pages += 1
    keys += [o["Key"] for o in page.get("Contents", [])]
    prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
assert prefixes == [f"many/d{i}/" for i in range(5)], prefixes
assert keys == [f"many/top{i:02}" for i in range(20)], keys
assert pages == 4, pages
all_keys = [o["Key"] for p in paginator.paginate(Bucket="lake", Prefix="many/d") for o in p.get("Contents", [])]
assert len(all_keys) == 2500 and all_keys == sorted(all_keys)
v1 = s3.get_paginator("list_objects")
v1_keys = [o["Key"] for p in v1.paginate(Bucket="lake", Prefix="many/d3/") for o in p.get("Contents", [])]
assert len(v1_keys) == 500
after = s3.list_objects_v2(Bucket="lake", Prefix="many/", StartAfter="many/d4/k2499")
assert [o["Key"] for o in after["Contents"]][:2] == ["many/top00", "many/top01"]
top = s3.list_objects_v2(Bucket="lake", Delimiter="/")
assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["attrs/", "digest/", "many/", "orders/"], top
assert [o["Key"] for o in top.get("Contents", [])] == ["once"]
odd = "odd key/with spaces+plus&amp%.txt"
s3.put_object(Bucket="lake", Key=odd, Body=b"odd")
listed = s3.list_objects_v2(Bucket="lake", Prefix="odd key/")  # boto3 asks for encoding-type=url
assert [o["Key"] for o in listed["Contents"]] == [odd]

# DeleteObjects of 1,000 keys
batch = [{"Key": f"many/d{i % 5}/k{i:04}"} for i in range(1000)]
deleted = s3.delete_objects(Bucket="lake", Delete={"Objects": batch})
assert len(deleted["Deleted"]) == 1000 and not deleted.get("Errors"), deleted.get("Errors")
remaining = [o["Key"] for p in paginator.paginate(Bucket="lake", Prefix="many/d") for o in p.get("Contents", [])]
assert len(remaining) == 1500

# CopyObject, conditional on the source
s3.copy_object(Bucket="scratch", Key="copy", CopySource={"Bucket": "lake", "Key": "orders/part-0.parquet"})
assert s3.get_object(Bucket="scratch", Key="copy")["Body"].read() == b"hello world"
assert code(
    s3.copy_object, Bucket="scratch", Key="copy2",
    CopySource={"Bucket": "lake", "Key": "orders/part-0.parquet"}, CopySourceIfMatch='"nope"',
)[1] == 412

# Presigned GET (SigV4), and one that has expired
url = s3.generate_presigned_url("get_object", Params={"Bucket": "lake", "Key": "orders/part-0.parquet"}, ExpiresIn=600)
assert urllib.request.urlopen(url).read() == b"hello world"
expired = s3.generate_presigned_url("get_object", Params={"Bucket": "lake", "Key": "orders/part-0.parquet"}, ExpiresIn=1)
time.sleep(2)
try:
    urllib.request.urlopen(expired)
    expired_status = 200
except urllib.error.HTTPError as e:
    expired_status = e.code

# Delete and bucket removal
s3.delete_object(Bucket="scratch", Key="copy")
s3.delete_object(Bucket="scratch", Key="copy")  # idempotent
s3.delete_bucket(Bucket="scratch")
assert (got := code(s3.head_bucket, Bucket="scratch"))[1] == 404, got

print(json.dumps({"etag": etag, "expired_status": expired_status}))
