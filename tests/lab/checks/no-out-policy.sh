#!/bin/bash
# tests/lab/checks/no-out-policy.sh HOPSCOPE — guest side of tests/lab.rs' group booted with
# --variant no-out-policy --variant wrong-key.
#   snap-worker.json, snap-worker2-keys.json   worker without out policies; worker2's wrong key
#   count-worker.{before,after}.json           around $N pings netshoot -> cni-worker2: requests
#                                              leave in plaintext, replies (ESP, wrong key) fail
#                                              integrity on worker
#   cap-worker-eth0.txt                        tcpdump on worker eth0 during the pings
#   trace-pod.json                             hopscope trace: the plaintext hop on eth0
set -u
# shellcheck disable=SC1091
. "$LAB_DIR/lib.sh"
HOPSCOPE=$(local_bin "$1")
R=$LAB_RESULTS
N=3
echo "N=$N" > "$R/params"
snap snap-worker.json --json --netns worker
snap snap-worker2-keys.json --json --netns worker2 --show-keys
snap count-worker.before.json --json --netns worker
capture_start worker eth0 cap-worker-eth0
ip netns exec netshoot ping -c "$N" -i 0.2 -W 1 10.0.0.249 > "$R/ping.txt" 2>&1
echo "rc=$?" >> "$R/ping.txt"
capture_stop cap-worker-eth0 "10.0.1.52 > 10.0.0.249: ICMP echo request" "$N"
snap count-worker.after.json --json --netns worker
trace trace-pod.json 10.0.1.52 10.0.0.249 --netns worker --netns worker2 --netns control-plane --json

# The TUI's Packets and Trace panes in the same boot (tests/lab/tui_tests.rs reads $R/tui-packets).
mkdir -p "$R/tui-packets"
LAB_RESULTS="$R/tui-packets" bash "$LAB_DIR/checks/tui-packets.sh" "$HOPSCOPE" > "$R/tui-packets/script.out" 2>&1
echo "$?" > "$R/tui-packets/script.rc"

# hopscope capture in the same boot (tests/lab/capture_tests.rs reads $R/capture).
mkdir -p "$R/capture"
LAB_RESULTS="$R/capture" bash "$LAB_DIR/checks/capture.sh" "$HOPSCOPE" > "$R/capture/script.out" 2>&1
echo "$?" > "$R/capture/script.rc"
exit 0
