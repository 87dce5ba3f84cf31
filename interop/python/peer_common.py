"""What the Python `websockets` peers of crates/ws-interop (peer.py,
streamed.py) and interop/stream_digest_check.py share: checks, the
permessage-deflate test, a large message made on the fly, and the command
line of a peer."""

import asyncio
import sys


class CheckFailed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise CheckFailed(what)


def negotiated_deflate(ws):
    return any(e.name == "permessage-deflate" for e in ws.protocol.extensions)


def pattern_fragments(unit, size, chunk):
    """`size` bytes of `unit` repeated, as fragments of `chunk` bytes made on
    the fly. Each is a slice of one pre-made buffer (at the offset where the
    pattern continues), so that making 256 MiB costs no more than copying it."""
    period = len(unit)
    base = memoryview(unit * (chunk // period + 2))
    sent = 0
    while sent < size:
        n = min(chunk, size - sent)
        start = sent % period
        yield base[start : start + n]
        sent += n


def main(argv, usage, run_server, run_client, timeout):
    """The command line of a peer: `server <port-or-0>` runs
    `run_server(port)` until interrupted; `client <ws-url>` runs
    `run_client(url)` within `timeout` seconds and exits 0 printing `OK` (and
    what it returned, if anything), or 1 after `FAIL: <why>` on stderr.
    Anything else prints `usage` and exits 2."""
    if len(argv) == 3 and argv[1] == "server":
        try:
            asyncio.run(run_server(int(argv[2])))
        except KeyboardInterrupt:
            pass
        return 0
    if len(argv) == 3 and argv[1] == "client":
        try:
            figures = asyncio.run(asyncio.wait_for(run_client(argv[2]), timeout))
        except Exception as e:  # noqa: BLE001 - report any failure as exit 1
            print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            return 1
        print("OK" if figures is None else f"OK {figures}", flush=True)
        return 0
    print(usage, file=sys.stderr)
    return 2
