#!/usr/bin/env bash
# dnsmasq (binary only, no system service) as a real DNS server for the autoconfiguration
# tests: they start a private instance on 127.0.0.1 that serves RFC 6186 SRV records.
# Idempotent: a no-op when it is already installed.
set -euo pipefail

if dpkg-query -W -f='${Status}' dnsmasq-base 2>/dev/null | grep -q 'install ok installed'; then
    echo "dnsmasq already installed: $(dnsmasq --version | head -1)"
    exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy dnsmasq-base 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    $sudo apt-get update -qq
fi
$sudo apt-get install -y -qq --no-install-recommends dnsmasq-base
echo "installed: dnsmasq-base"
