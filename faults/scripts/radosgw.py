#!/usr/bin/env python3
"""storaged against a second real S3 implementation: Ceph's RADOS Gateway (Debian's).

Starts a throwaway single-node Ceph cluster in a temporary directory — one monitor, one
manager, one OSD on the in-memory object store (memstore: no disk needed), one radosgw on
a free port, authentication off — makes a user and a bucket, then:

1. asks radosgw directly (boto3) which conditional writes it honours, and
2. starts the real storaged binary on it (`backend = "s3"`), which must refuse exactly the
   conditions radosgw got wrong, by name, and leave nothing behind in the bucket — or, on a
   radosgw that honours them all, start and serve a conditional create, a 412 on a second
   one, an If-Match update and an If-Match delete.

Prints one line of figures; exits 1 when storaged's behaviour does not match radosgw's.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import boto3
import botocore

ACCESS, SECRET = "AKSTORAGED", "SKSTORAGED"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait(what, check, seconds=90):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.5)
    sys.exit(f"radosgw: {what} did not come up within {seconds} s")


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def start_cluster(d, mon_port, rgw_port):
    fsid = str(uuid.uuid4())
    conf = os.path.join(d, "ceph.conf")
    with open(conf, "w") as f:
        f.write(f"""[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = 1073741824
osd crush chooseleaf type = 0
ms bind ipv6 = false
run dir = {d}/run
log file = {d}/log/$name.log
admin socket = {d}/run/$name.asok
mon data = {d}/mon
osd data = {d}/osd$id
mgr data = {d}/mgr
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
""")
    for sub in ("run", "log", "mon", "osd0", "mgr"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    c = ["-c", conf]
    keyring = os.path.join(d, "mon.keyring")
    monmap = os.path.join(d, "monmap")
    run("ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *")
    run("monmaptool", "--create", "--addv", "a", f"[v1:127.0.0.1:{mon_port}]", "--fsid", fsid, monmap)
    run("ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring)
    run("ceph-mon", *c, "-i", "a")
    osd_uuid = str(uuid.uuid4())
    osd = run("ceph", *c, "--connect-timeout", "30", "osd", "create", osd_uuid).strip()
    run("ceph-osd", *c, "-i", osd, "--mkfs", "--osd-uuid", osd_uuid)
    run("ceph-osd", *c, "-i", osd)
    run("ceph-mgr", *c, "-i", "x")
    wait("the OSD", lambda: '"num_up_osds":1' in run("ceph", *c, "osd", "stat", "-f", "json").replace(" ", ""))
    run("radosgw", *c, "-n", "client.rgw", "--rgw-init-timeout", "120")
    wait("radosgw", lambda: urllib.request.urlopen(f"http://127.0.0.1:{rgw_port}/", timeout=2).status == 200)
    run("radosgw-admin", *c, "user", "create", "--uid", "storaged", "--display-name", "storaged",
        "--access-key", ACCESS, "--secret", SECRET)
    return conf


def what_rgw_honours(s3):
    """The conditional writes radosgw honours, asked directly (boto3 quotes ETags)."""
    def refused(call):
        try:
            call()
            return False
        except botocore.exceptions.ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"] == 412

    key = "direct-probe"
    etag = s3.put_object(Bucket="lake", Key=key, Body=b"x")["ETag"]
    found = {
        "If-None-Match: * on PUT (a second create was not refused)": refused(lambda: s3.put_object(Bucket="lake", Key=key, Body=b"y", IfNoneMatch="*")),
        "If-Match on PUT (a wrong ETag was not refused)": refused(lambda: s3.put_object(Bucket="lake", Key=key, Body=b"y", IfMatch='"0000"')),
        "If-Match on PUT (the object's own ETag was refused)": not refused(lambda: s3.put_object(Bucket="lake", Key=key, Body=b"y", IfMatch=etag)),
    }
    refused(lambda: s3.delete_object(Bucket="lake", Key=key, IfMatch='"0000"'))
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="lake").get("Contents", [])]
    found["If-Match on DELETE (a wrong ETag did not stop the delete)"] = key in listed
    s3.delete_object(Bucket="lake", Key=key)
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--storaged", required=True, help="the storaged binary")
    ap.add_argument("--log", required=True, help="where storaged's output goes")
    ap.add_argument("--endpoint", help="an S3 store already running (to check this script)")
    args = ap.parse_args()
    for tool in ("ceph-mon", "ceph-osd", "ceph-mgr", "radosgw", "radosgw-admin"):
        if shutil.which(tool) is None and not args.endpoint:
            sys.exit(f"radosgw: {tool} is missing: apt-get install ceph-mon ceph-osd ceph-mgr radosgw")

    d = tempfile.mkdtemp(prefix="ceph-")
    mon_port, rgw_port = free_port(), free_port()
    try:
        if args.endpoint:
            endpoint, version = args.endpoint, "(given endpoint)"
        else:
            start_cluster(d, mon_port, rgw_port)
            version = run("radosgw", "--version").split()[2]
            endpoint = f"http://127.0.0.1:{rgw_port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS,
                          aws_secret_access_key=SECRET, region_name="us-east-1")
        s3.create_bucket(Bucket="lake")
        honoured = what_rgw_honours(s3)

        env = dict(os.environ, STORAGED_BACKEND="s3", STORAGED_S3_ENDPOINT=endpoint,
                   STORAGED_S3_BUCKET="lake", STORAGED_S3_ACCESS_KEY_ID=ACCESS,
                   STORAGED_S3_SECRET_ACCESS_KEY=SECRET, STORAGED_S3_ALLOW_HTTP="true")
        data = os.path.join(d, "storaged")
        os.makedirs(data)
        port = free_port()
        with open(args.log, "w") as log:
            proc = subprocess.Popen([args.storaged, "--listen", f"127.0.0.1:{port}", "--data-dir", data],
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
        ignored = [name for name, ok in honoured.items() if not ok]
        if ignored:
            code = proc.wait(timeout=60)
            out = open(args.log).read()
            if code == 0:
                sys.exit(f"radosgw: storaged started on a store that ignores {ignored}")
            unnamed = [name for name in ignored if name not in out]
            if unnamed or "does not honour conditional writes" not in out:
                sys.exit(f"radosgw: storaged's refusal does not name {unnamed}: {out[-2000:]}")
            left = [o["Key"] for o in s3.list_objects_v2(Bucket="lake").get("Contents", [])]
            if left:
                sys.exit(f"radosgw: the probe left {left} in the bucket")
            print(f"radosgw {version} gets wrong: {'; '.join(ignored)} — storaged refuses it at "
                  "start-up naming each, and leaves the bucket empty")
            return
        try:
            base = f"http://127.0.0.1:{port}/v1/objects/radosgw/check"
            wait("storaged", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200)

            def call(method, headers, body=None):
                headers = dict(headers, **{"Content-Type": "application/octet-stream"})
                req = urllib.request.Request(base, data=body, method=method, headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        return r.status, r.headers.get("ETag")
                except urllib.error.HTTPError as e:
                    return e.code, None

            created, etag = call("PUT", {"If-None-Match": "*"}, b"one")
            again, _ = call("PUT", {"If-None-Match": "*"}, b"two")
            updated, etag2 = call("PUT", {"If-Match": etag or ""}, b"three")
            stale, _ = call("DELETE", {"If-Match": etag or ""})
            deleted, _ = call("DELETE", {"If-Match": etag2 or ""})
            got = (created, again, updated, stale, deleted)
            if got != (201, 412, 200, 412, 204):
                sys.exit(f"radosgw: storaged on radosgw answered {got}")
            print(f"radosgw {version}: honours every conditional write; storaged on it: create 201, "
                  "second create 412, If-Match update 200, stale delete 412, delete 204")
        finally:
            proc.kill()
    finally:
        subprocess.run(["pkill", "-f", f"{d}/ceph.conf"], check=False)
        for _ in range(20):
            if subprocess.run(["pgrep", "-f", f"{d}/ceph.conf"], capture_output=True).returncode:
                break
            time.sleep(0.5)
        subprocess.run(["pkill", "-9", "-f", f"{d}/ceph.conf"], check=False)
        if os.environ.get("KEEP_CEPH"):
            print(f"radosgw: cluster files kept in {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
