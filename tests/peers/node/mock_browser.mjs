// Headless Chromium as a client of `wstap mock` (tests/mock.rs): a blank page opens a
// WebSocket to URL (Chromium offers permessage-deflate), waits for the greeting, sends
// the two messages the recorded Python client sent, reads until the `tick`, closes with
// 1000, and this prints one JSON line: the messages received and the extensions.
//
//   node mock_browser.mjs URL PROFILE_DIR

import { chromium } from "playwright-core";

const [url, profile] = process.argv.slice(2);
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await context.newPage();
  const result = await page.evaluate((url) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const received = [];
    const timer = setTimeout(() => reject(new Error(`no tick: ${JSON.stringify(received)}`)), 15000);
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      received.push(message);
      if (message.type === "welcome") {
        ws.send(JSON.stringify({ id: 1, say: "hello" }));
        ws.send(JSON.stringify({ id: 2, say: "how are you" }));
      }
      if (message.type === "tick") {
        ws.close(1000);
      }
    };
    ws.onclose = (event) => {
      clearTimeout(timer);
      resolve({ received, close: event.code, extensions: ws.extensions });
    };
    ws.onerror = () => reject(new Error("WebSocket error"));
  }), url);
  console.log(JSON.stringify(result));
} finally {
  await context.close();
}
