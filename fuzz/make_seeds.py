#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/<target>/) from RFC 6455 vectors and
the shapes the test suite uses. Re-run after changing an input layout."""
import base64, hashlib, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])

def frame(op, payload=b"", fin=True, mask=None, rsv=0):
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | op])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload

def frames(mask):
    m = KEY if mask else None
    return {
        "hello": frame(1, b"Hello", mask=m),
        "fragmented": frame(1, b"Hel", fin=False, mask=m) + frame(9, b"p", mask=m) + frame(0, b"lo", mask=m),
        "ping_pong": frame(9, b"Hello", mask=m) + frame(10, b"Hello", mask=m),
        "close_normal": frame(8, struct.pack(">H", 1000) + b"bye", mask=m),
        "close_empty": frame(8, b"", mask=m),
        "binary_256": frame(2, bytes(range(256)), mask=m),
        "binary_65536": frame(2, bytes(65536), mask=m),
        "bad_utf8": frame(1, "κόσμε".encode() + b"\xed\xa0\x80", mask=m),
        "rsv": frame(1, b"x", mask=m, rsv=4),
        "wrong_mask": frame(1, b"x", mask=None if mask else KEY),
        "big_header": bytes([0x82, (0x80 if mask else 0) | 127]) + struct.pack(">Q", 1 << 40),
        "ping_flood": frame(9, b"!", mask=m) * 64,
    }

def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)

for name, data in frames(True).items():
    write("server_connection", name, bytes([0, 1]) + data)
    write("server_connection", name + "_bytewise", bytes([1, 2]) + data)
    write("frame_header", name, data[:14])
for name, data in frames(False).items():
    write("client_connection", name, bytes([0, 1]) + data)
    write("client_connection", name + "_chunked", bytes([3, 2]) + data)

request = (b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
write("server_handshake", "rfc_request", bytes([0]) + request)
write("server_handshake", "rfc_request_bytewise", bytes([1]) + request)
write("server_handshake", "version_8", bytes([0]) + request.replace(b"Version: 13", b"Version: 8"))

nonce_key = base64.b64encode(bytes(16))
accept = base64.b64encode(hashlib.sha1(nonce_key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: chat\r\n"
            b"Sec-WebSocket-Extensions: x-test; a=1\r\n\r\n")
write("client_handshake", "accepted", bytes([0, 0]) + response + frame(1, b"early"))
write("client_handshake", "rejected", bytes([7, 1]) + b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbid")

for i, text in enumerate(["hello", "κόσμε", "\U0010FFFF\uFFFD", "a\u00e9\u4e2d\U0001F600"]):
    write("utf8", f"valid_{i}", bytes([1]) + text.encode())
for i, bad in enumerate([b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xf0\x9f\x98", b"\xce\xba\xe1\xbd\xb9\xff"]):
    write("utf8", f"invalid_{i}", bytes([2]) + bad)

write("roundtrip", "empty", bytes(8))
write("roundtrip", "some_ops", bytes(range(64)))

# permessage-deflate (RFC 7692 section 7.2.3 examples, a small bomb).
import zlib
def raw_deflate(data, level=9):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]

HELLO = bytes([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
write("inflate", "hello", bytes([0x0f, 0]) + HELLO)
write("inflate", "hello_fragments", bytes([0x0f, 3]) + HELLO)
write("inflate", "hello_twice", bytes([0x2f, 0]) + HELLO)
write("inflate", "stored", bytes([0x0f, 0]) + bytes([0x00, 0x05, 0x00, 0xfa, 0xff]) + b"Hello" + b"\x00")
write("inflate", "bfinal", bytes([0x0f, 0]) + bytes([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]))
write("inflate", "bomb", bytes([0x07, 0]) + raw_deflate(bytes(256 * 1024)))
write("inflate", "window_9", bytes([0x01, 200]) + raw_deflate(b"the quick brown fox " * 40))

rfc = {
    "hello": frame(1, HELLO, rsv=4),
    "shared_window": frame(1, HELLO, rsv=4) + frame(1, bytes([0xf2, 0x00, 0x11, 0x00, 0x00]), rsv=4),
    "fragmented": frame(1, HELLO[:3], fin=False, rsv=4) + frame(0, HELLO[3:]),
    "rsv1_continuation": frame(1, HELLO[:3], fin=False, rsv=4) + frame(0, HELLO[3:], rsv=4),
    "plain_then_compressed": frame(1, b"Hello") + frame(2, raw_deflate(bytes(range(256)) * 8), rsv=4),
}
for name, data in rfc.items():
    # Byte 0 role (1: client), byte 1 chunk size, byte 2 flags (15 bits).
    write("deflate_connection", name + "_client", bytes([1, 0, 7 << 2]) + data)
    masked = b""
    rest = data
    while rest:
        n = rest[1] & 0x7f
        head, ext = rest[:2], 2
        if n == 126:
            n, ext = struct.unpack(">H", rest[2:4])[0], 4
        payload = rest[ext:ext + n]
        masked += frame(rest[0] & 0x0f, payload, fin=bool(rest[0] & 0x80), mask=KEY, rsv=(rest[0] >> 4) & 7)
        rest = rest[ext + n:]
    write("deflate_connection", name + "_server_bytewise", bytes([0, 1, (7 << 2) | 1]) + masked)

# Streaming (flags bits 6-7: 1 Always, 2 Above(ABOVE[low nibble]), 3 Above(low * 13 + 1);
# then one byte whose high nibble picks max_streamed_message_size, see common.rs).
ALWAYS, ABOVE_TABLE, ABOVE_STEP = 0x40, 0x80, 0xC0
SPLIT_TEXT = "κόσμε €𝄞".encode()
def streamed(mask):
    m = KEY if mask else None
    return {
        "fragmented": frame(1, b"Hel", fin=False, mask=m) + frame(9, b"p", mask=m) + frame(0, b"lo", mask=m),
        # Code points cut by frame ends (carried into the next piece).
        "split_code_points": frame(1, SPLIT_TEXT[:3], fin=False, mask=m) + frame(0, SPLIT_TEXT[3:10], fin=False, mask=m)
            + frame(0, SPLIT_TEXT[10:], mask=m),
        "binary_256": frame(2, bytes(range(256)), mask=m),
        "empty": frame(1, b"", mask=m) + frame(2, b"", fin=False, mask=m) + frame(0, b"", mask=m),
        # Larger than max_frame_size, which a streamed frame is not bound by.
        "binary_8000": frame(2, bytes(8000), mask=m),
    }
# (policy, streaming byte, name): Always; Above(64); Above(14) with max 64 bytes.
POLICIES = [(ALWAYS, 0x00, "always"), (ABOVE_TABLE, 0x06, "above_64"), (ABOVE_STEP, 0x61, "above_14_max_64")]
for policy, byte, pname in POLICIES:
    for name, data in streamed(True).items():
        write("server_connection", f"stream_{pname}_{name}", bytes([0, 1 | policy, byte]) + data)
        write("server_connection", f"stream_{pname}_{name}_bytewise", bytes([1, 2 | policy, byte]) + data)
    for name, data in streamed(False).items():
        write("client_connection", f"stream_{pname}_{name}_chunked", bytes([3, 2 | policy, byte]) + data)

stream_deflate = {
    "hello": frame(1, HELLO, rsv=4),
    "fragmented": frame(1, HELLO[:3], fin=False, rsv=4) + frame(0, HELLO[3:]),
    # 192 KiB of text from a few hundred bytes: pieces of at most 64 KiB.
    "text_192k": frame(1, raw_deflate(("κόσμε " * 17873).encode()), rsv=4),
    "plain_then_compressed": frame(1, b"Hello") + frame(2, raw_deflate(bytes(range(256)) * 8), rsv=4),
}
for policy, byte, pname in POLICIES:
    for name, data in stream_deflate.items():
        write("deflate_connection", f"stream_{pname}_{name}_client", bytes([1, 0, (7 << 2) | policy, byte]) + data)
        write("deflate_connection", f"stream_{pname}_{name}_client_chunked", bytes([1, 5, (7 << 2) | policy, byte]) + data)
