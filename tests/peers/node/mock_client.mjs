// Node's `ws` as a client of `wstap mock` (tests/mock.rs), directly, with
// permessage-deflate offered as ws offers it by default.
//
// Usage: node mock_client.mjs URL
//
// Waits for the greeting, sends the two messages the recorded Python client sent, reads
// until the `tick`, closes with 1000 and prints one JSON line: the messages received, in
// order, and the extensions negotiated. Exits non-zero when anything else happens.

import WebSocket from "ws";

const [url] = process.argv.slice(2);
const ws = new WebSocket(url);
const received = [];
const timer = setTimeout(() => {
  console.error(`no tick within 10 s; received ${JSON.stringify(received)}`);
  process.exit(1);
}, 10000);

ws.on("message", (data) => {
  const message = JSON.parse(data.toString());
  received.push(message);
  if (message.type === "welcome") {
    ws.send(JSON.stringify({ id: 1, say: "hello" }));
    ws.send(JSON.stringify({ id: 2, say: "how are you" }));
  }
  if (message.type === "tick") {
    clearTimeout(timer);
    ws.close(1000);
  }
});
ws.on("close", (code) => {
  console.log(JSON.stringify({ received, close: code, extensions: ws.extensions }));
});
ws.on("error", (error) => {
  console.error(error.message);
  process.exit(1);
});
