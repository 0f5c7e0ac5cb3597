// Drives the chat page (examples/web) in the system's headless Chromium with playwright-core:
// two pages join "lobby" and talk both ways, an empty line gets the server's validation
// error on the page, a page whose socket drops resumes its session, and a page whose
// connection the server kills resumes without losing (or repeating) a line said meanwhile.
// Run by examples/tests/web_browser.rs, or by hand against a running example:
//
//   cargo run --release --example web_chat        # prints the page URL
//   node examples/web/test/browser.mjs 'http://127.0.0.1:8080/?ws=9004' [screenshot.png]
//
// The server-side kill needs the test's help: this script prints `KILL <room>` and waits
// for a line on stdin, once the test has dropped the connections of the room's members
// (web_browser.rs does). Run by hand from a terminal, that step is skipped.
//
// Chromium: /usr/bin/chromium (Debian's `chromium` package), or the path in $CHROMIUM.
// Prints one "ok: ..." line per step; exits 0 when all passed, 1 otherwise.

import { existsSync } from "node:fs";
import { createInterface } from "node:readline";

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

// Lines from the test driving this script (see the header).
const fromTest = process.stdin.isTTY ? null : createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => fromTest.once("line", resolve));

/** How many lines of `name: text` `page` shows. */
async function count(page, name, text) {
  return page
    .locator("#log li", { has: page.locator(".who", { hasText: name }) })
    .filter({ has: page.locator(".text", { hasText: text }) })
    .count();
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

  // A's socket drops on its side: the client resumes its session (the server kept its
  // rooms) and is heard.
  await alyx.evaluate(() => window.chat.client.ws.close());
  await alyx.locator("#notice", { hasText: "reconnected (session resumed)" }).waitFor();
  await alyx.locator("#status[data-status=open]").waitFor();
  await say(alyx, "back again");
  await shows(eli, "Alyx", "back again");
  ok("after its socket drops A resumes its session and is heard");

  if (fromTest) {
    // The server kills A's connection (the test drops every member of a room only A is
    // in), and B talks while A is away: A resumes and shows each line once, in order.
    await alyx.evaluate(() => window.chat.client.request("room.join", { room: "alyx-only" }));
    await alyx.evaluate(() => {
      document.getElementById("notice").textContent = "";
    });
    console.log("KILL alyx-only");
    const answer = await nextLine();
    if (answer !== "killed") throw new Error(`the test answered ${JSON.stringify(answer)}`);
    const away = ["while you were away 1", "while you were away 2", "while you were away 3"];
    for (const line of away) await say(eli, line);
    await alyx.locator("#notice", { hasText: "reconnected (session resumed)" }).waitFor();
    for (const line of away) await shows(alyx, "Eli", line);
    await say(eli, "and now live");
    await shows(alyx, "Eli", "and now live");
    const shown = await alyx.locator("#log li .text").allTextContents();
    const order = away.map((line) => shown.indexOf(line));
    if (order.some((at, i) => at < 0 || (i > 0 && at < order[i - 1]))) {
      throw new Error(`A shows the lines out of order: ${JSON.stringify(shown)}`);
    }
    for (const line of [...away, "and now live"]) {
      const n = await count(alyx, "Eli", line);
      if (n !== 1) throw new Error(`A shows ${JSON.stringify(line)} ${n} times`);
    }
    ok("after the server kills its connection A resumes with every line, once, in order");
  }

  await alyx.screenshot({ path: screenshot });
  ok(`screenshot ${screenshot}`);
} catch (error) {
  failed = true;
  console.error(`FAIL: ${error.message}`);
}

await browser.close();
fromTest?.close();
clearTimeout(watchdog);
for (const problem of problems) console.error(problem);
if (failed || problems.length > 0) process.exit(1);
console.log("browser test passed");
