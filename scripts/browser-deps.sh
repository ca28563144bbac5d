#!/usr/bin/env bash
# What the console's browser tests need, installed once: Debian's chromium and its matching
# chromedriver (apt; browsers cannot be downloaded by Selenium Manager here) and axe-core from
# the npm registry (`npm pack`, unpacked into the cache). Prints the path of axe.min.js.
set -euo pipefail
AXE_VERSION=${JM_AXE_VERSION:-4.14.1}
CACHE=${JM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/junipermarket}
AXE_DIR=$CACHE/npm/axe-core-$AXE_VERSION

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "browser-deps: installing chromium and chromium-driver with apt" >&2
  sudo_=""; [[ $(id -u) -ne 0 ]] && sudo_="sudo"
  $sudo_ apt-get install -y -q chromium chromium-driver >&2 \
    || { $sudo_ apt-get update -q >&2 && $sudo_ apt-get install -y -q chromium chromium-driver >&2; } \
    || { echo "browser-deps: apt-get install chromium chromium-driver failed" >&2; exit 1; }
fi

if [[ ! -f $AXE_DIR/axe.min.js ]]; then
  echo "browser-deps: fetching axe-core $AXE_VERSION from the npm registry" >&2
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null && tar xzf "axe-core-$AXE_VERSION.tgz")
  mkdir -p "$AXE_DIR"
  cp "$work/package/axe.min.js" "$work/package/LICENSE" "$AXE_DIR/"
fi
echo "$AXE_DIR/axe.min.js"
