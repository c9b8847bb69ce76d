// End-to-end smoke test of the real desktop app: the Tauri binary runs in a
// virtual X display, WebKitWebDriver drives its webview, and we check that the
// UI rendered and that a Rust command answered. Saves a screenshot under
// test-artifacts/ for people to look at.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdirSync, writeFileSync, existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startXvfb, startWebDriver, Session } from "./webdriver.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const artifacts = join(root, "test-artifacts");
const binary = resolve(process.env.VOICEMEET_APP_BIN ?? join(root, "target/debug/voicemeet"));
const cargoVersion = readFileSync(join(root, "Cargo.toml"), "utf8").match(
  /\[workspace\.package\][^[]*?\nversion = "([^"]+)"/,
)[1];

let xvfb;
let driver;
let session;

before(async () => {
  assert.ok(existsSync(binary), `app binary not built: ${binary}`);
  mkdirSync(artifacts, { recursive: true });
  xvfb = await startXvfb();
  driver = await startWebDriver({ DISPLAY: xvfb.display });
  session = await Session.start(driver.base, binary);
  await session.waitFor("return document.body.dataset.ready === 'true'");
});

after(async () => {
  await session?.close();
  driver?.stop();
  xvfb?.stop();
});

test("the window shows the VoiceMeet shell", async () => {
  assert.equal(await session.execute("return document.title"), "VoiceMeet");
  const heading = await session.find("h1");
  assert.equal(await session.text(heading), "VoiceMeet");
  const status = await session.find("#status");
  assert.equal(await session.attribute(status, "role"), "status");
  assert.notEqual(await session.text(status), "");
});

test("a Rust command answered: the version comes from app_info", async () => {
  const version = await session.find("#version");
  assert.equal(await session.text(version), `v${cargoVersion}`);
});

test("the call button says why it is unavailable and stays keyboard-reachable", async () => {
  const button = await session.find("#call-button");
  assert.equal(await session.attribute(button, "aria-disabled"), "true");
  const reason = await session.text(await session.find("#call-reason"));
  assert.match(reason, /call engine/i);
  assert.match(await session.attribute(button, "aria-describedby"), /call-reason/);
  await session.execute("document.activeElement?.blur()");
  await session.pressKey("\uE004"); // Tab
  assert.equal(await session.execute("return document.activeElement.id"), "call-button");
});

test("a screenshot of the window is saved", async () => {
  // Let the webview paint the final state before capturing it.
  await session.executeAsync(
    "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
  );
  const png = await session.screenshot();
  assert.ok(png.length > 1000, "screenshot is not empty");
  assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
  writeFileSync(join(artifacts, "app-window.png"), png);
  // The whole virtual display too, as a person would see it.
  execFileSync("import", ["-display", xvfb.display, "-window", "root", join(artifacts, "app-display.png")]);
});
