// The only place the UI talks to the Rust side. Every command and event
// shape is mirrored from src-tauri/src/lib.rs; keep the two in step.
import { invoke } from "@tauri-apps/api/core";

/** Mirrors `voicemeet_app::AppInfo`. */
export interface AppInfo {
  version: string;
}

export function appInfo(): Promise<AppInfo> {
  return invoke<AppInfo>("app_info");
}
