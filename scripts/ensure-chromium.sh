#!/usr/bin/env bash
# Make sure the system Chromium used by the browser tests (tests/ui) is present.
#
# Called by `make test`. Fast no-op when /usr/bin/chromium already exists; otherwise installs
# the Debian `chromium` package with apt-get (as root, or through sudo when not root).
# Never runs `playwright install`: the tests drive the distribution's Chromium via
# executable_path, and Playwright's own browser download is not available everywhere.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

fail() {
    echo "ensure-chromium: $*" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 \
    || fail "$CHROMIUM is missing and apt-get is not available; install Chromium so that $CHROMIUM exists."

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    # sudo resets the environment, so DEBIAN_FRONTEND is passed through `env` below.
    as_root=(sudo)
else
    fail "$CHROMIUM is missing and this is not root and sudo is not installed;" \
         "run 'apt-get update && apt-get install -y chromium' as root."
fi

apt_get() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq -o Dpkg::Use-Pty=0 "$@"
}

echo "ensure-chromium: $CHROMIUM not found; installing the Debian 'chromium' package..." >&2
apt_get update >/dev/null \
    || fail "'apt-get update' failed."
apt_get install -y chromium >/dev/null \
    || fail "'apt-get install -y chromium' failed."

[ -x "$CHROMIUM" ] \
    || fail "the chromium package was installed but $CHROMIUM still does not exist."

echo "ensure-chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)" >&2
