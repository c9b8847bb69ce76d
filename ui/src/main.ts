import "./style.css";
import { appInfo } from "./ipc";
import { ENGINE_MISSING, shellView } from "./view";

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id} in index.html`);
  return el as T;
}

const button = byId<HTMLButtonElement>("call-button");
const reason = byId<HTMLParagraphElement>("call-reason");
const status = byId<HTMLParagraphElement>("status");
const version = byId<HTMLSpanElement>("version");

// aria-disabled (not `disabled`) keeps the button focusable, so keyboard and
// screen-reader users can reach it and hear why it cannot be used yet.
button.addEventListener("click", (event) => {
  if (button.getAttribute("aria-disabled") === "true") {
    event.preventDefault();
    reason.classList.remove("nudge");
    void reason.offsetWidth; // restart the animation
    reason.classList.add("nudge");
  }
});

async function start(): Promise<void> {
  let appVersion: string | null = null;
  try {
    appVersion = (await appInfo()).version;
    version.textContent = `v${appVersion}`;
  } catch (err) {
    console.error("app_info failed", err);
  }
  const view = shellView(ENGINE_MISSING, appVersion);
  button.setAttribute("aria-disabled", String(view.buttonDisabled));
  reason.textContent = view.reason;
  status.textContent = view.status;
  document.body.dataset.ready = "true";
}

void start();
