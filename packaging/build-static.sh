#!/usr/bin/env bash
# Build one static hopscope executable: glibc linked statically (crt-static) and libpcap built
# from Debian's source package without the optional capture back-ends (D-Bus, RDMA, Bluetooth,
# USB, libnl), whose libraries Debian's own libpcap.a would drag in.
#
#   packaging/build-static.sh          -> target/static/hopscope
#
# Needs: apt with Debian's archive configured (the source comes from the same archive as the
# installed packages), a C toolchain, make, flex and bison (.ci/run installs them). libpcap is
# built once into target/static-build/libpcap and reused while its version stays the same.
# Read-only for the machine: nothing outside the project's target/ directory is written.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
triple=x86_64-unknown-linux-gnu
build=$root/target/static-build
pcapdir=$build/libpcap
prefix=$pcapdir/prefix
out=$root/target/static
log() { echo "build-static: $*" >&2; }
# shellcheck source=packaging/prereqs.sh
. "$root/packaging/prereqs.sh"
need gcc:cc make:make flex:flex bison:bison pkg-config:pkg-config dpkg-dev:dpkg-source \
  binutils:ar libpcap-dev:pcap-config
need_cargo

# One run at a time (tests and the other packaging scripts may start it concurrently).
mkdir -p "$build"
exec 9>"$build/.build-static.lock"
flock 9

# --- libpcap: the version Debian ships (the candidate of its -dev package) ------------------
debver=$(apt-cache policy libpcap0.8-dev | awk '/Candidate:/ {print $2}')
if [ -z "$debver" ] || [ "$debver" = "(none)" ]; then
  log "apt knows no libpcap0.8-dev: run apt-get update first"
  exit 1
fi
upver=${debver#*:}
upver=${upver%-*}
stamp=$prefix/.built-$debver

if [ -f "$stamp" ] && [ -f "$prefix/lib/libpcap.a" ]; then
  log "libpcap $upver: reusing $prefix"
else
  rm -rf "$pcapdir"
  mkdir -p "$pcapdir/apt/lists/partial" "$pcapdir/apt/archives/partial" "$pcapdir/src"
  # deb-src entries for the archive that serves the -dev package, derived from apt's own
  # configuration and kept in a private apt state directory (the machine's is not touched).
  origin=$(apt-cache policy libpcap0.8-dev |
    awk -v v="$debver" '$1 == "***" || $1 == v {f = 1; next} f && $2 ~ /:\/\// {print $2; exit}')
  [ -n "$origin" ] || { log "no archive serves libpcap0.8-dev $debver"; exit 1; }
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -e "$f" ] || continue
      # deb822 stanzas that name the origin's URI, turned into deb-src stanzas.
      awk -v uri="$origin" 'BEGIN {RS = ""; ORS = "\n\n"}
        $0 ~ ("URIs:[^\n]*" uri "/?([ \n]|$)") && $0 !~ /Enabled: *no/ {
          sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f"
    done
  } >"$pcapdir/apt/src.sources"
  {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -e "$f" ] || continue
      awk -v uri="$origin" '$1 == "deb" && index($0, " " uri) {sub(/^deb/, "deb-src"); print}' "$f"
    done
  } >"$pcapdir/apt/src.list"
  if ! [ -s "$pcapdir/apt/src.sources" ] && ! [ -s "$pcapdir/apt/src.list" ]; then
    log "could not derive a deb-src entry for $origin from apt's sources"
    exit 1
  fi
  mkdir -p "$pcapdir/apt/parts"
  cp "$pcapdir/apt/src.sources" "$pcapdir/apt/parts/src.sources"
  aptopts=(
    -o "Dir::Etc::SourceList=$pcapdir/apt/src.list"
    -o "Dir::Etc::SourceParts=$pcapdir/apt/parts"
    -o "Dir::State::Lists=$pcapdir/apt/lists"
    -o "Dir::Cache::Archives=$pcapdir/apt/archives"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
    -o "APT::Sandbox::User=root"
  )
  log "libpcap $debver: fetching the source package"
  apt-get -q "${aptopts[@]}" update >&2
  (cd "$pcapdir/src" && apt-get -q "${aptopts[@]}" source --download-only "libpcap=$debver" >&2)
  orig=$(ls "$pcapdir/src"/libpcap_"$upver".orig.tar.* | head -n1)
  tar -xf "$orig" -C "$pcapdir/src"
  srcdir=$(find "$pcapdir/src" -mindepth 1 -maxdepth 1 -type d -name 'libpcap*' | head -n1)
  log "libpcap $upver: configuring and building (static, Linux capture only)"
  (
    cd "$srcdir"
    ./configure -q --prefix="$prefix" --with-pcap=linux \
      --disable-shared \
      --disable-dbus --disable-rdma --disable-bluetooth --disable-usb --disable-netmap \
      --disable-remote --without-libnl --without-dag --without-septel --without-snf \
      --without-turbocap --without-dpdk >&2
    make -s -j"$(nproc)" libpcap.a >&2
    make -s install-archive install-hdrs >&2 2>/dev/null || make -s install >&2
  )
  touch "$stamp"
fi
if [ -e "$prefix/lib/libpcap.so" ]; then
  log "$prefix/lib has a shared libpcap: it would be linked instead of the static one"
  exit 1
fi

# --- hopscope: glibc static, explicit --target so build scripts and proc macros stay dynamic --
log "cargo build --release (static, libpcap $upver)"
# Under `cargo test`, the test's environment would make this a different build from the same
# build run by hand (and rebuild ring and all above it each time one follows the other):
# cargo's encoded flags override RUSTFLAGS, and ring's build script tracks CARGO_MANIFEST_DIR.
unset CARGO_ENCODED_RUSTFLAGS CARGO_MANIFEST_DIR CARGO_MANIFEST_PATH
LIBPCAP_LIBDIR=$prefix/lib LIBPCAP_VER=$upver \
  RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR=$build \
  "${CARGO:-cargo}" build --release --locked --target "$triple" --bin hopscope >&2
mkdir -p "$out"
# Symbols stripped (a quarter of the size; panics still name their place in the source).
strip --strip-all -o "$out/hopscope.tmp.$$" "$build/$triple/release/hopscope"
mv "$out/hopscope.tmp.$$" "$out/hopscope"
command -v file >/dev/null && log "$(file -b "$out/hopscope")"
echo "$out/hopscope"
