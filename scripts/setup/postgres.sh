#!/usr/bin/env bash
# PostgreSQL for the store's PostgreSQL test leg (crates/mss-store). The tests run
# initdb and a private server on 127.0.0.1 themselves (mss-testkit/src/postgres.rs);
# the system cluster is never used. Idempotent: a no-op when already installed.
set -euo pipefail

installed() {
    dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q 'install ok installed' &&
        ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

version() {
    for server in /usr/lib/postgresql/*/bin/postgres; do "$server" --version; done | tail -1
}

if installed; then
    echo "PostgreSQL already installed: $(version)"
    exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy postgresql 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    $sudo apt-get update -qq
fi
$sudo apt-get install -y -qq --no-install-recommends postgresql
echo "installed: $(version)"
