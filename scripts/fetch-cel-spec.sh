#!/usr/bin/env bash
# Fetches CEL's official conformance test data (cel-spec testdata, published on the npm registry as
# @bufbuild/cel-spec, Apache-2.0) and converts it to JSON for the runner in
# crates/argus_rules/tests/conformance.rs. Output: target/cel-spec/conformance.json.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.6.1
OUT=target/cel-spec
if [ -f "$OUT/conformance.json" ] && [ "$(cat "$OUT/version" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
mkdir -p "$OUT"
tmp=$(mktemp -d)
(cd "$tmp" && npm pack --silent "@bufbuild/cel-spec@$VERSION" >/dev/null && tar xzf bufbuild-cel-spec-*.tgz)
node -e "import('$tmp/package/dist/esm/testdata/conformance.js').then(m => require('fs').writeFileSync('$OUT/conformance.json', JSON.stringify(m.tests)))"
echo "$VERSION" > "$OUT/version"
rm -rf "$tmp"
echo "CEL conformance data $VERSION in $OUT/conformance.json"
