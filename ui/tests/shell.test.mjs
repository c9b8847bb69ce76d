// The UI shell in headless Chromium (Debian's, driven by playwright-core),
// with Tauri's IPC mocked: what a user sees and can reach with the keyboard.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { once } from "node:events";
import { dirname, join, resolve, extname } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const dist = join(root, "ui/dist");
const artifacts = join(root, "test-artifacts");
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };

let server;
let baseUrl;
let browser;
let mockScript;

before(async () => {
  assert.ok(existsSync(join(dist, "index.html")), "run `npm run build` first");
  await mkdir(artifacts, { recursive: true });
  // Bundle Tauri's IPC mocks into one script the page runs before the app.
  const out = await build({
    configFile: false,
    logLevel: "silent",
    build: {
      write: false,
      lib: { entry: join(root, "ui/tests/harness/tauri-mock.ts"), formats: ["iife"], name: "vmTauriMock" },
    },
  });
  mockScript = (Array.isArray(out) ? out[0] : out).output[0].code;

  server = createServer(async (req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    const file = join(dist, path === "/" ? "index.html" : path);
    if (!file.startsWith(dist)) return res.writeHead(403).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  baseUrl = `http://127.0.0.1:${server.address().port}/`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
});

after(async () => {
  await browser?.close();
  server?.close();
});

async function openShell({ responses = {}, failures = {} } = {}) {
  const page = await browser.newPage({ viewport: { width: 420, height: 640 } });
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  await page.addInitScript((config) => {
    window.__VM_TEST__ = { ...config, calls: [] };
  }, { responses, failures });
  await page.addInitScript({ content: mockScript });
  await page.goto(baseUrl);
  await page.waitForSelector("body[data-ready=true]");
  return { page, errors };
}

test("shows the name, the call button with its reason, and the version", async () => {
  const { page, errors } = await openShell({ responses: { app_info: { version: "9.8.7" } } });
  assert.equal(await page.textContent("h1"), "VoiceMeet");
  assert.equal(await page.textContent("#version"), "v9.8.7");
  assert.equal(await page.getAttribute("#call-button", "aria-disabled"), "true");
  assert.match(await page.textContent("#call-reason"), /call engine/);
  assert.equal(await page.textContent("#status"), "Not ready to call.");
  assert.deepEqual(errors, []);
  await page.screenshot({ path: join(artifacts, "ui-shell.png") });
  await page.close();
});

test("the call button is reachable with Tab and announces its label and reason", async () => {
  const { page } = await openShell({ responses: { app_info: { version: "1.0.0" } } });
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "call-button");
  const snapshot = await page.locator("#call-button").ariaSnapshot();
  assert.match(snapshot, /button "Start talking"/);
  assert.match(snapshot, /disabled/);
  const describedBy = await page.getAttribute("#call-button", "aria-describedby");
  assert.deepEqual(describedBy.split(" "), ["call-reason", "status"]);
  await page.close();
});

test("pressing the unavailable button sends nothing to the core", async () => {
  const { page } = await openShell({ responses: { app_info: { version: "1.0.0" } } });
  await page.click("#call-button", { force: true });
  await page.keyboard.press("Enter");
  const calls = await page.evaluate(() => window.__VM_TEST__.calls.map((c) => c.cmd));
  assert.deepEqual(calls, ["app_info"]);
  await page.close();
});

test("a core that does not answer is shown in the status line, not swallowed", async () => {
  const { page } = await openShell({ failures: { app_info: "core unavailable" } });
  assert.equal(await page.textContent("#status"), "Could not reach the app core.");
  assert.equal(await page.textContent("#version"), "");
  await page.close();
});
