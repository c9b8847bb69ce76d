# Shared helpers for scripts/run and scripts/test. Sourced, not executed.
# Everything here is idempotent: on a machine that already has what is
# needed, each step is a few quick checks and no downloads.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Packages the desktop app needs to build and run (Tauri v2 on WebKitGTK 4.1),
# plus what the core crates build from C (alsa, libopus via cmake).
APP_PACKAGES=(
  build-essential pkg-config curl ca-certificates git
  libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev
  libssl-dev libxdo-dev libasound2-dev cmake
)

# Extra packages the test suite drives for real: a virtual display and the
# WebKit WebDriver for the app window, Chromium for the UI tests, coturn as a
# second TURN implementation, ImageMagick for display screenshots, a private
# PulseAudio with null devices behind ALSA for real audio streams, espeak-ng
# for test speech, and Python (venv + headers) for the PESQ scorer.
TEST_PACKAGES=(
  xvfb xauth webkit2gtk-driver xdotool imagemagick chromium coturn
  pulseaudio pulseaudio-utils alsa-utils libasound2-plugins espeak-ng
  python3 python3-venv python3-dev
)

# Python packages of the audio quality tests (PESQ, ITU-T P.862), pinned.
PYTHON_PACKAGES=(numpy==2.4.6 pesq==0.0.4)

# A virtual environment with PYTHON_PACKAGES, made once (pesq compiles its
# C code, ~20 s) and reused; exports VOICEMEET_PYTHON for the tests.
ensure_python_env() {
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/voicemeet/pyenv"
  if ! "$venv/bin/python" -c 'import numpy, pesq' >/dev/null 2>&1; then
    log "making a Python environment for PESQ: ${PYTHON_PACKAGES[*]}"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${PYTHON_PACKAGES[@]}"
  fi
  export VOICEMEET_PYTHON="$venv/bin/python"
}

# Install the Debian/Ubuntu packages that are not installed yet. Runs
# `apt-get update` only when something is missing.
ensure_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  command -v apt-get >/dev/null || die "apt-get not found; install these by hand: ${missing[*]}"
  log "installing system packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The Rust toolchain comes from rustup (rust-toolchain.toml pins nothing
# beyond "stable >= rust-version" in Cargo.toml).
ensure_rust() {
  if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null; then
    log "installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

# Node.js and npm: any install will do (the machine's own, nvm, or Debian's).
ensure_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    ensure_packages nodejs npm
  fi
}

# npm dependencies, reinstalled only when package-lock.json changed since the
# last install (npm writes node_modules/.package-lock.json).
ensure_node_modules() {
  cd "$REPO_ROOT"
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing npm dependencies"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

target_dir() {
  printf '%s' "${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
}
