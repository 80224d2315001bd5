#!/bin/bash
# tests/lab/checks/storm.sh HOPSCOPE TESTBIN — guest side of tests/lab_storm.rs (bare boot, no
# seed cluster): runs TESTBIN's ignored guest half `guest_storm` (an SA and policy storm
# against a monitor, then a fresh dump), which writes $LAB_RESULTS/storm.json.
#   storm.out   the test binary's output
set -u
# shellcheck disable=SC1091
. "$LAB_DIR/lib.sh"
BIN=$(local_bin "$2")
phase storm-start
"$BIN" --ignored --exact guest_storm --nocapture > "$LAB_RESULTS/storm.out" 2>&1
rc=$?
phase storm-end
echo "$rc" > "$LAB_RESULTS/storm.rc"
exit 0
