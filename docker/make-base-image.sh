#!/usr/bin/env bash
# Provide the base image `python:3.11-slim` for docker/Dockerfile.
#
# 1. If the image is already present locally: nothing to do (unless --force).
# 2. Try `docker pull python:3.11-slim` with a short timeout.
# 3. If that fails (no registry reachable, as on the CI machines), build a
#    local stand-in from Debian packages: debootstrap --variant=minbase bookworm
#    with python3 + python3-venv + ca-certificates, slimmed, then `docker import`
#    it under the same name.
#
# Differences from the official image that docker/Dockerfile copes with:
#   - Debian's interpreter is /usr/bin/python3 (official: /usr/local/bin/python3);
#     the Dockerfile only ever calls `python3` from PATH and builds /opt/venv.
#   - Debian's CPython 3.11.x patch level (3.11.2 on bookworm) and pip 23.0.1
#     inside new venvs (from python3-pip-whl).
#
# Usage: sudo bash docker/make-base-image.sh [--force] [--no-pull] [--no-upgrade]
# Environment:
#   BASE_IMAGE      image name to provide        (default python:3.11-slim)
#   PULL_TIMEOUT    seconds allowed for the pull (default 30)
#   DEBIAN_MIRROR   Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   DEBIAN_SECURITY security mirror for upgrades  (default http://deb.debian.org/debian-security)
#   DEBIAN_SUITE    suite                          (default bookworm)
#   WORK_DIR        parent of the temporary rootfs (default /var/tmp)
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim}"
PULL_TIMEOUT="${PULL_TIMEOUT:-30}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY="${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
WORK_DIR="${WORK_DIR:-/var/tmp}"

force=0 pull=1 upgrade=1
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --no-pull) pull=0 ;;
        --no-upgrade) upgrade=0 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "make-base-image: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { printf '[make-base-image] %s\n' "$*" >&2; }
die() { printf '[make-base-image] ERROR: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker CLI not found (run: sudo bash .ci/docker-setup.sh)"
docker info >/dev/null 2>&1 || die "Docker engine not reachable (run: sudo bash .ci/docker-setup.sh)"

if [[ $force -eq 0 ]] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "$BASE_IMAGE already present; nothing to do (use --force to rebuild)"
    exit 0
fi

if [[ $pull -eq 1 ]]; then
    log "trying: docker pull $BASE_IMAGE (timeout ${PULL_TIMEOUT}s)"
    if timeout --kill-after=5 "$PULL_TIMEOUT" docker pull "$BASE_IMAGE" >&2; then
        log "pulled $BASE_IMAGE from its registry"
        exit 0
    fi
    log "pull failed; building a local stand-in from Debian $DEBIAN_SUITE packages"
fi

[[ $(id -u) -eq 0 ]] || die "building the stand-in needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap not installed (apt-get install -y debootstrap)"

start=$(date +%s)
mkdir -p "$WORK_DIR"
tmp=$(mktemp -d "$WORK_DIR/mpc-base-rootfs.XXXXXX")
root="$tmp/rootfs"

cleanup() {
    local m
    # debootstrap mounts proc/sys/dev* in the target; never rm -rf across them.
    for m in dev/pts dev/shm dev proc sys; do
        if mountpoint -q "$root/$m" 2>/dev/null; then umount -l "$root/$m" || true; fi
    done
    rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

log "debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR into $root"
if ! debootstrap --variant=minbase --components=main \
        --include=python3,python3-venv,ca-certificates \
        "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$tmp/debootstrap.log" 2>&1; then
    tail -n 30 "$tmp/debootstrap.log" >&2
    [[ -f "$root/debootstrap/debootstrap.log" ]] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (see output above)"
fi

# apt sources and image-friendly apt/dpkg settings (as in Debian's docker images),
# so `apt-get install` in a derived image stays slim.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $DEBIAN_SUITE $DEBIAN_SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY
Suites: $DEBIAN_SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$root/etc/apt/apt.conf.d/docker-no-recommends" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
cat >"$root/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
Acquire::Languages "none";
EOF
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
# Keep docs, man pages and translations out of the image; keep copyright files.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
cat >"$root/usr/sbin/policy-rc.d" <<'EOF'
#!/bin/sh
exit 101
EOF
chmod 0755 "$root/usr/sbin/policy-rc.d"

if [[ $upgrade -eq 1 ]]; then
    log "applying $DEBIAN_SUITE-updates and -security upgrades in the chroot"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    if ! chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
            sh -c 'apt-get -o Acquire::Check-Valid-Until=false update -qq \
                   && apt-get -y -qq -o Dpkg::Use-Pty=0 upgrade' >"$tmp/upgrade.log" 2>&1; then
        tail -n 30 "$tmp/upgrade.log" >&2
        die "apt-get upgrade in the chroot failed (use --no-upgrade to skip it)"
    fi
fi

log "slimming the rootfs"
# What python:3.11-slim also provides: a `python` command and a UTF-8 locale (ENV below).
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
       "$root"/var/lib/dpkg/*-old "$root"/debootstrap
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/groff/* \
       "$root"/usr/share/lintian/* "$root"/usr/share/linda/* "$root"/usr/share/locale/*
find "$root/var/log" -type f -delete
rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
: >"$root/etc/machine-id" 2>/dev/null || true
# Docker provides /dev, /proc, /sys, /etc/hosts, /etc/resolv.conf at run time.
rm -rf --one-file-system "${root:?}"/dev/* "${root:?}"/proc/* "${root:?}"/sys/* "${root:?}"/tmp/* "${root:?}"/run/*

pyver=$(chroot "$root" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
[[ $pyver == 3.11.* ]] || die "the Debian rootfs has Python $pyver, not 3.11 (suite $DEBIAN_SUITE)"

log "docker import as $BASE_IMAGE (Debian $DEBIAN_SUITE, Python $pyver)"
tar -C "$root" --numeric-owner --xattrs -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PYTHON_VERSION=$pyver" \
    --change "LABEL org.opencontainers.image.title=\"python:3.11-slim stand-in\" org.opencontainers.image.description=\"Local stand-in for python:3.11-slim built by docker/make-base-image.sh: debootstrap minbase $DEBIAN_SUITE + python3 $pyver + python3-venv; the interpreter is /usr/bin/python3\" org.opencontainers.image.base.name=\"debian:$DEBIAN_SUITE (debootstrap)\"" \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase $DEBIAN_SUITE + python3 python3-venv ca-certificates" \
    - "$BASE_IMAGE" >/dev/null

end=$(date +%s)
size=$(docker image inspect -f '{{.Size}}' "$BASE_IMAGE")
log "built $BASE_IMAGE in $((end - start))s; image size $((size / 1000000)) MB"
