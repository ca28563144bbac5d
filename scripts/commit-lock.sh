#!/usr/bin/env bash
# Stage a uv.lock that matches exactly what is staged (the working tree may hold
# workspace members that are not committed yet). Used before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive HEAD | tar -x -C "$tmp"
git diff --cached --binary | (cd "$tmp" && git apply --whitespace=nowarn 2>/dev/null || git apply)
(cd "$tmp" && uv lock -q)
cp uv.lock "$tmp/uv.lock.working"
cp "$tmp/uv.lock" uv.lock
git add uv.lock
cp "$tmp/uv.lock.working" uv.lock
