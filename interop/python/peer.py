#!/usr/bin/env python3
"""Python `websockets` interop peer for crates/ws-interop.

Usage:
    peer.py server <port-or-0>
        Echo server on 127.0.0.1. Prints `PORT <n>` once listening, then serves
        until killed. Text is echoed as text, binary as binary. Subprotocol
        `chat` is selected when offered (and none otherwise). Commands (text):
          close-me    close with 4001 "bye"
          ping-me     ping with b"from-server", reply "pong-received" once the pong is in
          last-close  reply "<code> <reason>" of the last connection that closed
                      ("none" before any)

    peer.py client <ws-url>
        Runs the fixed scenario against one of our servers (which must speak the
        same commands) and exits 0 printing `OK` only if every check passes:
          connection 1: `chat` negotiated; text and binary echo at
            0, 125, 126, 65535, 65536 and 1048576 bytes, a UTF-8 text, and a
            fragmented text and binary message (sent in several frames);
            a ping answered by its pong; `ping-me` answered by "pong-received";
            then we close with 1000 "done" and expect the server's echo with code 1000.
          connection 2: no subprotocol offered (none may be chosen); we send
            `close-me` and expect the server's Close 4001 "bye".

Messages up to 16 MiB are accepted on both sides. Compression is off unless
PEER_DEFLATE is set, to `default` (websockets' own settings), `no-takeover`
(both directions reset their context after each message) or `bits-S-C` (server
and client max window bits S and C): then permessage-deflate is offered
(client) or accepted (server), and a connection that did not negotiate it fails
(client: the scenario; server: closed with 4002).

TLS: with PEER_TLS_CERT and PEER_TLS_KEY (PEM files) the server serves wss://;
with PEER_TLS_CA the client trusts that CA (for a wss:// URL).
"""

import asyncio
import os
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

from peer_common import CheckFailed, check, main, negotiated_deflate

MAX_SIZE = 16 * 1024 * 1024
SIZES = [0, 125, 126, 65535, 65536, 1048576]
UTF8_TEXT = "h\u00e9llo w\u00f6rld \u2713 \U0001f389"
TIMEOUT = 30

LAST_CLOSE = "none"
DEFLATE = os.environ.get("PEER_DEFLATE", "")


def deflate_options(factory):
    """The connect() / serve() arguments for PEER_DEFLATE."""
    if not DEFLATE:
        return dict(compression=None)
    if DEFLATE == "default":
        return dict(compression="deflate")
    params = {}
    if DEFLATE == "no-takeover":
        params = dict(server_no_context_takeover=True, client_no_context_takeover=True)
    elif DEFLATE.startswith("bits-"):
        server, client = (int(bits) for bits in DEFLATE[5:].split("-"))
        params = dict(server_max_window_bits=server, client_max_window_bits=client)
    return dict(compression=None, extensions=[factory(**params)])


def tls_options(side):
    """The ssl argument of serve() / connect() from PEER_TLS_*."""
    if side == "server" and os.environ.get("PEER_TLS_CERT"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.environ["PEER_TLS_CERT"], os.environ["PEER_TLS_KEY"])
        return dict(ssl=context)
    if side == "client" and os.environ.get("PEER_TLS_CA"):
        return dict(ssl=ssl.create_default_context(cafile=os.environ["PEER_TLS_CA"]))
    return {}


def select_chat(_connection, subprotocols):
    return "chat" if "chat" in subprotocols else None


async def handler(ws):
    global LAST_CLOSE
    if DEFLATE and not negotiated_deflate(ws):
        await ws.close(4002, "no deflate")
        return
    try:
        async for message in ws:
            if message == "close-me":
                await ws.close(4001, "bye")
                break
            if message == "ping-me":
                pong = await ws.ping(b"from-server")
                await asyncio.wait_for(pong, TIMEOUT)
                await ws.send("pong-received")
            elif message == "last-close":
                await ws.send(LAST_CLOSE)
            else:
                await ws.send(message)
    except ConnectionClosed:
        pass
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    LAST_CLOSE = f"{ws.close_code} {ws.close_reason}"


async def run_server(port):
    server = await serve(
        handler,
        "127.0.0.1",
        port,
        select_subprotocol=select_chat,
        **deflate_options(ServerPerMessageDeflateFactory),
        **tls_options("server"),
        max_size=MAX_SIZE,
        ping_interval=None,
        close_timeout=TIMEOUT,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    await server.serve_forever()


def text_of(size):
    pattern = "abcdefghijklmnopqrstuvwxyz0123456789"
    return (pattern * (size // len(pattern) + 1))[:size]


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def scenario(url):
    options = dict(
        subprotocols=["chat"],
        **deflate_options(ClientPerMessageDeflateFactory),
        **tls_options("client"),
        max_size=MAX_SIZE,
        ping_interval=None,
        close_timeout=TIMEOUT,
        open_timeout=TIMEOUT,
    )
    # Connection 1: echo, pings, client-initiated close.
    ws = await connect(url, **options)
    check(ws.subprotocol == "chat", f"subprotocol {ws.subprotocol!r}, expected 'chat'")
    check(not DEFLATE or negotiated_deflate(ws), "permessage-deflate was not negotiated")
    for size in SIZES:
        text = text_of(size)
        await ws.send(text)
        echo = await recv(ws)
        check(isinstance(echo, str), f"text echo of {size} bytes came back as {type(echo).__name__}")
        check(echo == text, f"text echo of {size} bytes differs (got {len(echo)} chars)")
        data = os.urandom(size)
        await ws.send(data)
        echo = await recv(ws)
        check(isinstance(echo, bytes), f"binary echo of {size} bytes came back as {type(echo).__name__}")
        check(echo == data, f"binary echo of {size} bytes differs (got {len(echo)} bytes)")
    await ws.send(UTF8_TEXT)
    echo = await recv(ws)
    check(echo == UTF8_TEXT, f"UTF-8 echo differs: {echo!r}")
    # Fragmented messages: one frame per piece, continuation frames after the first.
    await ws.send(["frag", "men", "ted \u2713"])
    echo = await recv(ws)
    check(echo == "fragmented \u2713", f"fragmented text echo differs: {echo!r}")
    await ws.send([b"\x00\x01", b"", b"\x02" * 70000])
    echo = await recv(ws)
    check(echo == b"\x00\x01" + b"\x02" * 70000, f"fragmented binary echo differs ({len(echo)} bytes)")
    pong = await ws.ping(b"from-client")
    await asyncio.wait_for(pong, TIMEOUT)
    await ws.send("ping-me")
    reply = await recv(ws)
    check(reply == "pong-received", f"ping-me answered {reply!r}")
    await asyncio.wait_for(ws.close(1000, "done"), TIMEOUT)
    # The echo repeats the code; the reason of an echo is the echoing side's choice.
    check(ws.close_code == 1000, f"close echo {ws.close_code} {ws.close_reason!r}, expected 1000")

    # Connection 2: no subprotocol offered, server-initiated close.
    del options["subprotocols"]
    ws = await connect(url, **options)
    check(ws.subprotocol is None, f"connection 2: subprotocol {ws.subprotocol!r} though none was offered")
    await ws.send("close-me")
    try:
        message = await recv(ws)
        raise CheckFailed(f"expected the server's close, got a message {message!r}")
    except ConnectionClosed as closed:
        rcvd = closed.rcvd
        check(rcvd is not None, "connection ended without a Close frame from the server")
        check(
            (rcvd.code, rcvd.reason) == (4001, "bye"),
            f"server closed with {rcvd.code} {rcvd.reason!r}, expected 4001 'bye'",
        )
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)


if __name__ == "__main__":
    sys.exit(main(sys.argv, __doc__, run_server, scenario, 4 * TIMEOUT))
