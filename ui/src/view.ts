// Pure view logic: what the shell shows for a given state. Kept apart from
// the DOM wiring so the rules read in one place.

/** Why the call button cannot be pressed yet, or null when it can. */
export type Availability = { ready: true } | { ready: false; reason: string };

/** The engine is not part of this build yet, so calling is unavailable. */
export const ENGINE_MISSING: Availability = {
  ready: false,
  reason: "Calling isn't available in this build yet: the call engine is still being built.",
};

export interface ShellView {
  buttonDisabled: boolean;
  reason: string;
  status: string;
}

export function shellView(availability: Availability, version: string | null): ShellView {
  const status =
    version === null ? "Could not reach the app core." : availability.ready ? "Ready." : "Not ready to call.";
  return {
    buttonDisabled: !availability.ready,
    reason: availability.ready ? "" : availability.reason,
    status,
  };
}
