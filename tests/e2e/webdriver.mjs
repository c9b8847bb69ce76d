// A minimal W3C WebDriver client and the processes the app-window tests need:
// a virtual X display (Xvfb) and WebKitWebDriver, which drives the real Tauri
// app's WebKitGTK webview. Plain fetch over HTTP; no driver library.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";

/** Resolves a free TCP port on loopback. */
export async function freePort() {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

/** Starts Xvfb on the first free display; it reports the number on fd 3. */
export async function startXvfb() {
  const proc = spawn("Xvfb", ["-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp"], {
    stdio: ["ignore", "ignore", "pipe", "pipe"],
  });
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  const display = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`Xvfb did not start: ${stderr}`)), 10_000);
    proc.stdio[3].on("data", (d) => {
      out += d;
      if (out.includes("\n")) {
        clearTimeout(timer);
        resolve(`:${out.trim()}`);
      }
    });
    proc.on("exit", (code) => reject(new Error(`Xvfb exited with ${code}: ${stderr}`)));
  });
  return { display, stop: () => proc.kill("SIGTERM") };
}

/** Starts WebKitWebDriver on a free port and waits until it answers /status. */
export async function startWebDriver(env) {
  const port = await freePort();
  const proc = spawn("WebKitWebDriver", [`--port=${port}`], {
    env: { ...process.env, ...env, TAURI_WEBVIEW_AUTOMATION: "true" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      const res = await fetch(`${base}/status`);
      if (res.ok) return { base, stop: () => proc.kill("SIGTERM") };
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  proc.kill("SIGKILL");
  throw new Error("WebKitWebDriver did not start");
}

async function call(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) {
    throw new Error(`${method} ${url} -> ${res.status}: ${JSON.stringify(json.value ?? json)}`);
  }
  return json.value;
}

/** A WebDriver session on the app binary. */
export class Session {
  static async start(base, binary) {
    const value = await call("POST", `${base}/session`, {
      capabilities: { alwaysMatch: { "webkitgtk:browserOptions": { binary, args: [] } } },
    });
    return new Session(base, value.sessionId);
  }

  constructor(base, id) {
    this.url = `${base}/session/${id}`;
  }

  /** Runs a script in the page and returns its value. */
  execute(script, args = []) {
    return call("POST", `${this.url}/execute/sync`, { script, args });
  }

  /** Runs an async script; it finishes by calling its last argument. */
  executeAsync(script, args = []) {
    return call("POST", `${this.url}/execute/async`, { script, args });
  }

  /** Polls a script until it returns a truthy value or the timeout ends. */
  async waitFor(script, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
      try {
        last = await this.execute(script);
        if (last) return last;
      } catch (err) {
        last = err;
      }
      await sleep(100);
    }
    throw new Error(`timed out waiting for: ${script} (last: ${last})`);
  }

  async find(css) {
    const value = await call("POST", `${this.url}/element`, { using: "css selector", value: css });
    return Object.values(value)[0];
  }

  text(element) {
    return call("GET", `${this.url}/element/${element}/text`);
  }

  attribute(element, name) {
    return call("GET", `${this.url}/element/${element}/attribute/${name}`);
  }

  click(element) {
    return call("POST", `${this.url}/element/${element}/click`, {});
  }

  /** Presses a key through the Actions API (a real key event in WebKit). */
  pressKey(key) {
    return call("POST", `${this.url}/actions`, {
      actions: [
        {
          type: "key",
          id: "keyboard",
          actions: [
            { type: "keyDown", value: key },
            { type: "keyUp", value: key },
          ],
        },
      ],
    });
  }

  /** PNG bytes of the window. */
  async screenshot() {
    return Buffer.from(await call("GET", `${this.url}/screenshot`), "base64");
  }

  async close() {
    try {
      await call("DELETE", this.url);
    } catch {
      // the app may already be gone
    }
  }
}
