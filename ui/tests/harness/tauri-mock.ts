// Injected into the page before the app bundle in the UI tests: Tauri's own
// IPC mocks, answering commands from a table the test sets on
// `window.__VM_TEST__` and recording every call.
import { mockIPC, mockWindows } from "@tauri-apps/api/mocks";

interface TestConfig {
  responses: Record<string, unknown>;
  failures: Record<string, string>;
  calls: { cmd: string; args: unknown }[];
}

declare global {
  interface Window {
    __VM_TEST__: TestConfig;
  }
}

mockWindows("main");
mockIPC((cmd, args) => {
  const config = window.__VM_TEST__;
  config.calls.push({ cmd, args });
  if (cmd in config.failures) throw new Error(config.failures[cmd]);
  if (cmd in config.responses) return config.responses[cmd];
  throw new Error(`unexpected command ${cmd}`);
});
