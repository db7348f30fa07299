#!/usr/bin/env bash
# Python 3 (standard library only) for the sandbox's independent-client test
# (crates/mss-sandbox/tests/python/independent_client.py: urllib, ssl, smtplib, imaplib).
# Idempotent: a no-op when python3 is already there.
set -euo pipefail

if command -v python3 >/dev/null 2>&1; then
    echo "python3 already installed: $(python3 --version)"
    exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy python3 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    $sudo apt-get update -qq
fi
$sudo apt-get install -y -qq --no-install-recommends python3
echo "installed: $(python3 --version)"
