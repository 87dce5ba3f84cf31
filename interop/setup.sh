#!/usr/bin/env bash
# Installs the interop peers used by crates/ws-interop/tests/peers.rs:
#   interop/.venv            Python venv with `websockets` (interop/python/requirements.txt)
#   interop/node/node_modules  Node.js `ws` (interop/node/package.json + package-lock.json)
# Idempotent: re-running only installs what is missing or out of date.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# --- Python ---------------------------------------------------------------
python="${PYTHON:-python3}"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    echo "interop/setup.sh: creating $venv"
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$here/python/requirements.txt"; then
    echo "interop/setup.sh: pip install failed" >&2
    exit 1
fi
"$venv/bin/python" -c 'import websockets; print("interop/setup.sh: python websockets", websockets.__version__)'

# --- Node ------------------------------------------------------------------
cd "$here/node"
# The installed tree matches the lock when npm's hidden lockfile lists the same packages.
installed_matches_lock() {
    [ -f node_modules/.package-lock.json ] && node -e '
        const strip = (l) => { const p = { ...l.packages }; delete p[""]; return JSON.stringify(p); };
        const lock = require("./package-lock.json");
        const installed = require("./node_modules/.package-lock.json");
        process.exit(strip(lock) === strip(installed) ? 0 : 1);'
}
if [ -f package-lock.json ]; then
    if installed_matches_lock; then
        echo "interop/setup.sh: node_modules up to date"
    else
        npm ci --no-audit --no-fund --loglevel=error
    fi
else
    npm install --no-audit --no-fund --loglevel=error
fi
node -e 'console.log("interop/setup.sh: node ws", require("ws/package.json").version)'
