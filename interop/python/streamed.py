#!/usr/bin/env python3
"""Python `websockets` peer for the streamed-message tests of crates/ws-interop
(tests/peers.rs, `streamed_*`): one very large fragmented message each way,
checked by length and SHA-256 on both sides, never held whole on either.

Usage:
    streamed.py server <port-or-0>
        Server on 127.0.0.1. Prints `PORT <n>` once listening, then runs the
        exchange below on every connection until killed; prints `OK <figures>`
        or `FAIL <why>` per connection.

    streamed.py client <ws-url>
        Runs the exchange once against <ws-url>; exits 0 printing `OK
        <figures>` only if every check passes.

The exchange (the same in both roles; "we" are this script):
  1. We send STREAM_SIZE bytes as one message of STREAM_KIND (`binary` or
     `text`), in fragments of STREAM_CHUNK bytes (default 1 MiB) made on the
     fly from a deterministic pattern and hashed as they are sent. Text is
     UTF-8 with 1- to 4-byte code points cut anywhere by the fragment ends.
  2. The other side answers with a text message "<length> <sha256 hex>":
     it must match what we sent.
  3. The other side sends one message of the other kind (any size), which we
     receive fragment by fragment (`recv_streaming`), hashing as it comes.
  4. We answer with "<length> <sha256 hex>" of what we received.
  5. The other side closes with 1000 if our answer matched what it sent
     (anything else carries its complaint in the reason).

Compression is off unless PEER_DEFLATE=default (websockets' own
permessage-deflate settings; the connection fails unless it was negotiated).
STREAM_TIMEOUT (seconds, default 600) bounds one exchange.
"""

import asyncio
import hashlib
import os
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from peer_common import CheckFailed, check, main, negotiated_deflate, pattern_fragments

SIZE = int(os.environ.get("STREAM_SIZE", str(256 << 20)))
CHUNK = int(os.environ.get("STREAM_CHUNK", str(1 << 20)))
KIND = os.environ.get("STREAM_KIND", "binary")
DEFLATE = os.environ.get("PEER_DEFLATE", "")
TIMEOUT = float(os.environ.get("STREAM_TIMEOUT", "600"))

# 1-, 2-, 3- and 4-byte code points; its length (33 bytes) does not divide the chunk size.
TEXT_PATTERN = "streamed \u00e9\u00e8 \u2713\u2192 \U0001f389\U0001f680 \u0436!".encode()


def fragments(size, chunk, text):
    """The message's fragments, generated on the fly."""
    if text:
        # Whole repetitions of the pattern, so the message ends on a code point.
        size -= size % len(TEXT_PATTERN)
        return pattern_fragments(TEXT_PATTERN, size, chunk)
    return pattern_fragments(bytes(i ^ 0x5A for i in range(251)), size, chunk)


def compression_options():
    if not DEFLATE:
        return dict(compression=None)
    if DEFLATE == "default":
        return dict(compression="deflate")
    raise SystemExit(f"streamed.py: PEER_DEFLATE={DEFLATE!r}: only `default` is supported")


async def exchange(ws):
    """Steps 1-5 of the module doc; returns the figures for the `OK` line."""
    check(not DEFLATE or negotiated_deflate(ws), "permessage-deflate was not negotiated")
    text = KIND == "text"
    started = time.monotonic()

    # 1. Our message, hashed as it is sent.
    digest = hashlib.sha256()
    length = 0

    async def chunks():
        nonlocal length
        for piece in fragments(SIZE, CHUNK, text):
            digest.update(piece)
            length += len(piece)
            yield piece

    await ws.send(chunks(), text=text)
    sent_in = time.monotonic() - started

    # 2. Their account of it.
    expected = f"{length} {digest.hexdigest()}"
    answer = await ws.recv()
    check(answer == expected, f"they received {answer!r}, we sent {expected!r}")

    # 3. Their message, fragment by fragment.
    started = time.monotonic()
    digest = hashlib.sha256()
    length = fragments_in = largest = 0
    kind = None
    async for fragment in ws.recv_streaming():
        if isinstance(fragment, str):
            fragment = fragment.encode()
            this = "text"
        else:
            this = "binary"
        check(kind in (None, this), f"a {this} fragment in a {kind} message")
        kind = this
        digest.update(fragment)
        length += len(fragment)
        fragments_in += 1
        largest = max(largest, len(fragment))
    received_in = time.monotonic() - started
    other = "binary" if text else "text"
    check(kind == other, f"their message is {kind}, expected {other}")

    # 4. Our account of it; 5. their verdict.
    await ws.send(f"{length} {digest.hexdigest()}")
    try:
        message = await ws.recv()
        raise CheckFailed(f"expected their close, got a message {message!r:.80}")
    except ConnectionClosed as closed:
        rcvd = closed.rcvd
        check(rcvd is not None, "the connection ended without a Close frame")
        check(rcvd.code == 1000, f"they closed with {rcvd.code} {rcvd.reason!r}")
    mib = SIZE / (1 << 20)
    return (
        f"sent {mib:.0f} MiB {KIND} in {sent_in:.2f}s; received {length} bytes {kind} "
        f"in {fragments_in} fragments (largest {largest}) in {received_in:.2f}s; "
        f"deflate {negotiated_deflate(ws)}"
    )


def options():
    return dict(
        **compression_options(),
        max_size=None,
        ping_interval=None,
        close_timeout=30,
    )


async def handler(ws):
    try:
        figures = await asyncio.wait_for(exchange(ws), TIMEOUT)
        print(f"OK {figures}", flush=True)
    except Exception as e:  # noqa: BLE001 - report, and tell the other side
        print(f"FAIL {type(e).__name__}: {e}", flush=True)
        await ws.close(4003, f"{type(e).__name__}: {e}"[:120])


async def run_server(port):
    server = await serve(handler, "127.0.0.1", port, **options())
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    await server.serve_forever()


async def run_client(url):
    ws = await connect(url, open_timeout=30, **options())
    try:
        return await exchange(ws)
    except CheckFailed as e:
        await ws.close(4003, str(e)[:120])
        raise


if __name__ == "__main__":
    sys.exit(main(sys.argv, __doc__, run_server, run_client, TIMEOUT))
