"""Python's `websockets` on both ends of a session through wstap.

Usage: python3 python_websockets.py PROXY_URL [SERVER_CHAIN SERVER_KEY CLIENT_CA]

Starts a websockets echo server on loopback, connects a websockets client to it through
the proxy at PROXY_URL (http://, or socks5h:// with python-socks; permessage-deflate on,
as websockets negotiates by default), over wss when given the server's certificate chain and key (PEM) and the CA the client
is to trust (the proxy's, which intercepts TLS); over ws otherwise. It sends the messages
below, checks every echo, pings, and closes with 1000. Prints one JSON line: the URL,
what it sent and the extensions it negotiated. Exits non-zero on any mismatch.
"""

import asyncio
import base64
import json
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

TEXTS = ["hello from python websockets", "compressible " * 2000]
BINARY = bytes(range(256)) * 4
FRAGMENTS = ["fragment one, ", "fragment two, ", "fragment three"]
PING = b"are you there"


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def converse(ws, url):
    """Sends every message above on `ws`, checks each echo, pings; returns the summary
    the tests compare the trace with."""
    for message in [*TEXTS, BINARY]:
        await ws.send(message)
        echoed = await ws.recv()
        if echoed != message:
            sys.exit(f"echo differs for a message of {len(message)}")
    # An iterable is sent as one fragmented message, a frame per item.
    await ws.send(FRAGMENTS)
    if await ws.recv() != "".join(FRAGMENTS):
        sys.exit("the fragmented message's echo differs")
    await asyncio.wait_for(await ws.ping(PING), 10)
    return {
        "url": url,
        "texts": TEXTS,
        "binary_base64": base64.b64encode(BINARY).decode(),
        "fragments": FRAGMENTS,
        "ping": PING.decode(),
        "extensions": ws.response.headers.get("Sec-WebSocket-Extensions"),
    }


async def main(proxy, tls_files):
    server_tls = client_tls = None
    if tls_files:
        chain, key, client_ca = tls_files
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(chain, key)
        client_tls = ssl.create_default_context(cafile=client_ca)
    async with serve(echo, "127.0.0.1", 0, ssl=server_tls) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"wss://localhost:{port}/python" if tls_files else f"ws://127.0.0.1:{port}/python"
        async with connect(url, proxy=proxy, ssl=client_tls, ping_interval=None) as ws:
            summary = await converse(ws, url)
        print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:5]))
