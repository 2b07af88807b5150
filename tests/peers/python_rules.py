"""Python's `websockets` on both ends of sessions through wstap running the rules of
tests/rules.rs (permessage-deflate on, as websockets negotiates it).

Usage: python3 python_rules.py PROXY_URL

An echo server here; a client through the proxy sends messages the rules rewrite, drop,
delay, answer and close on, and a second client one the rules abort on. Prints one JSON
line of what the clients saw: each echo, the delays measured, the close codes, and the
extensions negotiated.
"""

import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

seen_by_server = []


async def echo(ws):
    try:
        async for message in ws:
            seen_by_server.append(message)
            await ws.send(message)
    except ConnectionClosed:
        pass


async def round_trip(ws, message):
    started = time.monotonic()
    await ws.send(message)
    answer = await asyncio.wait_for(ws.recv(), 10)
    return answer, time.monotonic() - started


async def main(proxy):
    summary = {}
    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}/rules"
        async with connect(url, proxy=proxy, ping_interval=None) as ws:
            summary["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
            summary["rewritten"], _ = await round_trip(ws, "hello world")
            # Dropped on the way to the server: the next answer is the next message's.
            await ws.send("my secret")
            summary["after_dropped"], _ = await round_trip(ws, "after")
            # Delayed on the way back (the rule selects echoes of "slow").
            times = []
            for _ in range(3):
                _, fast = await round_trip(ws, "fast")
                _, slow = await round_trip(ws, "slow one")
                times.append((fast, slow))
            summary["fast_s"] = [t[0] for t in times]
            summary["slow_s"] = [t[1] for t in times]
            # Answered by the rule, never forwarded.
            summary["responded"], _ = await round_trip(ws, json.dumps({"op": "ping"}))
            summary["after_responded"], _ = await round_trip(ws, "check")
            # Forwarded, then the session closed with the rule's code.
            await ws.send("bye")
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as closed:
                summary["close_code"] = closed.rcvd.code if closed.rcvd else None
                summary["close_reason"] = closed.rcvd.reason if closed.rcvd else None
        async with connect(url, proxy=proxy, ping_interval=None) as ws:
            await ws.send("crash me")
            try:
                await asyncio.wait_for(ws.recv(), 10)
                summary["aborted_code"] = "no close"
            except ConnectionClosed as closed:
                summary["aborted_code"] = closed.rcvd.code if closed.rcvd else 1006
    summary["seen_by_server"] = seen_by_server
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
