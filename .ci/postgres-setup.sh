#!/usr/bin/env bash
# Make PostgreSQL server binaries available for the PostgreSQL source tests
# (tests/pg.py starts a throwaway server from them; with CI=true the tests fail
# rather than skip when they are missing).
#
# Idempotent and fast when the binaries are already there: installs Debian's
# `postgresql` package (server binaries under /usr/lib/postgresql/<v>/bin and
# the `postgres` OS user that runs the test server when the tests run as root)
# only if no initdb is found. No server is started or enabled here.
#
# Usage (as root): bash .ci/postgres-setup.sh     (called by .ci/run before the tests)
set -euo pipefail

log() { printf '[postgres-setup] %s\n' "$*" >&2; }
die() { printf '[postgres-setup] ERROR: %s\n' "$*" >&2; exit 1; }

have_initdb() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1
}

if ! have_initdb; then
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL server binaries missing; run as root: sudo bash .ci/postgres-setup.sh"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian/Ubuntu only"
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp /tmp/postgres-setup-apt.XXXXXX)
    # policy-rc.d: do not start the packaged cluster; the tests run their own server.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
    fi
    if ! { apt-get -o DPkg::Lock::Timeout=120 update -q \
           && apt-get -o DPkg::Lock::Timeout=120 install -y -q --no-install-recommends postgresql; } \
           >"$apt_log" 2>&1; then
        [[ $created_policy -eq 1 ]] && rm -f "$policy"
        tail -n 30 "$apt_log" >&2
        die "apt-get install postgresql failed (full log: $apt_log)"
    fi
    [[ $created_policy -eq 1 ]] && rm -f "$policy"
    rm -f "$apt_log"
    have_initdb || die "no initdb after installing postgresql"
fi
if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    die "no 'postgres' OS user: the tests run the server as that user when run as root"
fi
log "PostgreSQL binaries: $(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -1 || command -v initdb)")"
