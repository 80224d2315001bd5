#!/bin/bash
# tests/lab/checks/healthy.sh HOPSCOPE — guest side of tests/lab.rs' healthy group (no variant).
# Collects into $LAB_RESULTS; tests/lab.rs asserts on the files:
#   state-{worker,netshoot}.{before,after}  config dumps around every hopscope run (read-only)
#   snap-*.json/txt                         hopscope snapshot outputs (+ .rc, .err)
#   ipj-*.json                              ip -j views of worker for cross-checks
#   xs-*.{before,after}, count-*.json       `ip -s xfrm state` and hopscope around $N pings
#   cap-*.txt, ping.txt, params             tcpdump on worker eth0/cilium_host during the pings
#   trace-pod.{json,txt}, follow-pod.json   hopscope trace netshoot -> cni-worker2 (and --follow)
set -u
# shellcheck disable=SC1091
. "$LAB_DIR/lib.sh"
phase start
HOPSCOPE=$(local_bin "$1")
phase local_bin
R=$LAB_RESULTS
N=5 SIZE=200
echo "N=$N SIZE=$SIZE" > "$R/params"

# ---- read-only: the config before and after every kind of snapshot ------------------------
# (Independent steps run two at a time: the guest has 2 vCPUs.)
ip netns exec worker sleep 600 &
pid=$!
dump_state worker "$R/state-worker.before" & a=$!
dump_state netshoot "$R/state-netshoot.before" & b=$!
wait $a $b
phase dump_before
{
    snap snap-worker.json --json --netns worker
    snap snap-worker-keys.json --json --netns worker --show-keys
    snap snap-worker.txt --netns worker
    snap snap-worker-path.json --json --netns /run/netns/worker
    snap snap-worker-pid.json --json --pid "$pid"
} & a=$!
{
    snap snap-worker2.json --json --netns worker2
    snap snap-worker2-keys.json --json --netns worker2 --show-keys
    snap snap-netshoot.json --json --netns netshoot
    ip netns exec worker "$HOPSCOPE" snapshot --json > "$R/snap-worker-inside.json" 2> "$R/snap-worker-inside.json.err"
} & b=$!
wait $a $b
phase snapshots
dump_state worker "$R/state-worker.after" & a=$!
dump_state netshoot "$R/state-netshoot.after" & b=$!
wait $a $b
kill "$pid"
phase dump_after

# ---- ip -j views for cross-checks -----------------------------------------------------------
{ ip -n worker -j -d link > "$R/ipj-link.json"; ip -n worker -j addr > "$R/ipj-addr.json"; } & a=$!
{ ip -n worker -j route show table all > "$R/ipj-route.json"; ip -n worker -j rule > "$R/ipj-rule.json"; } & b=$!
wait $a $b
phase ip_json

# ---- live counters: N pings of SIZE bytes netshoot (worker) -> cni-worker2 (worker2) ----------
ip -n worker -s xfrm state > "$R/xs-worker.before"
ip -n worker2 -s xfrm state > "$R/xs-worker2.before"
snap count-worker.before.json --json --netns worker
snap count-worker2.before.json --json --netns worker2
phase counters_before
capture_start worker eth0 cap-worker-eth0
capture_start worker cilium_host cap-worker-cilium_host
phase captures_started
ip netns exec netshoot ping -c "$N" -s "$SIZE" -i 0.2 -W 3 10.0.0.249 > "$R/ping.txt" 2>&1
echo "rc=$?" >> "$R/ping.txt"
capture_stop cap-worker-eth0
capture_stop cap-worker-cilium_host
ip -n worker -s xfrm state > "$R/xs-worker.after"
ip -n worker2 -s xfrm state > "$R/xs-worker2.after"
snap count-worker.after.json --json --netns worker
snap count-worker2.after.json --json --netns worker2
phase counters_after

# ---- trace: the seed's flow predicted over the three nodes, then followed while pinging ------
trace trace-pod.json 10.0.1.52 10.0.0.249 --netns worker --netns worker2 --netns control-plane --json
trace trace-pod.txt 10.0.1.52 10.0.0.249 --netns worker --netns worker2 --netns control-plane
follow_pings follow-pod.json 5
phase trace

# ---- the TUI's XFRM SAs pane (issue 5), in tmux: the seed's SAs, packet counters rising ------
export TERM=xterm-256color
tmux new-session -d -s tui -x 160 -y 40 "$HOPSCOPE --netns worker --interval 1"
for i in $(seq 150); do
    tmux capture-pane -p -t tui 2>/dev/null | grep -q 'XFRM SAs' && break
    sleep 0.2
done
tmux send-keys -t tui 4
sleep 2.5
tmux capture-pane -p -t tui > "$R/tui-sas.before"
ip netns exec netshoot ping -c 5 -i 0.2 -W 1 10.0.0.249 > "$R/tui-ping.txt" 2>&1
sleep 3.5
tmux capture-pane -p -t tui > "$R/tui-sas.after"
tmux send-keys -t tui q
sleep 1
tmux kill-server 2>/dev/null
phase tui

# The TUI's Packets and Trace panes in the same boot (tests/lab/tui_tests.rs reads $R/tui-packets).
mkdir -p "$R/tui-packets"
LAB_RESULTS="$R/tui-packets" bash "$LAB_DIR/checks/tui-packets.sh" "$HOPSCOPE" > "$R/tui-packets/script.out" 2>&1
echo "$?" > "$R/tui-packets/script.rc"

# hopscope capture in the same boot (tests/lab/capture_tests.rs reads $R/capture).
mkdir -p "$R/capture"
LAB_RESULTS="$R/capture" bash "$LAB_DIR/checks/capture.sh" "$HOPSCOPE" > "$R/capture/script.out" 2>&1
echo "$?" > "$R/capture/script.rc"
exit 0
