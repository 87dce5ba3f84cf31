#!/usr/bin/env python3
"""Checks a stream-digest server (crates/ws-tokio/examples/tokio_stream_digest.rs)
with one very large message: received in bounded memory, answered correctly.

The server takes its listening address as its last argument, receives every
message as a stream and answers each with a text message
`<length in bytes> <sha256 hex>`.

Usage (the interop venv has `websockets`; `bash interop/setup.sh` makes it):

    cargo build --release -p ws-tokio --example tokio_stream_digest
    interop/.venv/bin/python interop/stream_digest_check.py \\
        target/release/examples/tokio_stream_digest [--size 1G] [--max-peak 64M]

What it does:
  1. starts the server (the command given, plus `127.0.0.1:0`) and reads the
     `ws://...` address it prints;
  2. connects twice, once with permessage-deflate (websockets' default
     compression) and once with `compression=None` (`--modes` picks), and on
     each connection sends one binary message of `--size` bytes (default
     1 GiB) as `--chunk`-byte fragments (default 1 MiB) made on the fly from a
     deterministic, compressible pattern and hashed as they are sent; the
     answer must be that length and hash;
  3. samples the server's VmRSS from /proc/<pid>/status while it works, and
     reads its VmHWM (peak resident set) at the end: more than `--max-peak`
     (default 64 MiB) fails the check;
  4. prints the figures and kills the server by its PID.

The command must be the server process itself (not `cargo run`, whose memory
would be measured instead). Exits 0 only if every check passes.
"""

import argparse
import asyncio
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time

from websockets.asyncio.client import connect

# The helpers shared with the interop peers.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))
from peer_common import negotiated_deflate, pattern_fragments  # noqa: E402


def size_arg(text):
    """`1G`, `256M`, `64K` or a plain number of bytes (binary units)."""
    match = re.fullmatch(r"(\d+)\s*([KMG]i?B?)?", text.strip(), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    unit = (match.group(2) or " ")[0].upper()
    return int(match.group(1)) << {" ": 0, "K": 10, "M": 20, "G": 30}[unit]


def human(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} B"


def fragments(size, chunk):
    """The message's fragments: a 251-byte pattern (compressible, not aligned
    with the chunks), made on the fly."""
    return pattern_fragments(bytes((i * 7 + 3) & 0xFF for i in range(251)), size, chunk)


def proc_status(pid):
    """VmRSS and VmHWM of `pid` in bytes (None where unreadable)."""
    figures = {"VmRSS": None, "VmHWM": None}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in figures:
                    figures[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return figures


class Sampler:
    """Samples a process's VmRSS every `interval` seconds on a thread."""

    def __init__(self, pid, interval=0.02):
        self.pid, self.interval = pid, interval
        self.max_rss = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            rss = proc_status(self.pid)["VmRSS"]
            if rss is not None:
                self.max_rss = max(self.max_rss, rss)
                self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()


def start_server(command, timeout):
    """Starts the server on 127.0.0.1:0 and returns it with its ws:// URL."""
    server = subprocess.Popen(
        [*command, "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    found = {}

    def read():
        # Keep draining so the server never blocks on a full pipe.
        for line in server.stdout:
            url = re.search(r"ws://[^\s/]+", line)
            if url and "url" not in found:
                found["url"] = url.group(0)
                ready.set()
        ready.set()

    ready = threading.Event()
    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or "url" not in found:
        stop_server(server)
        raise SystemExit(f"the server printed no ws:// address within {timeout}s (exit {server.poll()})")
    return server, found["url"]


def stop_server(server):
    """Ends the server by its PID: SIGTERM, then SIGKILL after 5 s."""
    if server.poll() is None:
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()


async def one_message(url, size, chunk, deflate):
    """Sends one message of `size` bytes; returns (ok, answer, expected, seconds)."""
    options = dict(
        compression="deflate" if deflate else None,
        max_size=None,
        ping_interval=None,
        open_timeout=30,
        close_timeout=30,
    )
    async with connect(url, **options) as ws:
        negotiated = negotiated_deflate(ws)
        if negotiated != deflate:
            return False, f"permessage-deflate negotiated: {negotiated}", "", 0.0
        digest = hashlib.sha256()
        length = 0

        async def chunks():
            nonlocal length
            for piece in fragments(size, chunk):
                digest.update(piece)
                length += len(piece)
                yield piece

        started = time.monotonic()
        await ws.send(chunks())
        answer = await ws.recv()
        seconds = time.monotonic() - started
        expected = f"{length} {digest.hexdigest()}"
        return answer == expected, answer, expected, seconds


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("command", nargs="+", help="the server binary and its arguments (the address is appended)")
    parser.add_argument("--size", type=size_arg, default=1 << 30, help="message size (default 1G)")
    parser.add_argument("--chunk", type=size_arg, default=1 << 20, help="fragment size (default 1M)")
    parser.add_argument("--max-peak", type=size_arg, default=64 << 20, help="largest VmHWM allowed (default 64M)")
    parser.add_argument(
        "--modes",
        default="deflate,plain",
        help="comma-separated, in order: deflate (websockets' default compression), plain (compression=None)",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per message (default 600)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("deflate", "plain") for m in modes):
        parser.error(f"--modes: {args.modes!r}")

    server, url = start_server(args.command, 30)
    failures = []
    max_sampled = 0
    try:
        start = proc_status(server.pid)
        print(f"server pid {server.pid} at {url}: VmRSS {human(start['VmRSS'] or 0)} at start", flush=True)
        for mode in modes:
            deflate = mode == "deflate"
            with Sampler(server.pid) as sampler:
                try:
                    ok, answer, expected, seconds = asyncio.run(
                        asyncio.wait_for(one_message(url, args.size, args.chunk, deflate), args.timeout)
                    )
                except Exception as e:  # noqa: BLE001 - reported as a failure
                    ok, answer, expected, seconds = False, f"{type(e).__name__}: {e}", "", 0.0
            status = proc_status(server.pid)
            max_sampled = max(max_sampled, sampler.max_rss)
            rate = args.size / seconds / (1 << 20) if seconds else 0.0
            print(
                f"{mode:7}: {human(args.size)} in {seconds:.2f}s ({rate:.0f} MiB/s); "
                f"server VmRSS max sampled {human(sampler.max_rss)} ({sampler.samples} samples), "
                f"now {human(status['VmRSS'] or 0)}, VmHWM so far {human(status['VmHWM'] or 0)}",
                flush=True,
            )
            if not ok:
                failures.append(f"{mode}: the answer was {answer!r}, expected {expected!r}")
            if server.poll() is not None:
                failures.append(f"{mode}: the server exited ({server.returncode})")
                break
        peak = proc_status(server.pid)["VmHWM"]
        if peak is None:
            failures.append("cannot read the server's VmHWM")
        else:
            # The kernel updates VmHWM lazily: a sample may be a little higher.
            peak = max(peak, max_sampled)
            verdict = "over" if peak > args.max_peak else "within"
            print(f"server peak (VmHWM or sampled VmRSS): {human(peak)}, {verdict} the {human(args.max_peak)} limit", flush=True)
            if peak > args.max_peak:
                failures.append(f"the server's peak memory {human(peak)} exceeds {human(args.max_peak)}")
    finally:
        stop_server(server)
    for failure in failures:
        print(f"FAIL: {failure}", flush=True)
    if not failures:
        print("OK", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
