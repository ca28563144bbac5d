#!/usr/bin/env bash
# Make sure uv (the workspace's installer and lock) is on PATH; installs it from PyPI if missing.
set -euo pipefail
UV_VERSION=0.13.8
if command -v uv >/dev/null 2>&1; then exit 0; fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "ensure-uv: python3 (3.11+) is required and was not found" >&2; exit 1
fi
python3 -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}" >&2 \
  || { echo "ensure-uv: could not install uv ${UV_VERSION} from PyPI" >&2; exit 1; }
command -v uv >/dev/null 2>&1 || { echo "ensure-uv: uv installed but not on PATH (add python's scripts dir)" >&2; exit 1; }
