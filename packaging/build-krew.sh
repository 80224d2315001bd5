#!/usr/bin/env bash
# The krew release: target/static/hopscope-vVERSION-x86_64-linux.tar.gz (the static executable
# and the README, reproducible: fixed owner, order and time) and target/static/krew/hopscope.yaml,
# packaging/krew/hopscope.yaml with that archive's sha256 filled in. krew links the binary as
# kubectl-hopscope; under that name it is the kubectl plugin (= hopscope attach …).
#
#   packaging/build-krew.sh            -> target/static/krew/hopscope.yaml
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { echo "build-krew: $*" >&2; }
# shellcheck source=packaging/prereqs.sh
. packaging/prereqs.sh
need tar:tar gzip:gzip coreutils:sha256sum sed:sed

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
template=packaging/krew/hopscope.yaml
if ! grep -q "^  version: v$version\$" "$template"; then
  log "$template: spec.version is not v$version (Cargo.toml): update it and the uri"
  exit 1
fi
bin=$(packaging/build-static.sh | tail -n1)
out=$(dirname "$bin")
stage=$out/krew/stage
rm -rf "$out/krew"
mkdir -p "$stage"
cp "$bin" "$stage/hopscope"
cp README.md "$stage/README.md"
archive=$out/hopscope-v$version-x86_64-linux.tar.gz
mtime=$(git log -1 --format=%ct 2>/dev/null || echo 0)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
  -C "$stage" -cf - hopscope README.md | gzip -n -9 >"$archive"
rm -rf "$stage"
sum=$(sha256sum "$archive" | cut -d' ' -f1)
sed "s/@SHA256@/$sum/" "$template" >"$out/krew/hopscope.yaml"
log "$archive: sha256 $sum"
echo "$out/krew/hopscope.yaml"
