#!/bin/bash
# benches/tui_flood.sh — does the TUI answer keys while its Packets pane captures a flood, and
# does it show what it could not keep?
#
#   benches/tui_flood.sh [--rate PPS] [--secs S] [--keys N] [--filter TEXT] [--bin PATH]
#
# A veth between two throwaway netns; the TUI (release build, in tmux, 120x30) captures on the
# veth from its Packets pane; iperf3 floods 64-byte UDP datagrams at --rate for --secs. Key
# latency = time from `tmux send-keys` to the screen showing the other pane (1 ↔ 7), measured
# N times before the flood (the baseline, same run) and N times during it; printed as median,
# p95 and max, with the ratio flood/idle. During the flood the TUI's RSS is sampled every 5 s
# (flat = bounded queues and ring), and at the end the drops the header shows are printed next
# to what tcpdump -w /dev/null on the same veth, in the same run, reports.
# --filter TEXT types `/TEXT` in the Packets pane first (rows filtered as packets come).
# Needs root, iproute2, iperf3, tmux, tcpdump. Figures: docs/tui.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

RATE=100000
SECS=60
KEYS=30
FILTER=""
BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE=$2; shift 2;;
        --secs) SECS=$2; shift 2;;
        --keys) KEYS=$2; shift 2;;
        --filter) FILTER=$2; shift 2;;
        --bin) BIN=$2; shift 2;;
        *) echo "tui_flood.sh: unknown argument $1" >&2; exit 2;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "tui_flood.sh: run as root" >&2; exit 1; }
for t in ip iperf3 tmux tcpdump python3; do
    command -v $t >/dev/null || { echo "tui_flood.sh: $t missing" >&2; exit 1; }
done
if [ -z "$BIN" ]; then
    cargo build --release -q --bin hopscope
    BIN=${CARGO_TARGET_DIR:-target}/release/hopscope
fi

A=hsflood-a-$$ B=hsflood-b-$$ SOCK=hsflood-$$
W=$(mktemp -d)
cleanup() {
    tmux -L "$SOCK" kill-server 2>/dev/null || true
    kill $(jobs -p) 2>/dev/null || true
    veth_pair_del "$A" "$B"
    rm -rf "$W"
}
trap cleanup EXIT
veth_pair "$A" "$B"

screen() { tmux -L "$SOCK" capture-pane -p 2>/dev/null || true; }
wait_for() { # PATTERN LIMIT_MS
    local t0; t0=$(date +%s%3N)
    until screen | grep -q -- "$1"; do
        if [ $(( $(date +%s%3N) - t0 )) -gt "$2" ]; then echo "timeout waiting for $1"; screen; exit 1; fi
        sleep 0.002
    done
}
tmux -L "$SOCK" -f /dev/null new-session -d -x 120 -y 30 "$BIN --netns $A"
wait_for "va@" 10000
tmux -L "$SOCK" send-keys ":" && tmux -L "$SOCK" send-keys -l "capture va" && tmux -L "$SOCK" send-keys Enter
wait_for "● capture 1 if" 5000
if [ -n "$FILTER" ]; then
    tmux -L "$SOCK" send-keys "/" && tmux -L "$SOCK" send-keys -l "$FILTER" && tmux -L "$SOCK" send-keys Enter
    wait_for "/$FILTER ✓" 5000
fi
pid=$(pgrep -n -f -- "--netns $A")

# latencies N FILE: toggle 1 <-> 7 N times, one latency in ms per line.
latencies() {
    : > "$2"
    for i in $(seq "$1"); do
        for k in 1 7; do
            if [ $k = 1 ]; then pat="^IDX "; else pat="^TIME "; fi
            t0=$(date +%s%N)
            tmux -L "$SOCK" send-keys $k
            until screen | grep -q -- "$pat"; do sleep 0.001; done
            echo $(( ($(date +%s%N) - t0) / 1000 )) >> "$2"
        done
    done
}
stats() { python3 - "$1" <<'EOF'
import sys, statistics
v = sorted(int(x) / 1000 for x in open(sys.argv[1]))
p95 = v[min(len(v) - 1, int(len(v) * 0.95))]
print(f"{statistics.median(v):.1f} {p95:.1f} {v[-1]:.1f} {len(v)}")
EOF
}

latencies "$KEYS" "$W/idle"
read -r idle_med idle_p95 idle_max idle_n < <(stats "$W/idle")

ip netns exec "$B" iperf3 -s -1 -D >/dev/null 2>&1 || true
sleep 0.3
ip netns exec "$A" timeout $((SECS + 5)) tcpdump -i va -w /dev/null -q 2> "$W/tcpdump.err" &
tcpdump_pid=$!
sleep 1
ip netns exec "$A" iperf3 -c 192.0.2.2 -u -l 64 -b $(( RATE * 512 )) -t "$SECS" --pacing-timer 100 -J \
    > "$W/iperf.json" 2>/dev/null &
iperf_pid=$!
sleep 2
rss() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
rss_samples="$(rss)"
latencies "$KEYS" "$W/flood"
read -r fl_med fl_p95 fl_max fl_n < <(stats "$W/flood")
while kill -0 "$iperf_pid" 2>/dev/null; do
    sleep 5
    rss_samples="$rss_samples $(rss)"
done
sent=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["end"]["sum"]["packets"])' "$W/iperf.json" 2>/dev/null || echo "?")
sleep 1
tmux -L "$SOCK" send-keys 7
sleep 1
head_line=$(screen | head -1)
stream_line=$(screen | grep "^va .*ESP" || true)
kill -INT "$tcpdump_pid" 2>/dev/null || true
wait "$tcpdump_pid" 2>/dev/null || true

echo "hopscope TUI capturing a ${RATE} pkt/s UDP flood on a veth for ${SECS} s (${sent} datagrams sent)${FILTER:+, rows filtered by /$FILTER}"
printf "key latency, idle:   median %6s ms  p95 %6s ms  max %6s ms  (%s keys)\n" "$idle_med" "$idle_p95" "$idle_max" "$idle_n"
printf "key latency, flood:  median %6s ms  p95 %6s ms  max %6s ms  (%s keys)\n" "$fl_med" "$fl_p95" "$fl_max" "$fl_n"
python3 -c "import sys; print(f'ratio flood/idle (median): {float(sys.argv[1]) / max(float(sys.argv[2]), 0.001):.2f}')" "$fl_med" "$idle_med"
echo "RSS every 5 s during the flood (MB): $rss_samples"
echo "header:  $head_line"
echo "stream:  $stream_line"
echo "tcpdump -w /dev/null, same veth, same run: $(grep -E 'captured|dropped' "$W/tcpdump.err" | tr '\n' ' ')"
