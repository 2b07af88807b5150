// Node's `ws` on both ends of a session through wstap.
//
// Usage: node ws_peers.mjs PROXY_URL [SERVER_CHAIN SERVER_KEY CLIENT_CA]
//
// Starts a ws echo server on loopback with permessage-deflate on (off by default on ws
// servers; ws clients offer it), connects a ws client to it through the HTTP proxy at
// PROXY_URL (CONNECT, by https-proxy-agent), over wss when given the server's certificate
// chain and key (PEM) and the CA the client is to trust, over ws otherwise. It sends the messages below, checks
// every echo, pings, and closes with 1000. Prints one JSON line: the URL, what it sent and
// the extensions it negotiated. Exits non-zero on any mismatch.

import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { HttpsProxyAgent } from "https-proxy-agent";
import WebSocket, { WebSocketServer } from "ws";

const TEXTS = ["hello from node ws", "compressible ".repeat(2000)];
const BINARY = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256));
const FRAGMENTS = ["fragment one, ", "fragment two, ", "fragment three"];
const PING = "are you there";

const [proxy, chain, key, clientCa] = process.argv.slice(2);
const tls = chain !== undefined;

function fail(why) {
  console.error(why);
  process.exit(1);
}

async function listening(tlsServer) {
  const options = { perMessageDeflate: true };
  if (tlsServer) {
    await new Promise((resolve) => tlsServer.listen(0, "127.0.0.1", resolve));
    return { wss: new WebSocketServer({ ...options, server: tlsServer }), port: tlsServer.address().port };
  }
  const wss = new WebSocketServer({ ...options, port: 0, host: "127.0.0.1" });
  await new Promise((resolve) => wss.on("listening", resolve));
  return { wss, port: wss.address().port };
}

const tlsServer = tls ? createServer({ cert: readFileSync(chain), key: readFileSync(key) }) : null;
const { wss, port } = await listening(tlsServer);
wss.on("connection", (socket) => {
  socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
});

const url = tls ? `wss://localhost:${port}/node` : `ws://127.0.0.1:${port}/node`;
const ws = new WebSocket(url, {
  agent: new HttpsProxyAgent(proxy),
  ca: tls ? readFileSync(clientCa) : undefined,
});
const incoming = [];
let waiting = null;
ws.on("message", (data, isBinary) => {
  incoming.push(isBinary ? Buffer.from(data) : data.toString());
  if (waiting) waiting();
});
ws.on("error", (e) => fail(`client: ${e.message}`));
const next = () =>
  incoming.length > 0
    ? Promise.resolve(incoming.shift())
    : new Promise((resolve) => (waiting = () => ((waiting = null), resolve(incoming.shift()))));

await new Promise((resolve) => ws.on("open", resolve));
for (const text of TEXTS) {
  ws.send(text);
  if ((await next()) !== text) fail(`echo differs for a text of ${text.length}`);
}
ws.send(BINARY);
const echoed = await next();
if (!Buffer.isBuffer(echoed) || !echoed.equals(BINARY)) fail("binary echo differs");
// fin: false sends a fragment; the message ends with the first send that has fin: true.
FRAGMENTS.forEach((part, i) => ws.send(part, { fin: i === FRAGMENTS.length - 1 }));
if ((await next()) !== FRAGMENTS.join("")) fail("the fragmented message's echo differs");
await new Promise((resolve) => {
  ws.once("pong", resolve);
  ws.ping(PING);
});
const extensions = ws.extensions;
await new Promise((resolve) => {
  ws.on("close", resolve);
  ws.close(1000);
});
wss.close();
tlsServer?.close();
console.log(
  JSON.stringify({
    url,
    texts: TEXTS,
    binary_base64: BINARY.toString("base64"),
    fragments: FRAGMENTS,
    ping: PING,
    extensions,
  }),
);
