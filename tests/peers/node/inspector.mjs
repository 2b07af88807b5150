// Drives the web inspector in headless Chromium (tests/inspector_browser.rs): real
// traffic through the proxy with Node's ws, then everything a person does in the page.
// Every check that fails throws; screenshots go to the folder given.
//
//   node inspector.mjs '{"mode":"live","url":...,"proxy":...,"echo":...,"shots":...}'
//   node inspector.mjs '{"mode":"demo","url":...,"shots":...}'

import { chromium } from "playwright-core";
import { WebSocket, WebSocketServer } from "ws";
import { once } from "node:events";
import { HttpsProxyAgent } from "https-proxy-agent";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const args = JSON.parse(process.argv[2]);
const EVIL = "<img src=x onerror=\"window.__pwned='payload'\">";
const EVIL_SCRIPT = "</script><script>window.__pwned='script'</script>";
const EVIL_HEADER = "<img src=x onerror=window.__pwned='header'>";
const EVIL_REASON = "<img src=x onerror=window.__pwned='reason'>";

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Opens the inspector; any script error or CSP report fails the run. */
async function open(browser, viewport) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // The bad filter's 400 is expected (Chromium logs every failed fetch); nothing else is.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().includes("status of 400")) problems.push(`console: ${m.text()}`);
  });
  await page.goto(args.url);
  check(new URL(page.url()).search === "", "the token left the address bar");
  return { page, problems };
}

function client(path, headers) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${args.echo}${path}`, { agent: new HttpsProxyAgent(`http://${args.proxy}`), headers });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

function exchange(ws, message) {
  return new Promise((resolve) => {
    ws.once("message", () => resolve());
    ws.send(message);
  });
}

const shot = (page, name) => page.screenshot({ path: join(args.shots, `${name}.png`) });
const rowsText = (page, list, which = "") => page.$$eval(`${list} .rows .row${which}`, (rows) => rows.map((r) => [...r.children].map((c) => c.textContent).join("\t")));

async function live() {
  const browser = await launch();
  const { page, problems } = await open(browser, { width: 1360, height: 860 });
  await page.waitForSelector("#session-count:has-text('sessions')");

  // Traffic starts after the page is open: it must arrive on the live feed.
  const ws = await client(`/chat?q=${encodeURIComponent("<img src=x onerror=alert(1)>")}`, { "X-Evil": EVIL_HEADER });
  for (const message of ["hello from node", EVIL, EVIL_SCRIPT, JSON.stringify({ user: "<b>x</b>", list: [1, 2, 3], nested: { ok: true } })]) {
    await exchange(ws, message);
  }
  await exchange(ws, Buffer.from([0xde, 0xad, 0xbe, 0xef]));
  const row = page.locator("#sessions .rows .row", { hasText: "/chat?q=" });
  await row.waitFor({ timeout: 10000 });
  check(true, "the session appeared live, without a reload");
  await shot(page, "1-sessions");

  await row.click();
  await page.waitForFunction(() => document.querySelectorAll("#records .rows .row:not(.loading)").length >= 10, null, { timeout: 10000 });
  check((await page.textContent("#session-chips")).includes("open"), "the open session says so");
  await page.locator("#records .rows .row", { hasText: "hello from node" }).first().click();
  await page.waitForSelector("#detail pre.payload");
  check((await page.textContent("#detail pre.payload")) === "hello from node", "the message's text");
  await page.click("#detail nav button[data-view=Hex]");
  const hex = await page.textContent("#detail pre.payload");
  check(hex.includes("68 65 6c 6c 6f 20 66 72") && hex.startsWith("00000000"), "its hex dump with offsets");
  await shot(page, "2-message-hex");

  await page.locator("#records .rows .row", { hasText: "nested" }).first().click();
  await page.waitForSelector("#detail .payload.json");
  const tree = await page.textContent("#detail .payload.json");
  check(tree.includes("user: ") && tree.includes("\"<b>x</b>\"") && tree.includes("3 items"), "JSON as a tree");
  await shot(page, "3-message-json");

  await page.locator("#records .rows .row", { hasText: "de ad be ef" }).first().click();
  await page.waitForSelector("#detail pre.payload.hex");
  check((await page.textContent("#detail pre.payload")).includes("de ad be ef"), "binary opens as hex");

  // Frames, with the masking key of the client's frames.
  await page.click("#kind-toggle button[data-kind=frames]");
  await page.waitForFunction(() => document.querySelector("#records .vhead")?.textContent.includes("Mask")
    && document.querySelectorAll("#records .rows .row:not(.loading)").length >= 10);
  const frames = await rowsText(page, "#records");
  check(frames.some((t) => /[0-9A-F]{2}-[0-9A-F]{2}-[0-9A-F]{2}-[0-9A-F]{2}/.test(t)), "frames show masking keys");
  await page.click("#kind-toggle button[data-kind=messages]");

  // A filter shrinks the table; a bad one says where.
  await page.fill("#record-filter", 'text~"hello"');
  await page.waitForFunction(() => document.querySelector("#record-count").textContent.startsWith("2 messages of"));
  check((await rowsText(page, "#records")).length === 2, "the filter leaves the message and its echo");
  await page.fill("#record-filter", "len >");
  await page.waitForSelector("#record-filter-error:not([hidden])");
  const error = await page.textContent("#record-filter-error");
  check(error.includes("^") && error.includes("expected"), "a bad filter shows a caret and what was expected");
  await shot(page, "4-filter-error");
  await page.fill("#record-filter", "");
  await page.waitForSelector("#record-filter-error", { state: "hidden" });

  // Export the session as HAR, as a download.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#record-exports a:has-text('HAR')")]);
  const har = JSON.parse(readFileSync(await download.path(), "utf8"));
  check(Array.isArray(har.log.entries) && har.log.entries.length === 1, "the HAR export downloads");
  check(JSON.stringify(har).includes("hello from node"), "the HAR holds the messages");

  // The handshake as sent; hostile header values are text.
  await page.click("#session-tabs button[data-tab=handshake]");
  const heads = await page.textContent("#tab-handshake");
  check(heads.includes(`x-evil: ${EVIL_HEADER}`) || heads.includes(`X-Evil: ${EVIL_HEADER}`), "the request head, byte for byte");
  check(heads.includes("Sec-WebSocket-Accept") && heads.includes("valid"), "the accept verdict");
  await shot(page, "5-handshake");
  await page.click("#session-tabs button[data-tab=records]");

  // Close with a hostile reason; the session's state changes live.
  await new Promise((resolve) => { ws.once("close", resolve); ws.close(4000, EVIL_REASON); });
  await page.waitForFunction(() => document.querySelector("#session-chips").textContent.includes("closed"), null, { timeout: 10000 })
    .catch(async (e) => {
      console.log("chips:", await page.textContent("#session-chips"), "title:", await page.textContent("#session-title"));
      console.log("sessions:", await rowsText(page, "#sessions"));
      console.log("live:", await page.textContent("#live"));
      throw e;
    });
  check(true, "the close arrived live");

  // Many messages: the list keeps only what is on screen and scrolls to the middle.
  const bulk = await client("/bulk", {});
  const N = 3000;
  let echoed = 0;
  await new Promise((resolve) => {
    bulk.on("message", () => { if (++echoed === N) resolve(); });
    for (let i = 0; i < N; i++) bulk.send(`bulk message ${i}`);
  });
  const bulkRow = page.locator("#sessions .rows .row", { hasText: "/bulk" });
  await bulkRow.waitFor({ timeout: 10000 });
  await bulkRow.click();
  await page.waitForFunction((n) => document.querySelector("#record-count").textContent.startsWith(`${n.toLocaleString("en-US")} messages`), 2 * N, { timeout: 15000 });
  // Following, the list shows the end; then the user scrolls to the middle.
  const lastShown = () => page.$$eval("#records .rows .row:not(.loading)", (rows) => rows.map((r) => r.firstChild.textContent).pop());
  await page.waitForFunction((n) => [...document.querySelectorAll("#records .rows .row:not(.loading)")].pop()?.firstChild.textContent === n,
    (2 * N - 1).toLocaleString("en-US"), { timeout: 15000 });
  check((await lastShown()) === (2 * N - 1).toLocaleString("en-US"), "following, the list shows the last message");
  await page.$eval("#records .viewport", (v) => { v.scrollTop = v.scrollHeight / 2; });
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#records .rows .row")];
    return rows.length > 0 && rows.every((r) => !r.classList.contains("loading"))
      && Number(rows[0].firstChild.textContent.replace(/,/g, "")) < 5000;
  });
  const middle = await rowsText(page, "#records");
  const first = Number(middle[0].split("\t")[0].replace(/,/g, ""));
  check(first > 2000 && first < 4000, `the middle of ${2 * N} messages shows rows near ${N} (got ${first})`);
  check(!(await page.isChecked("#follow")), "scrolling up pauses follow");
  check(middle.length < 80, `only the rows on screen are in the page (${middle.length})`);
  const held = await page.evaluate(() => document.querySelectorAll("#records .rows .row").length);
  check(held === middle.length, "no hidden rows either");
  bulk.close();

  // Keyboard: / focuses the filter, Esc leaves it, j/k move, Enter opens.
  await page.click("#sessions .rows .row >> nth=0");
  await page.keyboard.press("/");
  check(await page.evaluate(() => document.activeElement.id === "record-filter"), "/ focuses the filter");
  await page.keyboard.press("Escape");
  await page.keyboard.press("Escape");
  await page.keyboard.press("j");
  await page.keyboard.press("j");
  await page.keyboard.press("k");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector("#session-title").textContent.startsWith("#2 "));
  check(true, "from the first row, j, j, k and Enter open the second session");

  // Nothing hostile ran, and it is all there as text.
  check(await page.evaluate(() => window.__pwned === undefined), "no payload, header, URL or reason ran as script");
  check(await page.evaluate(() => document.querySelectorAll("img").length === 1), "the only image is wstap's icon");
  // An intercepted wss session: both TLS legs, and the server's certificate.
  const secure = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://${args.tls_echo}/secure`, {
      agent: new HttpsProxyAgent(`http://${args.proxy}`),
      ca: readFileSync(args.wstap_ca),
    });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
  await exchange(secure, "over tls");
  const tlsRow = page.locator("#sessions .rows .row", { hasText: "wss://" });
  await tlsRow.waitFor({ timeout: 10000 });
  await tlsRow.click();
  await page.click("#session-tabs button[data-tab=handshake]");
  await page.waitForFunction(() => document.querySelector("#tab-handshake").textContent.includes("SHA-256"));
  const legs = await page.textContent("#tab-handshake");
  check(legs.includes("TLSv1_") && legs.includes("localhost, 127.0.0.1") && legs.includes("test upstream CA"),
    "both TLS legs, and the server's certificate: its names and issuer");
  await page.$eval("#tab-handshake", (t) => { t.scrollTop = t.scrollHeight; });
  await shot(page, "8-tls-handshake");
  await page.click("#session-tabs button[data-tab=records]");
  secure.close();

  await page.emulateMedia({ colorScheme: "dark" });
  await page.locator("#sessions .rows .row", { hasText: "/chat?q=" }).click();
  await page.waitForFunction(() => document.querySelectorAll("#records .rows .row:not(.loading)").length >= 10);
  await page.locator("#records .rows .row", { hasText: "onerror" }).first().click();
  await page.waitForSelector("#detail pre.payload");
  check((await page.textContent("#detail pre.payload")) === EVIL, "a hostile payload shows as its text");
  await shot(page, "6-dark");
  check(problems.length === 0, `no script errors or CSP reports: ${problems.join("; ")}`);
  await browser.close();
}

async function demo() {
  const browser = await launch();
  const { page, problems } = await open(browser, { width: 1280, height: 720 });
  await page.waitForFunction(() => document.querySelectorAll("#sessions .rows .row").length >= 3, null, { timeout: 20000 });
  await page.locator("#sessions .rows .row", { hasText: "name=John" }).click();
  await page.waitForFunction(() => document.querySelectorAll("#records .rows .row").length >= 4, null, { timeout: 20000 });
  await page.locator("#records .rows .row", { hasText: "lunch" }).first().click();
  await page.waitForSelector("#detail pre.payload");
  await page.waitForTimeout(300);
  await shot(page, "demo");
  check(problems.length === 0, `no script errors: ${problems.join("; ")}`);
  await browser.close();
}

/** A session of a million messages: the list follows to the end, and scrolls to the
 * middle and back to the start, with only the rows on screen in the page. */
async function scale() {
  const browser = await launch();
  const { page, problems } = await open(browser, { width: 1280, height: 800 });
  const n = args.messages;
  const first = () => page.$$eval("#records .rows .row", (rows) => rows.map((r) => r.firstChild.textContent));
  const shown = async () => {
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#records .rows .row")];
      return rows.length > 0 && rows.every((r) => !r.classList.contains("loading"));
    }, null, { timeout: 10000 });
    return (await first()).map((t) => Number(t.replace(/,/g, "")));
  };
  await page.waitForFunction((total) => document.querySelector("#record-count").textContent.startsWith(`${total.toLocaleString("en-US")} messages`), n, { timeout: 20000 });
  let rows = await shown();
  check(rows[rows.length - 1] === n - 1, `following, the last of ${n} messages is shown (${rows[rows.length - 1]})`);
  await page.$eval("#records .viewport", (v) => { v.scrollTop = v.scrollHeight / 2; });
  await page.waitForFunction((half) => {
    const top = document.querySelector("#records .rows .row");
    return top && !top.classList.contains("loading") && Math.abs(Number(top.firstChild.textContent.replace(/,/g, "")) - half) < half / 10;
  }, n / 2, { timeout: 10000 });
  rows = await shown();
  check(Math.abs(rows[0] - n / 2) < n / 10, `the middle shows rows near ${n / 2} (${rows[0]})`);
  check(rows.length < 80, `only the rows on screen are in the page (${rows.length})`);
  await shot(page, "7-million");
  await page.$eval("#records .viewport", (v) => { v.scrollTop = 0; });
  await page.waitForFunction(() => document.querySelector("#records .rows .row:not(.loading)")?.firstChild.textContent === "0", null, { timeout: 10000 });
  check(true, "the top shows message 0");
  await page.$eval("#records .viewport", (v) => { v.scrollTop = v.scrollHeight; });
  rows = await shown();
  await page.waitForFunction((last) => [...document.querySelectorAll("#records .rows .row:not(.loading)")].pop()?.firstChild.textContent === last,
    (n - 1).toLocaleString("en-US"), { timeout: 10000 });
  check(true, "the end shows the last message again");
  const held = await page.evaluate(() => document.querySelectorAll("#records .rows .row").length);
  check(held < 80, `still only the rows on screen (${held})`);
  check(problems.length === 0, `no script errors: ${problems.join("; ")}`);
  await browser.close();
}

/** Interception from the page: a breakpoint set in the panel holds a message, which is
 * edited as JSON and forwarded (the echo shows the edit); a message injected from the
 * composer reaches the client; an abort from the page is a 1006 at the client. */
async function intercept() {
  const browser = await launch();
  const { page, problems } = await open(browser, { width: 1360, height: 860 });
  await page.waitForSelector("#session-count:has-text('sessions')");
  const ws = await client("/shop", {});
  const received = [];
  ws.on("message", (data) => received.push(data.toString()));
  await exchange(ws, "hello shop");
  const row = page.locator("#sessions .rows .row", { hasText: "/shop" });
  await row.waitFor({ timeout: 10000 });

  // A breakpoint, from the panel ("b" opens it); a mistyped one says where.
  await page.keyboard.press("b");
  await page.waitForSelector("#intercept-pane:not([hidden])");
  await page.fill("#breakpoint-filter", "dir:c2s and jsn.action == \"buy\"");
  await page.click("#breakpoint-form button[type=submit]");
  await page.waitForSelector("#breakpoint-error:not([hidden])");
  check((await page.textContent("#breakpoint-error")).includes("^"), "a mistyped breakpoint shows a caret");
  await page.fill("#breakpoint-filter", "dir:c2s and json.action == \"buy\"");
  await page.click("#breakpoint-form button[type=submit]");
  await page.waitForSelector("#breakpoint-list li code:has-text('json.action')");
  check(true, "the breakpoint is listed");

  // The rules wstap started with: listed, with how often each fired.
  ws.send("rule me");
  for (let i = 0; i < 100 && !received.includes("RULE me"); i++) await new Promise((r) => setTimeout(r, 50));
  check(received.includes("RULE me"), `the rule rewrote the message (echoes: ${received.join(" | ")})`);
  await page.waitForSelector("#rule-list:not([hidden]) li .chip:has-text('shout')");
  await page.waitForFunction(() => document.querySelector("#rule-list li .count")?.textContent === "1 hit");
  check((await page.textContent("#rule-list li code")).includes("rule me"), "the rule's filter is listed");
  check((await page.textContent("#rules-from")).includes("inspector-rules.toml"), "the panel names the rules file");
  await page.click("#rules-reload");
  await page.waitForSelector("#rules-count:has-text('1 in force')");
  check(await page.isHidden("#rules-error"), "the file read again: one rule in force, no mistake");

  // Held: the header counts it on every view, and so does the page's title.
  ws.send(JSON.stringify({ action: "buy", item: "tea", qty: 1 }));
  await page.waitForSelector("#held-badge:not([hidden])", { timeout: 10000 });
  check((await page.textContent("#held-badge")).includes("1 held"), "the header counts the held message");
  check((await page.title()).startsWith("(1 held)"), "so does the page's title");
  await page.waitForSelector("#held-list .held-row");
  check((await page.textContent("#held-list")).includes("\"qty\":1"), "the queue shows the message");
  await page.waitForSelector("#held-editor nav button.on[data-mode=JSON]");
  check((await page.textContent("#held-editor .tree")).includes("qty: "), "JSON as a tree above the editor");
  await new Promise((r) => setTimeout(r, 300));
  check(!received.some((m) => m.includes("tea")), "nothing of it reached the server (no echo)");
  await shot(page, "9-held");

  // Edited as JSON, then sent: the server echoes the edit.
  await page.fill("#held-text", JSON.stringify({ action: "buy", item: "tea", qty: 100 }, null, 2));
  await page.waitForSelector("#edit-check:has-text('valid JSON')");
  await page.fill("#held-text", "{ not json");
  await page.waitForSelector("#edit-check.bad");
  check(true, "an edit that is not JSON says so");
  await page.fill("#held-text", JSON.stringify({ action: "buy", item: "tea", qty: 100 }, null, 2));
  await page.click("#held-editor button[data-action=edit]");
  await page.waitForSelector("#held-badge", { state: "hidden", timeout: 10000 });
  for (let i = 0; i < 100 && !received.some((m) => m.includes("100")); i++) await new Promise((r) => setTimeout(r, 50));
  const echo = received.find((m) => m.includes("tea"));
  check(echo !== undefined && JSON.parse(echo).qty === 100, `the server got the edit (its echo: ${echo})`);
  check((await page.title()) === "wstap inspector", "nothing held: the title says so");

  // Keyboard: f forwards the next one.
  ws.send(JSON.stringify({ action: "buy", item: "cake", qty: 2 }));
  await page.waitForSelector("#held-list .held-row", { timeout: 10000 });
  await page.locator("#intercept-pane .label").first().click();
  await page.keyboard.press("f");
  for (let i = 0; i < 100 && !received.some((m) => m.includes("cake")); i++) await new Promise((r) => setTimeout(r, 50));
  check(received.some((m) => m.includes("cake")), "f forwards the held message as it was");
  await page.keyboard.press("Escape");
  await page.waitForSelector("#intercept-pane", { state: "hidden" });

  // The composer sends on the open session; a recorded message resends.
  await row.click();
  await page.waitForFunction(() => document.querySelectorAll("#records .rows .row:not(.loading)").length >= 2);
  await page.click("#compose");
  await page.selectOption("#composer-to", "client");
  await page.fill("#composer-payload", "injected from the page");
  await page.click("#composer button[type=submit]");
  await page.waitForSelector("#composer-status:has-text('sent to the client')");
  for (let i = 0; i < 100 && !received.includes("injected from the page"); i++) await new Promise((r) => setTimeout(r, 50));
  check(received.includes("injected from the page"), "the client got the injected message");
  await page.locator("#records .rows .row", { hasText: "hello shop" }).first().click();
  await page.waitForSelector("#resend");
  await page.click("#resend");
  check((await page.inputValue("#composer-payload")) === "hello shop", "resend fills the composer with the message");
  await shot(page, "10-composer");
  await page.click("#composer button[type=submit]");
  for (let i = 0; i < 100 && received.filter((m) => m === "hello shop").length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  check(received.filter((m) => m === "hello shop").length === 2, "the resent message went to the server again (two echoes)");

  // Abort: the button asks once more; the client sees 1006.
  const closed = new Promise((resolve) => ws.once("close", (code) => resolve(code)));
  await page.click("#abort");
  check((await page.textContent("#abort")).includes("sure"), "abort asks once more");
  await page.click("#abort");
  const code = await closed;
  check(code === 1006, `the client saw its connection dropped: ${code}`);
  await page.waitForFunction(() => document.querySelector("#session-chips").textContent.includes("aborted"), null, { timeout: 10000 });
  check(true, "the session shows as aborted");

  // The session's record of what wstap did, who decided, and what went out instead.
  await page.click("#session-tabs button[data-tab=interventions]");
  await page.waitForFunction(() => document.querySelector("#tab-interventions").textContent.includes("aborted"), null, { timeout: 10000 });
  const done = await page.$$eval("#tab-interventions tbody tr", (rows) => rows.map((r) => [...r.children].map((c) => c.textContent).join("|")));
  const actions = done.map((r) => r.split("|")[1]);
  // The rule's first (held and rewritten by the rule), then the page's.
  check(JSON.stringify(actions) === JSON.stringify(["held", "edited", "held", "edited", "held", "forwarded", "injected", "injected", "aborted"]),
    `the interventions, in order: ${actions.join(", ")}`);
  const deciders = done.slice(0, 4).map((r) => r.split("|")[3]);
  check(JSON.stringify(deciders) === JSON.stringify(["rule", "rule", "breakpoint", "inspector"]),
    `who decided: ${deciders.join(", ")}`);
  check(done[0].includes("rule 1"), `a rule's hold names the rule: ${done[0]}`);
  check(done[3].includes("inspector") && done[3].includes("\"qty\": 100"), "the edit: who decided, and what was sent");
  await shot(page, "11-interventions");
  // The traffic says it too: the message as the client sent it, marked edited.
  await page.click("#session-tabs button[data-tab=records]");
  await page.waitForFunction(() => [...document.querySelectorAll("#records .rows .row")].some((r) => r.textContent.includes("edited")), null, { timeout: 10000 });
  const marked = await rowsText(page, "#records");
  check(marked.some((t) => t.includes("edited") && t.includes("\"qty\":1")), "the original message is marked edited in the traffic");
  check(marked.some((t) => t.includes("forwarded") && t.includes("cake")), "and the one forwarded, forwarded");
  // What wstap wrote is traffic of the session too, marked by who made it.
  const written = await page.$$eval("#records .rows .row .origin", (marks) =>
    marks.map((m) => `${m.textContent}|${m.closest(".row").textContent}`));
  check(written.some((t) => t.startsWith("edited|") && t.includes("100")), `the edit as sent, marked edited: ${written.join("; ")}`);
  check(written.some((t) => t.startsWith("injected|") && t.includes("injected from the page")), "the injection, marked injected");
  check(written.some((t) => t.startsWith("resent|") && t.includes("hello shop")), "the resend, marked resent");
  await shot(page, "12-traffic-fates");
  check(problems.length === 0, `no script errors or CSP reports: ${problems.join("; ")}`);
  await browser.close();
}

/** A capture bounded at 2 MiB, filled past it: the header shows its size against the
 * bound and the payloads dropped, a notice says so once, and a message whose payload was
 * dropped says why. */
async function bounded() {
  const browser = await launch();
  const { page, problems } = await open(browser, { width: 1360, height: 860 });
  await page.waitForSelector("#capture-size:not([hidden])");
  check((await page.textContent("#capture-size")).includes("of 2.0 MiB"), "the header shows the bound");
  const ws = await client("/firehose", {});
  for (let n = 0; n < 400; n++) await exchange(ws, `${String(n).padStart(4, "0")} ${"f".repeat(16 * 1024)}`);
  await page.waitForSelector("#notice:not([hidden])", { timeout: 10000 });
  const notice = await page.textContent("#notice-text");
  check(notice.includes("reached its bound of 2.0 MiB") && notice.includes("--capture-max"), `a notice says so: ${notice}`);
  check((await page.textContent("#capture-size")).includes("of payloads dropped"), "the header counts what was dropped");
  await page.locator("#sessions .rows .row", { hasText: "/firehose" }).click();
  // The filter selects what was dropped.
  await page.fill("#record-filter", "payload:dropped");
  await page.press("#record-filter", "Enter");
  // The filtered page has come when the count says "N of M"; its rows replace the others.
  await page.waitForSelector("#record-count:has-text(' of ')", { timeout: 10000 });
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#records .rows .row:not(.loading)")];
    return rows.length > 0 && rows.every((r) => r.textContent.includes("payload dropped"));
  }, null, { timeout: 20000 }).catch(() => {});
  const first = page.locator("#records .rows .row:not(.loading)", { hasText: "payload dropped" }).first();
  // The rows loaded (a page still on its way shows placeholders, "…", which say nothing).
  const rows = await rowsText(page, "#records", ":not(.loading)");
  const kept = rows.filter((r) => !r.includes("payload dropped"));
  check(rows.length > 0 && kept.length === 0,
    `payload:dropped lists what was dropped (${rows.length} rows shown; not dropped: ${kept.slice(0, 3).join(" / ")}; count: ${await page.textContent("#record-count")})`);
  await first.click();
  await page.waitForSelector("#detail .dropped");
  check((await page.textContent("#detail .dropped")).includes("payload dropped to keep the capture under 2.0 MiB"), "its detail says why");
  await shot(page, "13-bounded");
  check(problems.length === 0, `no script errors or CSP reports: ${problems.join("; ")}`);
  ws.close();
  await browser.close();
}

/** Network conditions from the page: set on the open session, they slow its echoes as
 * the client measures them; a mistake says what is wrong; cleared, the echoes are quick
 * again; the rules panel lists the conditions wstap started with; the session's
 * interventions record each change and who made it. */
async function conditions() {
  const browser = await launch();
  const { page, problems } = await open(browser, { width: 1360, height: 860 });
  await page.waitForSelector("#session-count:has-text('sessions')");
  const ws = await client("/shaped", {});
  const roundTrip = async () => {
    const started = Date.now();
    await exchange(ws, "how long?");
    return Date.now() - started;
  };
  await roundTrip();
  const row = page.locator("#sessions .rows .row", { hasText: "/shaped" });
  await row.waitFor({ timeout: 10000 });
  await row.click();
  // The conditions wstap started with select the session: the chip says so.
  await page.waitForSelector("#conditions-chip:not([hidden])", { timeout: 10000 });
  check((await page.textContent("#conditions-chip")).includes("latency:40ms"), "the chip shows the conditions that apply");

  await page.click("#network");
  await page.waitForSelector("#conditions-form:not([hidden])");
  check((await page.textContent("#conditions-now")).includes("to the server: latency:40ms (--conditions 1)"), "the form says what applies and where from");
  await page.fill("#conditions-spec", "to:client, latncy:300ms");
  await page.click("#conditions-form button[type=submit]");
  await page.waitForSelector("#conditions-status.bad");
  check((await page.textContent("#conditions-status")).includes("unknown condition"), "a mistake says what is wrong");
  await page.fill("#conditions-spec", "to:client, latency:300ms, bandwidth:1MB/s");
  await page.click("#conditions-form button[type=submit]");
  await page.waitForSelector("#conditions-status:has-text('applied')");
  await page.waitForFunction(() => document.querySelector("#conditions-chip").textContent.includes("300ms"));
  const slow = await roundTrip();
  check(slow >= 330 && slow < 1000, `the echo came ${slow} ms later (40 ms up, 300 ms down)`);
  await shot(page, "14-conditions");

  await page.click("#conditions-clear");
  await page.waitForSelector("#conditions-status:has-text('cleared')");
  const quick = await roundTrip();
  check(quick >= 40 && quick < 200, `cleared: the page's conditions are gone, --conditions' 40 ms stay (${quick} ms)`);

  // The rules panel lists the conditions in force with the sessions they shaped, and
  // adds rules written in the file's language (a mistake says where).
  await page.keyboard.press("b");
  await page.waitForSelector("#rule-list li .chip.net");
  check((await page.textContent("#rule-list")).includes("latency:40ms"), "the panel lists the conditions wstap started with");
  await page.click("#rules-add");
  await page.fill("#rule-text", "[[rule]]\nfilter = 'dir:s2c text:shout'\ndorp = true");
  await page.click("#rule-form button[type=submit]");
  await page.waitForSelector("#rules-error:not([hidden])");
  check((await page.textContent("#rules-error")).includes("3:1"), "a mistake in added rules says its line and column");
  await page.fill("#rule-text", "[[rule]]\nname = \"loud\"\nfilter = 'dir:s2c text:shout'\nreplace = [{ regex = 'shout', with = 'SHOUT' }]");
  await page.click("#rule-form button[type=submit]");
  await page.waitForSelector("#rule-list li .chip:has-text('loud')");
  check(await page.isHidden("#rules-error"), "added: the rule is listed, no mistake");
  await shot(page, "16-rule-added");
  await page.keyboard.press("Escape");
  const echoed = await new Promise((resolve) => {
    ws.once("message", (data) => resolve(data.toString()));
    ws.send("please shout");
  });
  check(echoed === "please SHOUT", `the added rule rewrote the echo: ${echoed}`);

  await page.click("#session-tabs button[data-tab=interventions]");
  await page.waitForFunction(() => document.querySelectorAll("#tab-interventions tbody tr").length >= 3, null, { timeout: 10000 });
  const done = await page.$$eval("#tab-interventions tbody tr", (rows) => rows.map((r) => [...r.children].map((c) => c.textContent).join("|")));
  await shot(page, "15-conditions-record");
  check(done.filter((r) => r.includes("conditioned") && r.includes("inspector")).length === 2,
    `set and cleared from the page, each recorded: ${done.join("; ")}`);
  check(done.some((r) => r.includes("conditioned") && r.includes("rule") && r.includes("conditions 1") && r.includes("latency:40ms")), `and the conditions it started with, named: ${done[0]}`);
  ws.close();
  check(problems.length === 0, `no script errors or CSP reports: ${problems.join("; ")}`);
  await browser.close();
}

/** Replay from the page: a recorded session played again through the proxy, whose rule
 * now changes one of the server's answers; the comparison shows it side by side, names
 * the field, and the replayed session is recorded as a session of its own. */
async function replay() {
  const browser = await launch();
  const { page, problems } = await open(browser, { width: 1360, height: 860 });
  await page.waitForSelector("#session-count:has-text('sessions')");
  const ws = await client("/replayed", {});
  for (const message of ["one", JSON.stringify({ n: 2, who: "ann" }), "three"]) await exchange(ws, message);
  await new Promise((resolve) => { ws.once("close", resolve); ws.close(1000, "done"); });
  const row = page.locator("#sessions .rows .row", { hasText: "/replayed" }).first();
  await row.waitFor({ timeout: 10000 });
  await page.waitForFunction(() => [...document.querySelectorAll("#sessions .rows .row")].some((r) => r.textContent.includes("/replayed") && r.textContent.includes("closed")), null, { timeout: 10000 });

  // The server (as the proxy passes it on) answers differently now: a rule says so.
  await page.keyboard.press("b");
  await page.click("#rules-add");
  await page.fill("#rule-text", "[[rule]]\nname = \"bob\"\nfilter = 'dir:s2c json.who == \"ann\"'\nreplace = [{ json = \"who\", value = \"bob\" }]");
  await page.click("#rule-form button[type=submit]");
  await page.waitForSelector("#rule-list li .chip:has-text('bob')");
  await page.keyboard.press("Escape");

  await row.click();
  await page.waitForSelector("#replay:not([disabled])");
  await page.click("#replay");
  await page.waitForSelector("#replay-summary", { timeout: 20000 });
  const summary = await page.textContent("#replay-summary");
  check(summary.includes("3 same, 1 changed, 0 missing, 0 extra"), `the comparison counts: ${summary}`);
  const rows = await page.$$eval("#tab-replay tbody tr", (trs) => trs.map((tr) => `${tr.className}|${tr.textContent}`));
  const changed = rows.find((r) => r.startsWith("cmp-changed"));
  check(changed !== undefined && changed.includes("\"ann\"") && changed.includes("\"bob\"") && changed.includes(".who"),
    `the changed answer, side by side, with its field: ${changed}`);
  check(rows.filter((r) => r.startsWith("cmp-same")).length === 3, `the others the same: ${rows.join(" ; ")}`);
  await shot(page, "17-replay");
  await page.waitForFunction(() => [...document.querySelectorAll("#sessions .rows .row")].filter((r) => r.textContent.includes("/replayed")).length === 2, null, { timeout: 10000 });
  check(true, "the replayed session is recorded beside the original");
  check(problems.length === 0, `no script errors or CSP reports: ${problems.join("; ")}`);
  await browser.close();
}

/** Payload views: a SignalR hub session (a small hub here, the JSON hub protocol) shows
 * decoded rows, its protocol in the sessions table, each call's latency (a link to its
 * answer), a call never answered, a `signalr.target` filter that narrows the rows, the
 * decoded tree in the detail pane, and a view picked by hand. */
async function views() {
  const browser = await launch();
  const { page, problems } = await open(browser, { width: 1360, height: 860 });
  await page.waitForSelector("#session-count:has-text('sessions')");
  const RS = "\x1e";
  const hub = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(hub, "listening");
  hub.on("connection", (sock) => sock.on("message", (data) => {
    for (const record of data.toString().split(RS).filter(Boolean)) {
      const m = JSON.parse(record);
      if (m.protocol) {
        sock.send(`{}${RS}`);
        continue;
      }
      if (m.target === "SendMessage") sock.send(JSON.stringify({ type: 1, target: "ReceiveMessage", arguments: m.arguments }) + RS);
      if (m.invocationId && m.target !== "JoinRoom") {
        setTimeout(() => sock.send(JSON.stringify({ type: 3, invocationId: m.invocationId, result: true }) + RS), 20);
      }
    }
  }));
  const ws = new WebSocket(`ws://127.0.0.1:${hub.address().port}/chathub?id=x`, { agent: new HttpsProxyAgent(`http://${args.proxy}`) });
  await once(ws, "open");
  const next = () => once(ws, "message");
  ws.send(JSON.stringify({ protocol: "json", version: 1 }) + RS);
  await next();
  const chat = [["Ronald", "hello all"], ["John", "hi Ronald"], ["Adam", "hey"]];
  for (const [n, [who, text]] of chat.entries()) {
    const done = new Promise((resolve) => ws.on("message", function seen(data) {
      if (data.toString().includes('"type":3')) {
        ws.off("message", seen);
        resolve();
      }
    }));
    ws.send(JSON.stringify({ type: 1, invocationId: String(n + 1), target: "SendMessage", arguments: [who, text] }) + RS);
    await done;
  }
  ws.send(JSON.stringify({ type: 1, invocationId: "9", target: "JoinRoom", arguments: ["lobby"] }) + RS);
  ws.send(JSON.stringify({ type: 6 }) + RS);
  await new Promise((resolve) => setTimeout(resolve, 100));
  await new Promise((resolve) => { ws.once("close", resolve); ws.close(1000, "bye"); });
  hub.close();

  const row = page.locator("#sessions .rows .row", { hasText: "/chathub" }).first();
  await row.waitFor({ timeout: 10000 });
  await page.waitForFunction(() => [...document.querySelectorAll("#sessions .rows .row")].some((r) => r.textContent.includes("/chathub") && r.textContent.includes("signalr")), null, { timeout: 10000 });
  check(true, "the sessions table names the session's protocol");
  await row.click();
  await page.waitForSelector("#records .rows .row .decoded");
  // Following, the list shows the last messages: JoinRoom, never answered, among them.
  await page.waitForSelector("#records .latency");
  await page.waitForFunction(() => [...document.querySelectorAll("#records .latency")].some((m) => m.textContent === "no answer"), null, { timeout: 10000 });
  check((await page.textContent("#calls-chip")).includes("3 calls answered, 1 not"), "the summary counts the calls");
  // From the top: the handshake, the first invocation, its latency.
  await page.$eval("#records .viewport", (v) => { v.scrollTop = 0; v.dispatchEvent(new Event("scroll")); });
  await page.waitForFunction(() => document.querySelector("#records .rows .row")?.textContent.startsWith("0"), null, { timeout: 10000 });
  const rows = await rowsText(page, "#records");
  check(rows.some((r) => r.includes('SIGNALR invocation SendMessage("Ronald", "hello all") id=1')), `rows show the decoded summary: ${rows.slice(0, 4).join(" ; ")}`);
  check(rows.some((r) => r.includes("SIGNALR handshake protocol=json version=1")), "the handshake record too");
  const latencies = await page.$$eval("#records .latency", (marks) => marks.map((m) => m.textContent));
  check(latencies.some((t) => /^↪ \d/.test(t)) && latencies.some((t) => t.startsWith("↩ ")), `a call shows its latency, an answer its call: ${latencies.join(", ")}`);
  check(await page.inputValue("#view-pick") === "signalr", "the picker shows the view in use");
  await shot(page, "18-views");

  // A call's latency leads to its answer.
  await page.click("#records .latency >> nth=0");
  await page.waitForFunction(() => document.querySelector("#detail h3")?.textContent === "Message 4", null, { timeout: 10000 });
  const opened = await page.textContent("#detail h3");
  await page.waitForSelector("#detail .item-summary");
  const summary = await page.textContent("#detail .item-summary");
  check(summary.startsWith("SIGNALR completion result=true id=1"), `the jump opened the answer (${opened}): ${summary}`);
  check((await page.textContent("#detail nav.tabs")).startsWith("SignalR"), "the detail pane leads with the decoded view");
  await shot(page, "19-views-detail");

  // The filter language reads SignalR's fields.
  await page.fill("#record-filter", 'signalr.target == "SendMessage"');
  await page.waitForFunction(() => document.querySelector("#record-count").textContent.startsWith("3 messages"), null, { timeout: 10000 });
  const filtered = await rowsText(page, "#records");
  check(filtered.length === 3 && filtered.every((r) => r.includes("SendMessage")), `the filter narrows to the invocations: ${filtered.join(" ; ")}`);
  await page.fill("#record-filter", 'signalr.targte == "SendMessage"');
  await page.waitForSelector("#record-filter-error:not([hidden])");
  check((await page.textContent("#record-filter-error")).includes("signalr has no field"), "a mistyped field is an error");
  await page.fill("#record-filter", "");
  await page.waitForFunction(() => !document.querySelector("#record-count").textContent.includes(" of "), null, { timeout: 10000 });

  // A view picked by hand is kept, and reads the same bytes otherwise.
  await page.selectOption("#view-pick", "hex");
  await page.waitForFunction(() => [...document.querySelectorAll("#records .decoded")].some((d) => d.textContent.startsWith("HEX 7b")), null, { timeout: 10000 });
  check(true, "picked by hand: the rows read as hex");
  await page.selectOption("#view-pick", "");
  await page.waitForFunction(() => [...document.querySelectorAll("#records .decoded")].some((d) => d.textContent.startsWith("SIGNALR")), null, { timeout: 10000 });
  check(true, "back to wstap's choice");
  check(problems.length === 0, `no script errors or CSP reports: ${problems.join("; ")}`);
  await browser.close();
}

const modes = { live, demo, scale, intercept, bounded, conditions, replay, views };
await modes[args.mode]();
