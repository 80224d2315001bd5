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
capture_stop cap-worker-eth0 "ESP(spi=" $((2 * N))   # each request out, each reply in
capture_stop cap-worker-cilium_host "10.0.1.138 > 10.0.0.40: ESP" "$N"
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
# Each screen is saved once the pane shows the kernel's counters (polled, not slept for).
export TERM=xterm-256color
# tui_pkts SRC DST: the PKTS cell of that SA's row on the screen (cells are 2+ spaces apart).
tui_pkts() {
    tmux capture-pane -p -t tui 2>/dev/null | awk -F'  +' -v s="$1" -v d="$2" '
        /^SRC / && /PKTS/ { for (i = 1; i <= NF; i++) if ($i == "PKTS") c = i; next }
        c && $1 == s && $2 == d { print $c; exit }'
}
# kernel_pkts SRC DST: that SA's packet count on worker, by `ip -s xfrm state`.
kernel_pkts() {
    ip -n worker -s xfrm state | awk -v s="$1" -v d="$2" '
        /^src / { m = ($2 == s && $4 == d) }
        m && /lifetime current:/ { getline; split($0, a, ","); print a[2] + 0; exit }'
}
tui_shows_kernel_counts() {
    local p k
    for p in "10.0.1.138 10.0.0.40" "0.0.0.0 10.0.1.138"; do
        set -- $p
        k=$(kernel_pkts "$1" "$2")
        [ -n "$k" ] && [ "$(tui_pkts "$1" "$2")" = "$k" ] || return 1
    done
}
wait_tui_counts() {
    wait_for "the SAs pane to show the kernel's counters" 120 tui_shows_kernel_counts && return 0
    tmux capture-pane -p -t tui >&2
    ip -n worker -s xfrm state >&2
}
tmux new-session -d -s tui -x 160 -y 40 "$HOPSCOPE --netns worker --interval 1"
tui_shows() { tmux capture-pane -p -t tui 2>/dev/null | grep -qF -- "$1"; }
wait_for "the TUI's first frame" 120 tui_shows 'XFRM SAs'
tmux send-keys -t tui 4
wait_tui_counts
tmux capture-pane -p -t tui > "$R/tui-sas.before"
ip netns exec netshoot ping -c 5 -i 0.2 -W 1 10.0.0.249 > "$R/tui-ping.txt" 2>&1
wait_tui_counts
tmux capture-pane -p -t tui > "$R/tui-sas.after"
tmux send-keys -t tui q
tui_gone() { ! tmux has-session -t tui 2>/dev/null; }
wait_for "the TUI to quit" 60 tui_gone
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
