#!/usr/bin/env bash
# Installs the interop peers used by crates/ws-interop/tests/peers.rs and
# what the wsx tests need (crates/ws-cli/tests):
#   chromium, redis-server     Debian packages (apt-get; needs root when missing)
#   interop/.venv            Python venv with `websockets` (interop/python/requirements.txt)
#   interop/node/node_modules  Node.js `ws` (interop/node/package.json + package-lock.json)
#   interop/browser/node_modules  playwright-core, which drives /usr/bin/chromium
#                                 (interop/browser/package.json + package-lock.json)
# Idempotent: re-running only installs what is missing or out of date.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# --- Debian packages -------------------------------------------------------
# Debian's Chromium for interop/browser/chat_test.mjs (playwright-core
# downloads no browser), redis-server for `wsx serve --redis`.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "interop/setup.sh: missing Debian packages (${missing[*]}); as root: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "interop/setup.sh: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Package lists may be missing or stale on a fresh machine: update only then.
    if ! apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q "${missing[@]}" >/dev/null
    fi
fi

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
# The installed tree matches the lock when npm's hidden lockfile lists the same packages.
installed_matches_lock() {
    [ -f node_modules/.package-lock.json ] && node -e '
        const strip = (l) => { const p = { ...l.packages }; delete p[""]; return JSON.stringify(p); };
        const lock = require("./package-lock.json");
        const installed = require("./node_modules/.package-lock.json");
        process.exit(strip(lock) === strip(installed) ? 0 : 1);'
}
# Installs interop/$1/node_modules from its lock, unless it is there already.
npm_install() {
    cd "$here/$1"
    if [ -f package-lock.json ]; then
        if installed_matches_lock; then
            echo "interop/setup.sh: $1/node_modules up to date"
        else
            npm ci --no-audit --no-fund --loglevel=error
        fi
    else
        npm install --no-audit --no-fund --loglevel=error
    fi
}
npm_install node
node -e 'console.log("interop/setup.sh: node ws", require("ws/package.json").version)'
npm_install browser
node -e 'console.log("interop/setup.sh: playwright-core", require("playwright-core/package.json").version)'
