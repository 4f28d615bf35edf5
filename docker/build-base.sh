#!/usr/bin/env bash
# Builds the offline base image `lake/base:bookworm` without any registry: a minimal
# Debian bookworm (the release the host binaries are built on) made with debootstrap from
# Debian's package mirror, imported with `docker import`. It carries curl (healthchecks)
# and ca-certificates. Needs root (debootstrap) and a Docker engine.
#
#   docker/build-base.sh            # builds it unless it exists
#   FORCE=1 docker/build-base.sh    # rebuilds it
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${LAKE_BASE_IMAGE:-lake/base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ -z "${FORCE:-}" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE exists (FORCE=1 rebuilds it)"
    exit 0
fi
if ! command -v debootstrap >/dev/null; then
    echo "error: debootstrap is not installed (apt-get install debootstrap)" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: debootstrap needs root" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/lake-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "debootstrap bookworm into $work/rootfs (about a minute)"
debootstrap --variant=minbase --include=ca-certificates,curl \
    bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
}
# Nothing the image needs at run time: downloaded packages, package lists, docs.
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/* \
    "$work"/rootfs/usr/share/doc/* "$work"/rootfs/usr/share/man/*
tar -C "$work/rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
