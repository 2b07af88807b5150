// Node's `ws` through wstap with `to:server, drop-after:3` on the path /drop
// (tests/conditions.rs): the client sends five messages; the network conditions cut the
// connection once three reached the server.
//
// Usage: node ws_conditions.mjs PROXY_URL
//
// Prints one JSON line: the close code the client saw and what the server received.

import { HttpsProxyAgent } from "https-proxy-agent";
import WebSocket, { WebSocketServer } from "ws";

const fail = (why) => {
  console.error(why);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 30000).unref();

const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
await new Promise((resolve) => wss.on("listening", resolve));
const received = [];
wss.on("connection", (ws) => {
  ws.on("error", () => {});
  ws.on("message", (data) => received.push(data.toString()));
});

const url = `ws://127.0.0.1:${wss.address().port}/drop`;
const client = new WebSocket(url, { agent: new HttpsProxyAgent(process.argv[2]) });
client.on("error", () => {});
await new Promise((resolve) => client.once("open", resolve));
for (let n = 0; n < 5; n++) client.send(`m${n}`);
const code = await new Promise((resolve) => client.on("close", (code) => resolve(code)));
// The server hears of the cut too; give its last message time to be counted.
await new Promise((resolve) => setTimeout(resolve, 200));
console.log(JSON.stringify({ code, server_received: received }));
wss.close();
process.exit(0);
