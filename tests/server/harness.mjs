// Starts the real local backend binary on ephemeral ports and hands tests its
// URL and anon key, parsed from the lines it prints for scripts.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const serverBinary = resolve(
  process.env.VOICEMEET_SERVER_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "debug/voicemeet-server"),
);

/** Starts voicemeet-server; resolves once it printed its URL and anon key. */
export async function startServer(extraArgs = []) {
  const proc = spawn(
    serverBinary,
    ["--listen", "127.0.0.1:0", "--turn-listen", "127.0.0.1:0", "--signup-rate-limit", "off", ...extraArgs],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RUST_LOG: "warn" } },
  );
  const lines = createInterface({ input: proc.stdout });
  const found = {};
  await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error("server did not announce itself in 20 s")), 20_000);
    proc.once("exit", (code) => reject(new Error(`server exited early with ${code}`)));
    lines.on("line", (line) => {
      const m = line.match(/^(VOICEMEET_URL|VOICEMEET_ANON_KEY)=(.+)$/);
      if (m) found[m[1]] = m[2];
      if (found.VOICEMEET_URL && found.VOICEMEET_ANON_KEY) {
        clearTimeout(timer);
        resolvePromise();
      }
    });
  });
  return {
    url: found.VOICEMEET_URL,
    anonKey: found.VOICEMEET_ANON_KEY,
    stop: () =>
      new Promise((r) => {
        if (proc.exitCode !== null) return r();
        proc.once("exit", r);
        proc.kill("SIGTERM");
      }),
  };
}

/** A supabase-js client on the server, speaking Realtime `vsn`. */
export function client(server, vsn = "2.0.0") {
  return createClient(server.url, server.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: WebSocket, vsn, heartbeatIntervalMs: 5_000 },
  });
}

/** Subscribes and resolves with the final status (SUBSCRIBED, CHANNEL_ERROR, ...). */
export function subscribe(channel, timeoutMs = 10_000) {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`subscribe timed out: ${channel.topic}`)), timeoutMs);
    channel.subscribe((status, err) => {
      if (status === "SUBSCRIBED" || status === "CHANNEL_ERROR" || status === "TIMED_OUT") {
        clearTimeout(timer);
        resolvePromise({ status, err });
      }
    });
  });
}

/** Resolves with the next `broadcast` of `event` on the channel. */
export function nextBroadcast(channel, event, timeoutMs = 5_000) {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} broadcast within ${timeoutMs} ms`)), timeoutMs);
    channel.on("broadcast", { event }, (msg) => {
      clearTimeout(timer);
      resolvePromise(msg);
    });
  });
}

/** Polls `check` until it is truthy. */
export async function eventually(check, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
