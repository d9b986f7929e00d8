#!/usr/bin/env bash
# Installs the pinned node peers used by the interop tests and benchmarks (openid-client,
# oidc-provider, ... as pinned in tests/interop/package.json + package-lock.json) into
# .cache/node-peers/ at the repo root. Idempotent and cheap when nothing changed: `npm ci` runs
# only when node_modules is missing or package.json / package-lock.json differ from the ones
# last installed. Prints the install directory on stdout as its last line.
#
#   NODE_PEERS_DIR   install somewhere else (default: <repo>/.cache/node-peers)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/tests/interop"
DEST="${NODE_PEERS_DIR:-$ROOT/.cache/node-peers}"
PEERS=(openid-client oidc-provider)

die() { echo "ensure-node-peers: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node is not installed (need Node.js >= 20)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "Node.js >= 20 is needed, found $(node --version)"
[ -f "$SRC/package.json" ] && [ -f "$SRC/package-lock.json" ] \
  || die "missing $SRC/package.json or package-lock.json"

mkdir -p "$DEST"

# Serialise concurrent callers (parallel test runs, a bench next to a test run).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$DEST/.lock"
  flock -w 600 9 || die "timed out waiting for $DEST/.lock"
fi

want="$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
have="$(cat "$DEST/.installed" 2>/dev/null || true)"

installed_ok() {
  [ -d "$DEST/node_modules" ] || return 1
  local peer
  for peer in "${PEERS[@]}"; do
    [ -f "$DEST/node_modules/$peer/package.json" ] || return 1
  done
}

if [ "$want" = "$have" ] && installed_ok; then
  echo "$DEST"
  exit 0
fi

echo "ensure-node-peers: installing pinned node peers into $DEST" >&2
rm -f "$DEST/.installed"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
ok=0
for attempt in 1 2 3; do
  if (cd "$DEST" && npm ci --no-audit --no-fund --loglevel=error >&2); then
    ok=1
    break
  fi
  echo "ensure-node-peers: npm ci failed (attempt $attempt)" >&2
  sleep $((attempt * 2))
done
[ "$ok" = 1 ] || die "npm ci failed in $DEST"
installed_ok || die "npm ci finished but a peer is missing in $DEST/node_modules"

# Show what got installed (the lock pins them; this is for the log).
(cd "$DEST" && node -e '
  for (const p of process.argv.slice(1)) {
    const v = require("./node_modules/" + p + "/package.json").version;
    console.error("ensure-node-peers: " + p + "@" + v);
  }' "${PEERS[@]}")

echo "$want" >"$DEST/.installed"
echo "$DEST"
