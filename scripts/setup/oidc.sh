#!/usr/bin/env bash
# oidc-provider (node) for the Pro Santé Connect stand-in used by the interop tests.
# Installs the exact versions of the committed package-lock.json; a no-op when present.
set -euo pipefail
cd "$(dirname "$0")/../../crates/mss-testkit/oidc"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node and npm are needed for the oidc-provider stand-in" >&2
    exit 1
fi
if [ -f node_modules/oidc-provider/package.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    echo "oidc-provider already installed: $(node -p 'require("./node_modules/oidc-provider/package.json").version') on node $(node --version)"
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "installed oidc-provider $(node -p 'require("./node_modules/oidc-provider/package.json").version')"
