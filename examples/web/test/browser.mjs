// Drives the chat page (examples/web) in the system's headless Chromium with playwright-core:
// two pages join "lobby" and talk both ways, an empty line gets the server's validation
// error on the page, and a dropped connection comes back as a new session that rejoins the
// room. Run by examples/tests/web_browser.rs, or by hand against a running example:
//
//   cargo run --release --example web_chat        # prints the page URL
//   node examples/web/test/browser.mjs 'http://127.0.0.1:8080/?ws=9004' [screenshot.png]
//
// Chromium: /usr/bin/chromium (Debian's `chromium` package), or the path in $CHROMIUM.
// Prints one "ok: ..." line per step; exits 0 when all passed, 1 otherwise.

import { existsSync } from "node:fs";

const [url, screenshot = "web-chat.png"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node browser.mjs <page-url> [screenshot.png]");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!existsSync(executablePath)) {
  console.error(`no Chromium at ${executablePath}: apt-get install -y chromium`);
  process.exit(3);
}
let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch {
  console.error("playwright-core is missing: npm ci --prefix examples/web/test");
  process.exit(3);
}

// The whole run takes a few seconds; never hang a test run.
const watchdog = setTimeout(() => {
  console.error("FAIL: the browser test took over 60 s");
  process.exit(1);
}, 60_000);

const STEP_MS = 10_000;
const problems = [];
const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in a container has no user namespace for Chromium's sandbox.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});

async function openPage(name) {
  // A context each: the two pages share no storage, as two people's browsers would not.
  const context = await browser.newContext({ viewport: { width: 900, height: 560 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (error) => problems.push(`${name}: uncaught ${error.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`${name}: console error: ${msg.text()}`);
  });
  await page.goto(url);
  await page.locator("#status[data-status=open]").waitFor();
  await page.locator("#log li.system", { hasText: "you joined #lobby" }).waitFor();
  await page.fill("#name", name);
  await page.dispatchEvent("#name", "change");
  return page;
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.click("#send");
}

/** Waits until `page` shows `name: text` in its log. */
async function shows(page, name, text) {
  await page
    .locator("#log li", { has: page.locator(".who", { hasText: name }) })
    .filter({ has: page.locator(".text", { hasText: text }) })
    .first()
    .waitFor();
}

function ok(step) {
  console.log(`ok: ${step}`);
}

let failed = false;
try {
  const alyx = await openPage("Alyx");
  const eli = await openPage("Eli");
  ok("both pages connected and joined #lobby");

  await say(alyx, "hello from A");
  await shows(eli, "Alyx", "hello from A");
  await shows(alyx, "Alyx", "hello from A");
  ok("B shows A's line (and A its own)");

  await say(eli, "hi A, B here");
  await shows(alyx, "Eli", "hi A, B here");
  ok("A shows B's line");

  await say(alyx, "");
  const error = alyx.locator("#error");
  await error.filter({ hasText: "1009" }).waitFor();
  const shown = (await error.textContent()) ?? "";
  if (!shown.includes("text") || !shown.includes("must not be empty")) {
    throw new Error(`the validation error shown is ${JSON.stringify(shown)}`);
  }
  ok(`the empty line's validation error is shown: ${shown}`);

  // Drop A's socket as a network failure would: without JSON sessions on the server, the
  // client starts a new session, says so, and rejoins its room.
  await alyx.evaluate(() => window.chat.client.ws.close());
  await alyx.locator("#notice", { hasText: "reconnected (new session)" }).waitFor();
  await alyx.locator("#status[data-status=open]").waitFor();
  await say(alyx, "back again");
  await shows(eli, "Alyx", "back again");
  ok("after a dropped connection A reconnects (new session), rejoins and is heard");

  await alyx.screenshot({ path: screenshot });
  ok(`screenshot ${screenshot}`);
} catch (error) {
  failed = true;
  console.error(`FAIL: ${error.message}`);
}

await browser.close();
clearTimeout(watchdog);
for (const problem of problems) console.error(problem);
if (failed || problems.length > 0) process.exit(1);
console.log("browser test passed");
