#!/usr/bin/env bash
# Every fuzz target for a bounded time (CI): ~2 minutes after the build. Each starts from its
# committed seeds (fuzz/corpus/<target>, read only: what a run finds goes to a scratch
# directory, so the clone stays clean). A crash fails the step and is replayed with its panic
# message shown. The stable toolchain has no sanitizers: libFuzzer runs with coverage only
# (`-s none`), which still finds panics, aborts and overruns caught by Rust's own checks.
# SECS=<seconds per target> overrides the time (docs/security.md has the long runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
SECS=${SECS:-20}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo fuzz build -s none
bin=target/x86_64-unknown-linux-gnu/release
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Two targets at a time (libFuzzer is single-threaded; CI has two cores): JOBS overrides.
JOBS=${JOBS:-2}
run_target() {
  local target=$1 rc=0
  mkdir -p "$scratch/$target" "$scratch/crash-$target"
  # stdout and stderr of the target closed (-close_fd_mask=3): a damaged pcap's warning
  # would otherwise print once per input; libFuzzer's own report still shows.
  "$bin/$target" "$scratch/$target" "corpus/$target" -max_total_time="$SECS" \
    -close_fd_mask=3 -artifact_prefix="$scratch/crash-$target/" -print_final_stats=1 \
    2>"$scratch/$target.log" || rc=$?
  echo "$rc" >"$scratch/$target.rc"
}
targets=$(cargo fuzz list)
for target in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_target "$target" &
done
wait
# Reported in the list's order, whatever order they ended in.
failed=()
for target in $targets; do
  if [ "$(cat "$scratch/$target.rc")" = 0 ]; then
    grep -E '^stat::number_of_executed_units' "$scratch/$target.log" | sed "s/^/$target: /"
  else
    failed+=("$target")
    tail -n 20 "$scratch/$target.log"
    for crash in "$scratch/crash-$target"/*; do
      echo "== $target: $crash (base64 $(base64 -w0 "$crash"))"
      "$bin/$target" "$crash" 2>&1 | grep -v '^INFO' | head -n 30 || true
    done
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}" >&2
  exit 1
fi
