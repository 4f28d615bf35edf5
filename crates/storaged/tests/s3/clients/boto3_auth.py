"""Signatures, access keys and scopes on storaged's S3 face (credentials configured).

Usage: boto3_auth.py ENDPOINT. The credentials are those of tests/s3/boto3.rs.
"""
import json
import sys
import urllib.error
import urllib.request

import boto3
import botocore
from botocore import UNSIGNED
from botocore.config import Config

endpoint = sys.argv[1]


def client(key, secret, **config):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


def code(call, **kwargs):
    try:
        call(**kwargs)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{call.__name__} {kwargs} succeeded")


admin = client("AKADMIN", "admin-secret")
admin.create_bucket(Bucket="lake")
admin.put_object(Bucket="lake", Key="orders/a", Body=b"a")
admin.put_object(Bucket="lake", Key="other/b", Body=b"b")

assert code(client("AKNOBODY", "x").list_buckets) == ("InvalidAccessKeyId", 403)
assert code(client("AKADMIN", "wrong").get_object, Bucket="lake", Key="orders/a") == ("SignatureDoesNotMatch", 403)
anonymous = client(None, None, signature_version=UNSIGNED)
assert code(anonymous.get_object, Bucket="lake", Key="orders/a") == ("AccessDenied", 403)
try:
    urllib.request.urlopen(f"{endpoint}/lake/orders/a")
    raise AssertionError("an unsigned GET succeeded")
except urllib.error.HTTPError as e:
    assert e.code == 403, e.code
    assert b"<Code>AccessDenied</Code>" in e.read()

# A tampered presigned URL is refused; the genuine one works.
url = admin.generate_presigned_url("get_object", Params={"Bucket": "lake", "Key": "orders/a"})
assert urllib.request.urlopen(url).read() == b"a"
try:
    urllib.request.urlopen(url.replace("orders/a", "other/b"))
    raise AssertionError("a presigned URL worked for another key")
except urllib.error.HTTPError as e:
    assert e.code == 403, e.code

# Scopes apply as on the native API: bucket lake + key k = native key lake/k.
orders = client("AKORDERS", "orders-secret")
orders.put_object(Bucket="lake", Key="orders/c", Body=b"c")
assert code(orders.put_object, Bucket="lake", Key="other/c", Body=b"c") == ("AccessDenied", 403)
assert orders.get_object(Bucket="lake", Key="other/b")["Body"].read() == b"b"
assert code(orders.delete_object, Bucket="lake", Key="other/b") == ("AccessDenied", 403)
assert code(orders.create_bucket, Bucket="elsewhere") == ("AccessDenied", 403)
listed = [o["Key"] for o in orders.list_objects_v2(Bucket="lake")["Contents"]]
assert listed == ["orders/a", "orders/c", "other/b"], listed
denied = orders.delete_objects(Bucket="lake", Delete={"Objects": [{"Key": "orders/a"}, {"Key": "other/b"}]})
assert [d["Key"] for d in denied["Deleted"]] == ["orders/a"], denied
assert [(e["Key"], e["Code"]) for e in denied["Errors"]] == [("other/b", "AccessDenied")], denied
assert [b["Name"] for b in orders.list_buckets()["Buckets"]] == ["lake"]

# A bearer-only credential has no key pair: its name is not an access key.
assert code(client("bearer-only", "x").list_buckets) == ("InvalidAccessKeyId", 403)
print(json.dumps({"ok": True}))
