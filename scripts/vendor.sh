#!/usr/bin/env bash
# Vendor the test-only JavaScript the web app's browser tests use, from the npm registry,
# pinned and checked: axe-core (accessibility checks) into tests/web/vendor/axe-core/ with
# its licences. Run from anywhere; needs npm and sha256sum. Nothing here is served by the app.
set -euo pipefail
cd "$(dirname "$0")/.."

AXE_VERSION=4.14.1
AXE_SHA256=e6b0ce02b84d892e2e33e403485e7f3d6c29e2be6df65daf44d89ba564139745  # the npm tarball

out=tests/web/vendor/axe-core
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "axe-core@${AXE_VERSION}" >/dev/null)
tarball="$tmp/axe-core-${AXE_VERSION}.tgz"
echo "${AXE_SHA256}  ${tarball}" | sha256sum --check --quiet -
tar -xzf "$tarball" -C "$tmp"
mkdir -p "$out"
cp "$tmp/package/axe.min.js" "$tmp/package/LICENSE" "$tmp/package/LICENSE-3RD-PARTY.txt" "$out/"
echo "$AXE_VERSION" > "$out/VERSION"
echo "vendored axe-core ${AXE_VERSION} into ${out}"
