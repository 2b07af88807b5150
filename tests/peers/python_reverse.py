"""Python's `websockets` as a server behind wstap in reverse mode, and as a client that
connects straight to wstap, taking it for the server.

Usage:
  python3 python_reverse.py serve [CHAIN KEY]
      An echo server on loopback (over TLS with the PEM chain and key). Prints
      {"port": N}, then for every handshake {"host": ..., "origin": ..., "path": ...}:
      what it was sent, so a test can check what wstap rewrote.
  python3 python_reverse.py connect URL [CA]
      Connects to URL (trusting CA for wss), with permessage-deflate as websockets
      negotiates it by default, and has the conversation of python_websockets.py. Prints
      its summary as one JSON line. Exits non-zero on any mismatch.
"""

import asyncio
import json
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from python_websockets import converse, echo


def report(connection, request):
    headers = request.headers
    seen = {"host": headers.get("Host"), "origin": headers.get("Origin"), "path": request.path}
    print(json.dumps(seen), flush=True)


async def run_server(tls_files):
    server_tls = None
    if tls_files:
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(*tls_files)
    async with serve(echo, "127.0.0.1", 0, ssl=server_tls, process_request=report) as server:
        print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
        await asyncio.Future()


async def run_client(url, ca):
    client_tls = ssl.create_default_context(cafile=ca) if ca else None
    origin = "http://wstap.test"
    async with connect(url, ssl=client_tls, ping_interval=None, origin=origin) as ws:
        summary = await converse(ws, url)
    print(json.dumps(summary))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(run_server(sys.argv[2:4]))
    else:
        asyncio.run(run_client(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
