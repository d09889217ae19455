#!/usr/bin/env bash
# Build the wheelhouse that docker/Dockerfile installs from (pip --no-index).
#
# Runs on the host with the host's CPython 3.11 (the image's interpreter is
# CPython 3.11 too, so cp311 / abi3 / manylinux wheels match).  The result:
#
#   docker/wheelhouse/deps/*.whl     every runtime dependency, resolved by pip,
#                                    with the sql extra (duckdb, pyarrow, psycopg)
#   docker/wheelhouse/project/*.whl  the mpc wheel itself
#
# Two directories so the image's dependency layer stays cached while only the
# project changes.  The directory is recreated on every run (no stale wheels)
# and must be git-ignored (`/docker/wheelhouse/`).
#
# The project wheel is built from a clean copy of the source tree (tracked and
# untracked, not git-ignored files), so a stale ./build/ directory can never
# leak deleted modules into the wheel.
#
# Usage: bash docker/build-wheelhouse.sh
# Environment:
#   PYTHON          interpreter to use   (default python3.11, else python3)
#   WHEELHOUSE      output directory     (default <repo>/docker/wheelhouse)
#   PIP_WHEEL_ARGS  extra args for pip wheel (e.g. "--no-index --find-links DIR" offline)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
WHEELHOUSE="${WHEELHOUSE:-$repo/docker/wheelhouse}"

log() { printf '[build-wheelhouse] %s\n' "$*" >&2; }
die() { printf '[build-wheelhouse] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -z "${PYTHON:-}" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; set PYTHON to a CPython 3.11 interpreter"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ "$pyver" == "3.11" ]] || die "$PYTHON is Python $pyver; the image runs CPython 3.11, set PYTHON to a 3.11 interpreter"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip"
[[ -f "$repo/pyproject.toml" ]] || die "no pyproject.toml in $repo"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mpc-wheelhouse.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
src="$tmp/src"
mkdir -p "$src" "$tmp/all"

# Clean copy of the sources (files deleted but still in git's index are skipped).
# shellcheck disable=SC2016
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 -r sh -c 'for f; do if [ -e "$f" ]; then printf "%s\0" "$f"; fi; done' sh \
        | tar --null -T - -cf -) | tar -C "$src" -xf -
else
    tar -C "$repo" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude=./docker/wheelhouse -cf - . \
        | tar -C "$src" -xf -
fi
rm -rf "$src/docker/wheelhouse"

# Reproducible zip timestamps: an unchanged source tree gives a byte-identical
# mpc wheel, hence a Docker cache hit.
if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
    SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || true)
    export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-315532800}"
fi

start=$(date +%s)
log "pip wheel (Python $pyver: $(command -v "$PYTHON")) -> $WHEELHOUSE"
# shellcheck disable=SC2086
if ! "$PYTHON" -m pip wheel --disable-pip-version-check --prefer-binary \
        --wheel-dir "$tmp/all" ${PIP_WHEEL_ARGS:-} "$src[sql]" >"$tmp/pip.log" 2>&1; then
    tail -n 40 "$tmp/pip.log" >&2
    die "pip wheel failed (the package may not build in its current state; output above)"
fi

shopt -s nullglob
project=("$tmp"/all/mpc-[0-9]*.whl)
[[ ${#project[@]} -eq 1 ]] || die "expected exactly one mpc-*.whl, found ${#project[@]}"
mkdir -p "$tmp/out/deps" "$tmp/out/project"
mv "${project[0]}" "$tmp/out/project/"
deps=("$tmp"/all/*.whl)
[[ ${#deps[@]} -gt 0 ]] && mv "${deps[@]}" "$tmp/out/deps/"

# Wheels built locally from sdists carry the host's libraries; flag them.
for w in "$tmp"/out/deps/*-linux_*.whl; do
    log "WARNING: $(basename "$w") is not a manylinux wheel (built on this host from source)"
done

rm -rf "$WHEELHOUSE"
mkdir -p "$(dirname "$WHEELHOUSE")"
mv "$tmp/out" "$WHEELHOUSE"
printf '# Built by docker/build-wheelhouse.sh; git-ignored; do not commit.\n' >"$WHEELHOUSE/README"

n=$(find "$WHEELHOUSE" -name '*.whl' | wc -l)
log "$n wheels ($(du -sh "$WHEELHOUSE" | cut -f1)) in $(( $(date +%s) - start ))s:"
(cd "$WHEELHOUSE" && ls -1 project/*.whl deps/*.whl) | sed 's/^/    /' >&2
