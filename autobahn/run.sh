#!/usr/bin/env bash
# Run the Autobahn|Testsuite (wstest 0.8.2, Python 2.7) against the ws-tokio,
# ws-futures, ws-std and ws-compio adapters, as servers (fuzzingclient) and as
# clients (fuzzingserver), then summarise the JSON reports.
#
# From scratch on Debian 12 (bookworm) as root:
#   1. Python 2.7: bookworm ships none, so Debian 11 (bullseye) is added as an
#      apt source pinned at priority 100 (nothing is taken from it unless asked
#      for) and python2.7 + python2.7-dev are installed from it.
#   2. A Python 3 helper venv gets virtualenv<20.22 (the last line able to
#      create Python 2 environments; it seeds pip 20.3.4), which creates a
#      Python 2.7 venv with autobahntestsuite 0.8.2 and its dependencies at
#      pinned versions (what pip resolved for 0.8.2 on 2.7).
#   3. cargo builds each adapter's <prefix>_autobahn_server and
#      <prefix>_autobahn_client examples (prefix: the crate name without
#      "ws-", e.g. tokio_autobahn_server, compio_autobahn_server), one crate
#      at a time, copying each binary aside under a per-adapter name.
#   4. fuzzingclient: the servers listen on 127.0.0.1:$PORT,+1,+2,.. (one port
#      per adapter) and one wstest run tests them all into reports/servers.
#   5. fuzzingserver: wstest listens on $PORT (it binds all interfaces; only
#      loopback is used), each client runs the cases into reports/clients.
#   6. summary.md: per role and agent the count of each outcome, and every
#      case whose behavior or behaviorClose is not OK/INFORMATIONAL with its
#      description and result text. Exit 1 if any case is not OK or
#      INFORMATIONAL (or a report is missing), 0 otherwise.
#
# Environment knobs:
#   REPO=<this repository>   workspace to build
#   AUTOBAHN_DIR=$REPO/target/autobahn  work dir (venvs, binaries, specs, reports, logs)
#   PORT=9001                first port
#   ADAPTERS="ws-tokio ws-futures ws-std ws-compio"
#   SKIP_BUILD=1             reuse $AUTOBAHN_DIR/bin/* from an earlier run
#   DEFLATE_ADAPTERS="ws-tokio ws-futures ws-std ws-compio"  the adapters
#                            that also run cases 12.* and 13.* (permessage-deflate; slow:
#                            several minutes per adapter and role)
set -euo pipefail

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
DIR=${AUTOBAHN_DIR:-$REPO/target/autobahn}
PORT=${PORT:-9001}
ADAPTERS=${ADAPTERS:-"ws-tokio ws-futures ws-std ws-compio"}
DEFLATE_ADAPTERS=${DEFLATE_ADAPTERS-"ws-tokio ws-futures ws-std ws-compio"}
PY2_VENV=$DIR/py2
TOOLS_VENV=$DIR/venv-tools
LOGS=$DIR/logs
REPORTS=$DIR/reports
mkdir -p "$DIR" "$LOGS" "$DIR/bin"

T0=$(date +%s)
log() { printf '[%s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*"; }

PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

wait_port() { # port: wait up to 20 s until something accepts on 127.0.0.1:port
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

port_free() { # port: wait up to 10 s until nothing accepts on 127.0.0.1:port
    # A server just killed may hold its port a moment longer: ws-compio's
    # listening socket is released when the kernel tears its io_uring down,
    # after the process is gone.
    for _ in $(seq 100); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 is already in use; set PORT=" >&2
    return 1
}

# ---------------------------------------------------------------- 1. python2.7
PY2=/usr/bin/python2.7
if ! "$PY2" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
    log "installing python2.7 from Debian bullseye"
    # The same Debian mirror this machine already uses, one release back.
    mirror=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
    if [ -z "$mirror" ]; then
        echo "autobahn/run.sh: no Debian mirror found in the apt sources" >&2
        exit 1
    fi
    cat > /etc/apt/sources.list.d/bullseye-py2.sources <<EOF
Types: deb
URIs: $mirror
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cat > /etc/apt/preferences.d/bullseye-py2 <<'EOF'
Package: *
Pin: release n=bullseye
Pin-Priority: 100
EOF
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bullseye python2.7 python2.7-dev >/dev/null
fi
"$PY2" --version

# ------------------------------------------------------------- 2. wstest venv
if ! "$PY2_VENV/bin/wstest" -a >/dev/null 2>&1; then
    log "creating the Python 2.7 venv with autobahntestsuite 0.8.2"
    rm -rf "$PY2_VENV" "$TOOLS_VENV"
    python3 -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/pip" install -q 'virtualenv<20.22'
    "$TOOLS_VENV/bin/virtualenv" -q -p "$PY2" "$PY2_VENV"
    cat > "$DIR/requirements-py2.txt" <<'EOF'
autobahntestsuite==0.8.2
autobahn==0.10.9
Twisted==20.3.0
txaio==2.1.0
wsaccel==0.6.6
ujson==2.0.3
zope.interface==5.5.2
attrs==21.4.0
Automat==22.10.0
constantly==15.1.0
hyperlink==21.0.0
idna==2.10
incremental==22.10.0
PyHamcrest==1.10.1
six==1.17.0
typing==3.10.0.0
enum34==1.1.10
ipaddress==1.0.23
cffi==1.15.1
pycparser==2.21
cryptography==3.3.2
pyOpenSSL==21.0.0
pyasn1==0.5.1
pyasn1-modules==0.3.0
service-identity==21.1.0
klein==20.6.0
Werkzeug==1.0.1
Tubes==0.2.1
Jinja2==2.11.3
MarkupSafe==1.1.1
unittest2==1.1.0
linecache2==1.0.0
traceback2==1.4.0
EOF
    PYTHONWARNINGS=ignore "$PY2_VENV/bin/pip" install -q --no-python-version-warning \
        -r "$DIR/requirements-py2.txt"
fi
export PYTHONWARNINGS=ignore   # cryptography's "Python 2 is no longer supported"
"$PY2_VENV/bin/wstest" -a 2>/dev/null
WSTEST=$PY2_VENV/bin/wstest

# ------------------------------------------------------------------- 3. build
if [ -z "${SKIP_BUILD:-}" ]; then
    TARGET=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    for a in $ADAPTERS; do
        log "building $a examples"
        prefix=${a#ws-} # ws-tokio -> tokio_autobahn_server, ws-compio -> compio_...
        (cd "$REPO" && cargo build --release -q -p "$a" \
            --example "${prefix}_autobahn_server" --example "${prefix}_autobahn_client")
        cp "$TARGET/release/examples/${prefix}_autobahn_server" "$DIR/bin/server-$a"
        cp "$TARGET/release/examples/${prefix}_autobahn_client" "$DIR/bin/client-$a"
    done
fi

# Cases 12.* and 13.* (permessage-deflate) run for DEFLATE_ADAPTERS only.
EXCLUDE_AGENTS=""
for a in $ADAPTERS; do
    case " $DEFLATE_ADAPTERS " in
    *" $a "*) ;;
    *) EXCLUDE_AGENTS+="${EXCLUDE_AGENTS:+, }\"$a\": [\"12.*\", \"13.*\"]" ;;
    esac
done

# ---------------------------------------------------------- 4. fuzzingclient
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
SERVERS_JSON=""
p=$PORT
for a in $ADAPTERS; do
    port_free "$p"
    "$DIR/bin/server-$a" "127.0.0.1:$p" > "$LOGS/server-$a.log" 2>&1 &
    PIDS+=($!)
    echo $! > "$LOGS/server-$a.pid"
    SERVERS_JSON+="${SERVERS_JSON:+,}
    {\"agent\": \"$a\", \"url\": \"ws://127.0.0.1:$p\"}"
    p=$((p + 1))
done
cat > "$DIR/spec.json" <<EOF
{
  "options": {"failByDrop": false},
  "outdir": "$REPORTS/servers",
  "servers": [$SERVERS_JSON
  ],
  "cases": ["*"],
  "exclude-cases": [],
  "exclude-agent-cases": {$EXCLUDE_AGENTS}
}
EOF
p=$PORT
for a in $ADAPTERS; do wait_port "$p"; p=$((p + 1)); done
log "fuzzingclient: testing the servers"
t=$(date +%s)
(cd "$DIR" && timeout 1800 "$WSTEST" -m fuzzingclient -s spec.json) > "$LOGS/fuzzingclient.log" 2>&1
log "fuzzingclient done in $(( $(date +%s) - t )) s"
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
# Wait until they are gone, so that the port is free for the fuzzing server.
for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
PIDS=()

# ---------------------------------------------------------- 5. fuzzingserver
port_free "$PORT"
cat > "$DIR/fuzzingserver.json" <<EOF
{
  "url": "ws://127.0.0.1:$PORT",
  "options": {"failByDrop": false},
  "outdir": "$REPORTS/clients",
  "webport": 0,
  "cases": ["*"],
  "exclude-cases": [],
  "exclude-agent-cases": {$EXCLUDE_AGENTS}
}
EOF
(cd "$DIR" && exec "$WSTEST" -m fuzzingserver -s fuzzingserver.json) > "$LOGS/fuzzingserver.log" 2>&1 &
WSPID=$!
PIDS+=($WSPID)
wait_port "$PORT"
t=$(date +%s)
for a in $ADAPTERS; do
    log "fuzzingserver: testing the $a client"
    ta=$(date +%s)
    timeout 1500 "$DIR/bin/client-$a" "ws://127.0.0.1:$PORT" "$a" > "$LOGS/client-$a.log" 2>&1 \
        || log "client $a exited with $?"
    log "client $a done in $(( $(date +%s) - ta )) s"
done
log "fuzzingserver done in $(( $(date +%s) - t )) s"
kill "$WSPID" 2>/dev/null || true
PIDS=()

# -------------------------------------------------------------- 6. summarise
cat > "$DIR/summarise.py" <<'EOF'
import collections, json, os, sys

ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
FINE = ("OK", "INFORMATIONAL")
bad = False
for d in sys.argv[1:]:
    role = os.path.basename(os.path.normpath(d))
    path = os.path.join(d, "index.json")
    if not os.path.exists(path):
        print("## %s: no index.json in %s\n" % (role, d))
        bad = True
        continue
    index = json.load(open(path))
    print("## %s\n" % role)
    print("| agent | cases | " + " | ".join(ORDER) + " | other |")
    print("|---|---|" + "---|" * (len(ORDER) + 1))
    details = []
    for agent in sorted(index):
        cases = index[agent]
        counts = collections.Counter()
        for cid in sorted(cases, key=lambda c: [int(x) for x in c.split(".")]):
            r = cases[cid]
            b, bc = r.get("behavior"), r.get("behaviorClose")
            counts[b if b in ORDER else "other"] += 1
            # Strict: NON-STRICT and UNIMPLEMENTED fail the run too.
            if b not in FINE or bc not in FINE:
                bad = True
            if b in FINE and bc in FINE:
                continue
            c = {}
            if r.get("reportfile") and os.path.exists(os.path.join(d, r["reportfile"])):
                c = json.load(open(os.path.join(d, r["reportfile"])))
            result = c.get("result", "")
            if bc not in FINE:
                result += " | close: " + c.get("resultClose", "")
            details.append("- %s %s: behavior=%s behaviorClose=%s\n  description: %s\n  result: %s"
                           % (agent, cid, b, bc, " ".join(c.get("description", "").split()),
                              " ".join(result.split())))
        print("| %s | %d | %s | %d |" % (agent, len(cases),
              " | ".join(str(counts[k]) for k in ORDER), counts["other"]))
    print()
    if details:
        print("### %s: cases not OK/INFORMATIONAL\n" % role)
        print("\n".join(details))
    else:
        print("Every case OK or INFORMATIONAL.")
    print()
sys.exit(1 if bad else 0)
EOF
status=0
python3 "$DIR/summarise.py" "$REPORTS/servers" "$REPORTS/clients" > "$DIR/summary.md" || status=$?
cat "$DIR/summary.md"
log "total wall time $(( $(date +%s) - T0 )) s; reports in $REPORTS, summary in $DIR/summary.md"
exit $status
