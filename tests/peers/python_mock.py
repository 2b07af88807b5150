"""A small chat session to record through wstap, and a client to play it against
`wstap mock` (tests/mock.rs).

Usage:
  python3 python_mock.py record PROXY_URL   # a server here, its client through the proxy
  python3 python_mock.py client URL [FIRST_ID] [--unexpected] [--ca CA_PEM] [--proxy URL]
  python3 python_mock.py serve [--shout]    # the server alone: prints its port, serves on

The server greets (`welcome`), answers each message (`reply` naming what it answered;
in capitals with `--shout`),
and 1.5 s after the client connected sends a `tick` nobody asked for. The client waits
for the greeting, sends two messages (ids from FIRST_ID, default 1), waits for the tick
(after `--unexpected`, it sends a message the recording lacks and waits for the close
instead), then closes with 1000; over wss it trusts CA_PEM (wstap's CA). Both roles print one JSON line: the messages the client
received, in order, and the extensions it negotiated. permessage-deflate is on, as
websockets negotiates it by default.
"""

import asyncio
import json
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


SHOUT = "--shout" in sys.argv


async def chat(ws):
    await ws.send(json.dumps({"type": "welcome"}))

    async def tick():
        await asyncio.sleep(1.5)
        await ws.send(json.dumps({"type": "tick"}))

    ticking = asyncio.create_task(tick())
    n = 0
    try:
        async for message in ws:
            n += 1
            said = json.loads(message)["say"]
            to = said.upper() if SHOUT else said
            await ws.send(json.dumps({"type": "reply", "to": to, "n": n}))
    finally:
        ticking.cancel()


async def converse(ws, first_id, unexpected):
    received = []
    try:
        received.append(json.loads(await ws.recv()))
        for i, text in enumerate(["hello", "how are you"]):
            await ws.send(json.dumps({"id": first_id + i, "say": text}))
        if unexpected:
            await ws.send(json.dumps({"id": 99, "say": "something never recorded"}))
        while received[-1]["type"] != "tick":
            received.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    except ConnectionClosed as closed:
        return {"received": received, "close": closed.rcvd.code if closed.rcvd else None}
    return {
        "received": received,
        "extensions": ws.response.headers.get("Sec-WebSocket-Extensions"),
    }


async def main(args):
    if args[0] == "serve":
        async with serve(chat, "127.0.0.1", 0) as server:
            print(server.sockets[0].getsockname()[1], flush=True)
            await asyncio.Future()
    elif args[0] == "record":
        async with serve(chat, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}/chat?room=1"
            async with connect(url, proxy=args[1], ping_interval=None) as ws:
                summary = await converse(ws, 1, False)
    else:
        first_id = int(args[2]) if len(args) > 2 and args[2].isdigit() else 1
        tls = None
        if "--ca" in args:
            tls = ssl.create_default_context(cafile=args[args.index("--ca") + 1])
        proxy = args[args.index("--proxy") + 1] if "--proxy" in args else None
        async with connect(args[1], ping_interval=None, proxy=proxy, ssl=tls) as ws:
            summary = await converse(ws, first_id, "--unexpected" in args)
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
