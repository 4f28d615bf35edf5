# Ceiling for storaged PUT: a tight loop of "write 4 KiB to a temp file, fsync, rename,
# fsync the directory" in one thread, on the same filesystem as the data directory.
import os, time, sys
d = sys.argv[1]; os.makedirs(d + "/t", exist_ok=True); os.makedirs(d + "/o", exist_ok=True)
data = b"x" * 4096
n = 0; lat = []
end = time.time() + 6
dfd = os.open(d + "/o", os.O_RDONLY)
while time.time() < end:
    t0 = time.perf_counter()
    p = f"{d}/t/{n}.tmp"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, data); os.fsync(fd); os.close(fd)
    os.rename(p, f"{d}/o/{n}")
    os.fsync(dfd)
    lat.append(time.perf_counter() - t0); n += 1
lat.sort()
print(f"durable-write ceiling c=1: {n/6:.0f} ops/s p50={lat[len(lat)//2]*1e3:.2f}ms p99={lat[int(len(lat)*.99)]*1e3:.2f}ms")
