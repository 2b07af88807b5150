// Node's `ws` on both ends of a session that wstap intercepts (tests/intercept_peers.rs).
//
// Usage: node ws_intercept.mjs PROXY_URL
//
// Both ends negotiate permessage-deflate with context takeover (ws keeps its context by
// default; every message is compressed: threshold 0). The client sends the messages
// below without waiting, then "end"; the server sends its own, then, once it has "end",
// a summary of what it received. wstap drops and edits some each way. Prints one JSON
// line: what each end received, as its own decoder inflated it; a message that does not
// inflate makes ws fail the connection, and the script exits non-zero.

import { HttpsProxyAgent } from "https-proxy-agent";
import WebSocket, { WebSocketServer } from "ws";

const WORDS = "alpha beta gamma delta epsilon ".repeat(12);
const CLIENT = [`${WORDS}one`, `${WORDS}drop-me`, `${WORDS}three`, `${WORDS}edit-me`, `${WORDS}five`];
const SERVER = [`${WORDS}uno`, `${WORDS}edit-me`, `${WORDS}tres`, `${WORDS}drop-me`, `${WORDS}cinco`];
const DEFLATE = { threshold: 0 };

const fail = (why) => {
  console.error(why);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 30000).unref();

const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: DEFLATE });
await new Promise((resolve) => wss.on("listening", resolve));
wss.on("connection", (ws) => {
  const received = [];
  ws.on("error", (e) => fail(`server: ${e.message}`));
  ws.on("message", (data) => {
    const text = data.toString();
    if (text === "end") ws.send(JSON.stringify({ server_received: received }));
    else received.push(text);
  });
  for (const message of SERVER) ws.send(message);
});

const url = `ws://127.0.0.1:${wss.address().port}/intercepted`;
const client = new WebSocket(url, { agent: new HttpsProxyAgent(process.argv[2]), perMessageDeflate: DEFLATE });
client.on("error", (e) => fail(`client: ${e.message}`));
client.on("close", (code) => {
  if (code !== 1000) fail(`closed with ${code}`);
});
await new Promise((resolve) => client.once("open", resolve));
const extensions = client.extensions;
for (const message of CLIENT) client.send(message);
client.send("end");
const received = [];
const summary = await new Promise((resolve) => {
  client.on("message", (data) => {
    const text = data.toString();
    if (text.startsWith('{"server_received"')) resolve(JSON.parse(text));
    else received.push(text);
  });
});
console.log(JSON.stringify({
  client_received: received,
  server_received: summary.server_received,
  client_sent: CLIENT,
  server_sent: SERVER,
  extensions,
}));
client.close(1000);
wss.close();
process.exit(0);
