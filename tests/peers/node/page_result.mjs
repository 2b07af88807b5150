// Opens a page in headless Chromium through a proxy (`proxy` is its URL: http://... or
// socks5://...), with HOME (and so the NSS database
// that trusts wstap's CA) as given, waits in real time until `#result` says something
// other than "pending", and prints it (tests/browser.rs).
//
//   node page_result.mjs '{"url":...,"proxy":...,"home":...,"profile":...}'

import { chromium } from "playwright-core";

const args = JSON.parse(process.argv[2]);
const context = await chromium.launchPersistentContext(args.profile, {
  executablePath: "/usr/bin/chromium",
  env: { ...process.env, HOME: args.home },
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    `--proxy-server=${args.proxy}`,
    // Chromium never proxies loopback unless told to.
    "--proxy-bypass-list=<-loopback>"],
});
try {
  const page = await context.newPage();
  await page.goto(args.url);
  await page.waitForFunction(() => document.getElementById("result").textContent !== "pending", null, { timeout: 20000 });
  console.log(await page.textContent("#result"));
} finally {
  await context.close();
}
