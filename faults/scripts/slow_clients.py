#!/usr/bin/env python3
"""Slow clients against storaged and catalogd, with raw sockets.

While slowloris heads, slow request bodies and slow readers of a large object hold
connections open, a well-behaved client keeps sending small GETs to both services on
fresh connections. Prints one JSON line of figures; exits 1 when the well-behaved
client's p99 exceeds the bound, any of its requests failed, or storaged's resident
memory grew past its bound (slow readers must not pin a chunk each).
"""

import argparse
import json
import socket
import subprocess
import threading
import time


def connect(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def request(port, method, path, body=b"", headers=()):
    """One request on a fresh connection; returns (status, body)."""
    s = connect(port)
    try:
        head = f"{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
        head += f"content-length: {len(body)}\r\n"
        for h in headers:
            head += h + "\r\n"
        s.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        status = int(data.split(b" ", 2)[1])
        return status, data.split(b"\r\n\r\n", 1)[1]
    finally:
        s.close()


class Attack:
    """Runs `fn` on `n` threads until stopped; counts what happened."""

    def __init__(self, name, n, fn):
        self.name, self.stop, self.events = name, threading.Event(), {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(fn,), daemon=True) for _ in range(n)]

    def note(self, what):
        with self.lock:
            self.events[what] = self.events.get(what, 0) + 1

    def run(self, fn):
        while not self.stop.is_set():
            try:
                fn(self)
            except (OSError, ValueError) as e:
                self.note(type(e).__name__)
                time.sleep(0.1)

    def start(self):
        for t in self.threads:
            t.start()


def slowloris(port):
    def fn(a):
        s = connect(port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        a.note("opened")
        try:
            while not a.stop.is_set():
                s.sendall(b"x-slow: 1\r\n")
                time.sleep(1)
                s.settimeout(0.01)
                try:
                    if s.recv(1024) == b"":
                        a.note("closed by server")
                        return
                    a.note("answered")
                    return
                except socket.timeout:
                    pass
        finally:
            s.close()
    return fn


def slow_body(port, path):
    def fn(a):
        s = connect(port)
        s.sendall(f"PUT {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  f"content-length: 1048576\r\n\r\n".encode())
        a.note("opened")
        try:
            while not a.stop.is_set():
                s.sendall(b"x" * 10)
                time.sleep(1)
        finally:
            s.close()
    return fn


def slow_post(port):
    def fn(a):
        s = connect(port)
        s.sendall(b"POST /v1/datasets HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: 100000\r\n\r\n{\"name\": ")
        a.note("opened")
        try:
            while not a.stop.is_set():
                s.sendall(b" ")
                time.sleep(1)
        finally:
            s.close()
    return fn


def slow_reader(port, path):
    def fn(a):
        s = connect(port, rcvbuf=4096)
        s.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
        a.note("opened")
        try:
            while not a.stop.is_set():
                if not s.recv(1024):
                    a.note("closed by server")
                    return
                time.sleep(0.05)
        finally:
            s.close()
    return fn


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--storaged", type=int, required=True)
    p.add_argument("--catalogd", type=int, required=True)
    p.add_argument("--storaged-pid", type=int, required=True)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--p99-ms", type=float, default=200)
    p.add_argument("--max-rss-mib", type=float, default=512,
                   help="storaged's resident memory at the end of the attack must stay below")
    p.add_argument("--slowhttptest", action="store_true",
                   help="add Debian's slowhttptest (slowloris, slow body, slow read) as attackers")
    args = p.parse_args()

    big = 64 << 20
    status, _ = request(args.storaged, "PUT", "/v1/objects/slow/big", b"\0" * big)
    assert status in (200, 201), status
    status, _ = request(args.storaged, "PUT", "/v1/objects/slow/small", b"small object")
    assert status in (200, 201), status
    reg = json.dumps({"name": "slow.probe", "schema_fingerprint": "fp", "objects": []}).encode()
    status, _ = request(args.catalogd, "POST", "/v1/datasets", reg, ["content-type: application/json"])
    assert status in (200, 201), status

    attacks = [
        Attack("slowloris storaged", 100, slowloris(args.storaged)),
        Attack("slowloris catalogd", 100, slowloris(args.catalogd)),
        Attack("slow bodies storaged", 30, slow_body(args.storaged, "/v1/objects/slow/upload")),
        Attack("slow bodies catalogd", 30, slow_post(args.catalogd)),
        Attack("slow readers of 64 MiB", 16, slow_reader(args.storaged, "/v1/objects/slow/big")),
    ]
    for a in attacks:
        a.start()
    tools = []
    if args.slowhttptest:
        s_url = f"http://127.0.0.1:{args.storaged}"
        c_url = f"http://127.0.0.1:{args.catalogd}"
        length = str(int(args.seconds) + 5)
        common = ["-c", "400", "-r", "200", "-i", "2", "-l", length, "-p", "5"]
        for extra in (
            ["-H", "-u", f"{s_url}/v1/objects/slow/small"],
            ["-B", "-t", "PUT", "-s", "1000000", "-u", f"{s_url}/v1/objects/slow/upload"],
            ["-X", "-k", "1", "-n", "5", "-w", "10", "-y", "20", "-z", "32",
             "-u", f"{s_url}/v1/objects/slow/big"],
            ["-H", "-u", f"{c_url}/v1/datasets/slow.probe"],
            ["-B", "-t", "POST", "-f", "application/json", "-s", "100000", "-u", f"{c_url}/v1/datasets"],
        ):
            tools.append(subprocess.Popen(["slowhttptest", *common, *extra],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.5)  # let every attacker connect

    latencies, failures = [], []
    end = time.time() + args.seconds
    while time.time() < end:
        for port, path, expect in ((args.storaged, "/v1/objects/slow/small", b"small object"),
                                   (args.catalogd, "/v1/datasets/slow.probe", None)):
            t = time.perf_counter()
            try:
                status, body = request(port, "GET", path)
                ok = status == 200 and (expect is None or body == expect)
            except OSError as e:
                ok, status = False, repr(e)
            latencies.append(time.perf_counter() - t)
            if not ok:
                failures.append(f"{path}: {status}")
    peak_rss = rss_kib(args.storaged_pid)
    for a in attacks:
        a.stop.set()
    for t in tools:
        t.terminate()
        t.wait()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    out = {
        "requests": len(latencies),
        "failures": failures[:5],
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "storaged_rss_mib": round(peak_rss / 1024, 1),
        "attackers": {a.name: a.events for a in attacks},
        "slowhttptest_runs": len(tools),
    }
    print(json.dumps(out))
    ok = not failures and p99 <= args.p99_ms and len(latencies) >= 50
    return 0 if ok and peak_rss / 1024 <= args.max_rss_mib else 1


if __name__ == "__main__":
    raise SystemExit(main())
