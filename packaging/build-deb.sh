#!/usr/bin/env bash
# Build the Debian package: the static executable (packaging/build-static.sh), its man pages
# and bash/zsh/fish completions (generated from the command line by the binary itself), the
# kubectl plugin wrapper (packaging/kubectl-hopscope), the themes and the docs, packed by
# cargo-deb ([package.metadata.deb] in Cargo.toml).
#
#   packaging/build-deb.sh             -> target/debian/hopscope_VERSION-1_amd64.deb
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
log() { echo "build-deb: $*" >&2; }
# shellcheck source=packaging/prereqs.sh
. packaging/prereqs.sh
need_cargo deb:cargo-deb

bin=$(packaging/build-static.sh | tail -n1)
out=$(dirname "$bin")

rm -rf "$out/man" "$out/completions"
mkdir -p "$out/man" "$out/completions"
"$bin" generate man "$out/man"
"$bin" generate completions bash >"$out/completions/hopscope.bash"
"$bin" generate completions zsh >"$out/completions/_hopscope"
"$bin" generate completions fish >"$out/completions/hopscope.fish"

# --no-build: the assets are the files made above (cargo-deb would otherwise build a dynamic
# binary); --no-strip: build-static.sh stripped it already.
mkdir -p target/debian
deb=$("${CARGO:-cargo}" deb --no-build --no-strip --output target/debian | tail -n1)
log "$deb: $(du -h "$deb" | cut -f1)"
echo "$deb"
