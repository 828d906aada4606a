#!/usr/bin/env bash
# Installs what the annotation service needs beyond the Python venv: Debian chromium (browser
# tests), the viewer's npm packages (npm ci, only when the lock file changed) and its Vite build
# (only when sources changed). Idempotent; a second run with nothing to do takes about a second.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WEB="$HERE/web"
STAMPS="$WEB/node_modules/.stamps"

missing=""
for pkg in chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "annotation/install.sh: apt packages:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

command -v npm >/dev/null || { echo "annotation/install.sh: npm is required (node 20+)" >&2; exit 1; }

lock_sum="$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$STAMPS/npm-ci" ] || [ "$(cat "$STAMPS/npm-ci")" != "$lock_sum" ]; then
  echo "annotation/install.sh: npm ci (viewer dependencies)"
  (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error)
  mkdir -p "$STAMPS"
  echo "$lock_sum" > "$STAMPS/npm-ci"
fi

src_sum="$(cd "$WEB" && cat package-lock.json vite.config.js index.html $(find src -type f | sort) | sha256sum | cut -d' ' -f1)"
if [ ! -f "$WEB/dist/index.html" ] || [ ! -f "$STAMPS/build" ] || [ "$(cat "$STAMPS/build")" != "$src_sum" ]; then
  echo "annotation/install.sh: vite build (viewer)"
  (cd "$WEB" && npx --no-install vite build --logLevel error)
  echo "$src_sum" > "$STAMPS/build"
fi
echo "annotation/install.sh: ready (viewer in annotation/web/dist)"
