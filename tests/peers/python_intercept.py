"""Python's `websockets` on both ends of a session that wstap intercepts.

Usage: python3 python_intercept.py PROXY_URL

Both ends negotiate permessage-deflate with context takeover (websockets' default), so
every compressed message refers back to the ones before it. The client sends the
messages below without waiting, then "end"; the server sends its own, then, once it has
"end", a summary of what it received. wstap sits between them with breakpoints that drop
or edit some messages each way. Prints one JSON line: what each end received, as its own
decoder inflated it. A message that did not inflate makes websockets close the
connection with an error, and the script exits non-zero.
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

WORDS = "alpha beta gamma delta epsilon " * 12
CLIENT = [WORDS + "one", WORDS + "drop-me", WORDS + "three", WORDS + "edit-me", WORDS + "five"]
SERVER = [WORDS + "uno", WORDS + "edit-me", WORDS + "tres", WORDS + "drop-me", WORDS + "cinco"]


async def server_side(ws):
    for message in SERVER:
        await ws.send(message)
    received = []
    async for message in ws:
        if message == "end":
            break
        received.append(message)
    await ws.send(json.dumps({"server_received": received}))
    await ws.wait_closed()


async def main(proxy):
    async with serve(server_side, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}/intercepted"
        async with connect(url, proxy=proxy, ping_interval=None) as ws:
            for message in CLIENT:
                await ws.send(message)
            await ws.send("end")
            received = []
            summary = None
            while summary is None:
                message = await asyncio.wait_for(ws.recv(), 30)
                if message.startswith('{"server_received"'):
                    summary = json.loads(message)
                else:
                    received.append(message)
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
        print(
            json.dumps(
                {
                    "client_received": received,
                    "server_received": summary["server_received"],
                    "client_sent": CLIENT,
                    "server_sent": SERVER,
                    "extensions": extensions,
                }
            )
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
