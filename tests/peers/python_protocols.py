"""Python's protocol libraries through wstap as their HTTP proxy (tests/protocols.rs):

- python-socketio at both ends: its asyncio server (aiohttp) on loopback and its threaded
  client (websocket-client, websocket transport only) calling an event with an ack, an
  event with a binary attachment, and an event in the /admin namespace;
- paho-mqtt over WebSocket (through the proxy by PySocks) against a small MQTT 3.1.1
  broker written here on Python's websockets: CONNECT, SUBSCRIBE, a QoS 1 PUBLISH it is
  sent back, PINGREQ, DISCONNECT.

Usage: python3 python_protocols.py '{"proxy": "127.0.0.1:PORT"}'
Prints one JSON line: what each client was answered. Exits non-zero on any mismatch.
"""

import asyncio
import json
import sys
import threading

import paho.mqtt.client as mqtt
import requests
import socketio
import socks
from aiohttp import web
from websockets.asyncio.server import serve


# --- the servers, on one asyncio loop in a thread of their own -------------------------

def socketio_app():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)

    @sio.on("chat")
    async def chat(sid, text):
        await sio.emit("chat", f"echo {text}", to=sid)
        return f"got {text}"

    @sio.on("upload")
    async def upload(sid, meta, blob):
        return len(blob)

    @sio.on("whoami", namespace="/admin")
    async def whoami(sid):
        return "admin"

    return app


def mqtt_packets(buffer):
    """The whole packets at the start of `buffer` and what is left: (type byte, body)."""
    packets = []
    while len(buffer) >= 2:
        length, multiplier, at = 0, 1, 1
        while True:
            if at >= len(buffer):
                return packets, buffer
            byte = buffer[at]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            at += 1
            if byte & 0x80 == 0:
                break
        if len(buffer) < at + length:
            break
        packets.append((buffer[0], buffer[at:at + length]))
        buffer = buffer[at + length:]
    return packets, buffer


async def mqtt_broker(websocket):
    """MQTT 3.1.1, enough for one client: what it publishes goes back to it."""
    buffer = b""
    async for message in websocket:
        buffer += message if isinstance(message, bytes) else message.encode()
        packets, buffer = mqtt_packets(buffer)
        for first, body in packets:
            kind = first >> 4
            if kind == 1:  # CONNECT
                await websocket.send(bytes([0x20, 2, 0, 0]))
            elif kind == 8:  # SUBSCRIBE
                await websocket.send(bytes([0x90, 3, body[0], body[1], 1]))
            elif kind == 3:  # PUBLISH
                topic_len = int.from_bytes(body[:2], "big")
                topic = body[2:2 + topic_len]
                qos = (first >> 1) & 3
                rest = body[2 + topic_len:]
                if qos:
                    await websocket.send(bytes([0x40, 2]) + rest[:2])
                    rest = rest[2:]
                out = len(topic).to_bytes(2, "big") + topic + rest
                await websocket.send(bytes([0x30, len(out)]) + out)
            elif kind == 12:  # PINGREQ
                await websocket.send(bytes([0xD0, 0]))
            elif kind == 14:  # DISCONNECT
                return


def start_servers():
    """Starts both servers; returns their ports."""
    ready = threading.Event()
    ports = {}

    async def main():
        runner = web.AppRunner(socketio_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports["socketio"] = runner.addresses[0][1]
        broker = await serve(mqtt_broker, "127.0.0.1", 0, subprotocols=["mqtt"])
        ports["mqtt"] = broker.sockets[0].getsockname()[1]
        ready.set()
        await asyncio.Future()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    if not ready.wait(10):
        sys.exit("the servers did not start")
    return ports


# --- the clients -------------------------------------------------------------------------

def socketio_client(port, proxy):
    http = requests.Session()
    http.proxies = {"http": f"http://{proxy}"}
    client = socketio.Client(http_session=http)
    pushed = threading.Event()
    seen = {}

    @client.on("chat")
    def on_chat(text):
        seen["pushed"] = text
        pushed.set()

    client.connect(f"http://127.0.0.1:{port}", transports=["websocket"], namespaces=["/", "/admin"])
    seen["ack"] = client.call("chat", "hello", timeout=10)
    seen["upload"] = client.call("upload", ({"name": "a.bin"}, b"\x01\x02\x03\x04"), timeout=10)
    seen["admin"] = client.call("whoami", namespace="/admin", timeout=10)
    if not pushed.wait(10):
        sys.exit("no chat push")
    client.disconnect()
    return seen


def mqtt_client(port, proxy):
    host, proxy_port = proxy.rsplit(":", 1)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-probe", transport="websockets")
    client.ws_set_options(path="/mqtt")
    client.proxy_set(proxy_type=socks.HTTP, proxy_addr=host, proxy_port=int(proxy_port))
    got = threading.Event()
    seen = {}

    def on_message(_client, _userdata, message):
        seen["message"] = [message.topic, message.payload.decode()]
        got.set()

    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    client.subscribe("sensors/#", qos=1)
    client.publish("sensors/t1", '{"t":21.5}', qos=1).wait_for_publish(10)
    if not got.wait(10):
        sys.exit("no message back")
    client.disconnect()
    client.loop_stop()
    return seen


def main():
    proxy = json.loads(sys.argv[1])["proxy"]
    ports = start_servers()
    report = {
        "socketio": socketio_client(ports["socketio"], proxy),
        "mqtt": mqtt_client(ports["mqtt"], proxy),
    }
    expected = {
        "socketio": {"pushed": "echo hello", "ack": "got hello", "upload": 4, "admin": "admin"},
        "mqtt": {"message": ["sensors/t1", '{"t":21.5}']},
    }
    if report != expected:
        sys.exit(f"unexpected answers: {report}")
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
