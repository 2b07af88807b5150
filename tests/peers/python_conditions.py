"""Python's `websockets` on both ends of sessions through wstap running the network
conditions of tests/conditions.rs, chosen by path:

  /plain      none
  /latency    to:server, latency:200ms
  /bandwidth  to:client, bandwidth:100KB/s
  /drop       to:server, drop-after:3
  /close      close-after:2:4000:enough

Usage: python3 python_conditions.py PROXY_URL

Prints one JSON line of what the peers measured and saw.
"""

import asyncio
import json
import os
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

BURST = 10
BURST_SIZE = 10_000
seen_by_server = {}


async def serve_one(ws):
    path = ws.request.path
    seen = seen_by_server.setdefault(path, [])
    while True:
        # Every message received is counted, even once an answer can no longer go.
        try:
            message = await ws.recv()
        except ConnectionClosed:
            return
        seen.append(message)
        try:
            if message == "burst":
                for _ in range(BURST):
                    await ws.send(os.urandom(BURST_SIZE))
            else:
                await ws.send(message)
        except ConnectionClosed:
            pass


async def round_trips(ws, count):
    times = []
    for n in range(count):
        started = time.monotonic()
        await ws.send(f"ping {n}")
        await asyncio.wait_for(ws.recv(), 10)
        times.append(time.monotonic() - started)
    return sorted(times)[len(times) // 2]


async def closed_code(ws, sends):
    """Sends `sends`, then reads until the connection closes: (echoes, code, reason)."""
    echoes = []
    try:
        for message in sends:
            await ws.send(message)
        while True:
            echoes.append(await asyncio.wait_for(ws.recv(), 10))
    except ConnectionClosed as closed:
        received = closed.rcvd
        return echoes, ws.close_code, received.reason if received else None


async def main(proxy):
    summary = {}
    async with serve(serve_one, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        base = f"ws://127.0.0.1:{port}"
        options = dict(proxy=proxy, ping_interval=None, compression=None, max_size=None)

        async with connect(f"{base}/plain", **options) as ws:
            summary["plain_rtt"] = await round_trips(ws, 15)

        async with connect(f"{base}/latency", **options) as ws:
            summary["latency_rtt"] = await round_trips(ws, 15)
            # Pipelined: five at once come back together, not one latency after another.
            started = time.monotonic()
            for n in range(5):
                await ws.send(f"at once {n}")
            for _ in range(5):
                await asyncio.wait_for(ws.recv(), 10)
            summary["five_at_once_s"] = time.monotonic() - started

        async with connect(f"{base}/bandwidth", **options) as ws:
            started = time.monotonic()
            await ws.send("burst")
            arrivals = []
            for _ in range(BURST):
                message = await asyncio.wait_for(ws.recv(), 10)
                assert len(message) == BURST_SIZE
                arrivals.append(time.monotonic() - started)
            summary["burst_arrivals_s"] = arrivals
            summary["burst_wire_bytes"] = BURST * (BURST_SIZE + 4)

        async with connect(f"{base}/drop", **options) as ws:
            echoes, code, _ = await closed_code(ws, [f"m{n}" for n in range(5)])
            summary["drop_code"] = code
            summary["drop_echoes"] = echoes

        async with connect(f"{base}/close", **options) as ws:
            echoes, code, reason = await closed_code(ws, ["one", "two", "three"])
            summary["close_code"] = code
            summary["close_reason"] = reason
            summary["close_echoes"] = echoes

        await asyncio.sleep(0.2)
    summary["seen_by_server"] = seen_by_server
    print(json.dumps(summary))


asyncio.run(main(sys.argv[1]))
