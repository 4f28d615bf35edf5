"""boto3 multipart uploads against storaged's S3 face.

Usage: boto3_multipart.py ENDPOINT NATIVE_URL. Asserts as it goes; prints one JSON line.
"""
import hashlib
import io
import json
import os
import sys
import urllib.request

import boto3
import botocore
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

endpoint, native = sys.argv[1:3]
s3 = boto3.client(
    "s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
MiB = 1024 * 1024


def code(call, **kwargs):
    try:
        call(**kwargs)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{call.__name__} {kwargs} succeeded")


def native_get(key):
    with urllib.request.urlopen(f"{native}/v1/objects/{key}") as r:
        return r.read()


def native_keys(prefix):
    with urllib.request.urlopen(f"{native}/v1/objects?prefix={prefix}") as r:
        return [o["key"] for o in json.load(r)["objects"]]


s3.create_bucket(Bucket="lake")

# A 64 MiB object in 8 MiB parts through the transfer manager; the ETag is S3's.
data = os.urandom(64 * MiB)
config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
s3.upload_fileobj(io.BytesIO(data), "lake", "big/blob.bin", Config=config)
digests = b"".join(hashlib.md5(data[i:i + 8 * MiB]).digest() for i in range(0, len(data), 8 * MiB))
expected_etag = '"%s-8"' % hashlib.md5(digests).hexdigest()
head = s3.head_object(Bucket="lake", Key="big/blob.bin")
assert head["ETag"] == expected_etag, (head["ETag"], expected_etag)
assert head["ContentLength"] == len(data)
out = io.BytesIO()
s3.download_fileobj("lake", "big/blob.bin", out, Config=config)
assert out.getvalue() == data
assert native_get("lake/big/blob.bin") == data
listed = s3.list_objects_v2(Bucket="lake", Prefix="big/")["Contents"]
assert listed[0]["ETag"] == expected_etag

# The API by hand: attributes, ListParts, ListMultipartUploads, the errors of Complete.
up = s3.create_multipart_upload(Bucket="lake", Key="hand/made.bin", ContentType="application/x-made", Metadata={"by": "hand"})
uid = up["UploadId"]
p1 = os.urandom(5 * MiB)
e1 = s3.upload_part(Bucket="lake", Key="hand/made.bin", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
assert e1 == '"%s"' % hashlib.md5(p1).hexdigest()
e2 = s3.upload_part(Bucket="lake", Key="hand/made.bin", UploadId=uid, PartNumber=2, Body=b"tail")["ETag"]
parts = s3.list_parts(Bucket="lake", Key="hand/made.bin", UploadId=uid)["Parts"]
assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MiB), (2, 4)], parts
uploads = s3.list_multipart_uploads(Bucket="lake")["Uploads"]
assert [(u["Key"], u["UploadId"]) for u in uploads] == [("hand/made.bin", uid)], uploads
assert code(s3.upload_part, Bucket="lake", Key="hand/made.bin", UploadId=uid, PartNumber=10001, Body=b"x")[0] == "InvalidArgument"
assert code(s3.upload_part, Bucket="lake", Key="hand/made.bin", UploadId="0" * 32, PartNumber=1, Body=b"x")[0] == "NoSuchUpload"
assert code(s3.upload_part, Bucket="lake", Key="hand/other.bin", UploadId=uid, PartNumber=1, Body=b"x")[0] == "NoSuchUpload"


def complete(parts, **kw):
    return s3.complete_multipart_upload(Bucket="lake", Key="hand/made.bin", UploadId=uid, MultipartUpload={"Parts": parts}, **kw)


good = [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]
assert code(complete, parts=list(reversed(good)))[0] == "InvalidPartOrder"
assert code(complete, parts=good + [{"PartNumber": 3, "ETag": e2}])[0] == "InvalidPart"
assert code(complete, parts=[{"PartNumber": 1, "ETag": e2}, {"PartNumber": 2, "ETag": e2}])[0] == "InvalidPart"
assert code(complete, parts=[{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}])[0] == "InvalidPartOrder"
s3.put_object(Bucket="lake", Key="hand/made.bin", Body=b"already here")
assert code(complete, parts=good, IfNoneMatch="*") == ("PreconditionFailed", 412)
assert s3.get_object(Bucket="lake", Key="hand/made.bin")["Body"].read() == b"already here"
assert code(s3.head_object, Bucket="lake", Key="hand/nothing")[1] == 404
done = complete(good)
assert done["ETag"].endswith('-2"'), done["ETag"]
made = s3.get_object(Bucket="lake", Key="hand/made.bin")
assert made["Body"].read() == p1 + b"tail"
assert made["ContentType"] == "application/x-made" and made["Metadata"] == {"by": "hand"}
assert code(s3.list_parts, Bucket="lake", Key="hand/made.bin", UploadId=uid)[0] == "NoSuchUpload"
assert code(complete, parts=good)[0] == "NoSuchUpload"

# Parts smaller than 5 MiB (but the last) are refused; abort removes everything.
small = s3.create_multipart_upload(Bucket="lake", Key="hand/small.bin")["UploadId"]
s1 = s3.upload_part(Bucket="lake", Key="hand/small.bin", UploadId=small, PartNumber=1, Body=b"a")["ETag"]
s2 = s3.upload_part(Bucket="lake", Key="hand/small.bin", UploadId=small, PartNumber=2, Body=b"b")["ETag"]
assert code(
    s3.complete_multipart_upload, Bucket="lake", Key="hand/small.bin", UploadId=small,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": s1}, {"PartNumber": 2, "ETag": s2}]},
)[0] == "EntityTooSmall"
s3.abort_multipart_upload(Bucket="lake", Key="hand/small.bin", UploadId=small)
assert code(s3.abort_multipart_upload, Bucket="lake", Key="hand/small.bin", UploadId=small)[0] == "NoSuchUpload"
assert code(s3.head_object, Bucket="lake", Key="hand/small.bin")[1] == 404

# UploadPartCopy: parts copied from ranges of an existing object.
cp = s3.create_multipart_upload(Bucket="lake", Key="copied.bin")["UploadId"]
c1 = s3.upload_part_copy(Bucket="lake", Key="copied.bin", UploadId=cp, PartNumber=1,
                         CopySource={"Bucket": "lake", "Key": "big/blob.bin"}, CopySourceRange=f"bytes=0-{6 * MiB - 1}")
c2 = s3.upload_part_copy(Bucket="lake", Key="copied.bin", UploadId=cp, PartNumber=2,
                         CopySource={"Bucket": "lake", "Key": "hand/made.bin"})
s3.complete_multipart_upload(Bucket="lake", Key="copied.bin", UploadId=cp, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": c1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": c2["CopyPartResult"]["ETag"]}]})
assert s3.get_object(Bucket="lake", Key="copied.bin")["Body"].read() == data[:6 * MiB] + p1 + b"tail"

# ListMultipartUploads pages by key and upload id, and rolls keys up with a delimiter.
made = []
for key in ["pg/a", "pg/b", "pg/b", "pg/dir/x", "pg/dir/y"]:
    made.append((key, s3.create_multipart_upload(Bucket="lake", Key=key)["UploadId"]))
pages = list(s3.get_paginator("list_multipart_uploads").paginate(Bucket="lake", Prefix="pg/", PaginationConfig={"PageSize": 2}))
assert len(pages) == 3 and pages[0]["IsTruncated"], [(p.get("Uploads"), p["IsTruncated"]) for p in pages]
paged = [(u["Key"], u["UploadId"]) for p in pages for u in p.get("Uploads", [])]
assert paged == sorted(made), (paged, sorted(made))
rolled = s3.list_multipart_uploads(Bucket="lake", Prefix="pg/", Delimiter="/")
assert [u["Key"] for u in rolled["Uploads"]] == ["pg/a", "pg/b", "pg/b"], rolled
assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["pg/dir/"], rolled
for key, uid in made:
    s3.abort_multipart_upload(Bucket="lake", Key=key, UploadId=uid)

# Nothing is left staged.
assert native_keys("_s3/uploads/") == [], native_keys("_s3/uploads/")

# An upload left alone is swept after multipart_expiry (the test sets it to 3 s).
left = s3.create_multipart_upload(Bucket="lake", Key="left.bin")["UploadId"]
s3.upload_part(Bucket="lake", Key="left.bin", UploadId=left, PartNumber=1, Body=b"x")
print(json.dumps({"etag": expected_etag, "left": left}))
