#!/bin/bash
# benches/capture.sh — how fast can `hopscope capture` go without dropping, next to
# `tcpdump -w /dev/null` on the same veth in the same run? And does its memory stay flat?
#
#   benches/capture.sh [--rates "50000 100000 ..."] [--secs S] [--soak S] [--bin PATH]
#
# A veth pair between two throwaway netns; iperf3 floods 64-byte UDP datagrams from one end at a
# fixed packet rate; tcpdump -w /dev/null and hopscope capture -q (decodes and classifies every
# packet, prints only totals) listen on the same veth at the same time. For each rate it prints
# what each dropped (kernel drops + hopscope's own queue drops); at the end the highest rate each
# kept up with, the ratio hopscope/tcpdump, and hopscope's RSS sampled during a --soak long flood
# at the highest zero-drop rate. Needs root, iproute2, iperf3, tcpdump. Figures: docs/capture.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RATES="25000 50000 100000 150000 200000 250000 300000 400000"
SECS=5
SOAK=60
BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rates) RATES=$2; shift 2;;
        --secs) SECS=$2; shift 2;;
        --soak) SOAK=$2; shift 2;;
        --bin) BIN=$2; shift 2;;
        *) echo "capture.sh: unknown argument $1" >&2; exit 2;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "capture.sh: run as root (netns, veth, capture)" >&2; exit 1; }
for t in ip iperf3 tcpdump; do
    command -v $t >/dev/null || { echo "capture.sh: $t missing (apt-get install iproute2 iperf3 tcpdump)" >&2; exit 1; }
done
if [ -z "$BIN" ]; then
    cargo build --release -q
    BIN=${CARGO_TARGET_DIR:-target}/release/hopscope
fi

A=hsbench-a-$$ B=hsbench-b-$$
W=$(mktemp -d)
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip -n "$A" link add va type veth peer name vb netns "$B"
ip -n "$A" addr add 192.0.2.1/24 dev va; ip -n "$B" addr add 192.0.2.2/24 dev vb
ip -n "$A" link set va up; ip -n "$B" link set vb up; ip -n "$A" link set lo up; ip -n "$B" link set lo up
ip netns exec "$B" iperf3 -s -D -1 >/dev/null 2>&1 || true

# flood RATE SECS: 64-byte UDP at RATE packets/s (bits/s = RATE * 64 * 8).
flood() {
    ip netns exec "$B" iperf3 -s -1 -D >/dev/null 2>&1 || true
    sleep 0.3
    ip netns exec "$A" iperf3 -c 192.0.2.2 -u -l 64 -b $(( $1 * 512 )) -t "$2" --pacing-timer 100 -J \
        > "$W/iperf.json" 2>/dev/null || true
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["end"]["sum"]["packets"])' "$W/iperf.json" 2>/dev/null || echo 0
}

# run RATE: both capturers on va during a flood; prints "sent tcpdump_drops hopscope_drops hopscope_captured"
run() {
    local rate=$1
    ip netns exec "$A" tcpdump -i va -w /dev/null -B 4096 udp > /dev/null 2> "$W/td.err" &
    local td=$!
    "$BIN" capture --netns "$A" -i va -f udp -q -B 4096 > /dev/null 2> "$W/hs.err" &
    local hs=$!
    for _ in $(seq 100); do
        grep -q 'listening on' "$W/td.err" 2>/dev/null && grep -q 'capturing on' "$W/hs.err" 2>/dev/null && break
        sleep 0.1
    done
    local sent
    sent=$(flood "$rate" "$SECS")
    sleep 1
    kill -INT $td $hs; wait $td $hs 2>/dev/null || true
    local tdd tdc hsd hsc
    tdd=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$W/td.err")
    tdc=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$W/td.err")
    hsc=$(sed -n 's/^va: \([0-9]*\) packets captured.*/\1/p' "$W/hs.err")
    hsd=$(sed -n 's/^va: .* \([0-9]*\) dropped by kernel, [0-9]* dropped by interface, \([0-9]*\) dropped by hopscope.*/\1 \2/p' "$W/hs.err" | awk '{print $1+$2}')
    echo "$sent ${tdc:-0} ${tdd:-?} ${hsc:-0} ${hsd:-?}"
}

printf '%10s %10s %10s %10s %10s %10s %10s\n' target/s achieved/s sent tcpdump-cap tcpdump-drop hopscope-cap hopscope-drop
best_td=0 best_hs=0
for r in $RATES; do
    read -r sent tdc tdd hsc hsd < <(run "$r")
    printf '%10s %10s %10s %10s %10s %10s %10s\n' "$r" "$(( sent / SECS ))" "$sent" "$tdc" "$tdd" "$hsc" "$hsd"
    # kept up = nothing dropped and (nearly) everything sent was seen
    # kept up = nothing dropped and everything sent was seen; rates are the achieved ones (the
    # sender may fall short of its target on a busy machine)
    [ "$tdd" = 0 ] && [ "$tdc" -ge $(( sent * 99 / 100 )) ] && [ $(( sent / SECS )) -gt "$best_td" ] && best_td=$(( sent / SECS ))
    [ "$hsd" = 0 ] && [ "$hsc" -ge $(( sent * 99 / 100 )) ] && [ $(( sent / SECS )) -gt "$best_hs" ] && best_hs=$(( sent / SECS ))
done
echo "highest zero-drop rate: tcpdump -w /dev/null $best_td pps, hopscope capture $best_hs pps"
if [ "$best_td" -gt 0 ]; then
    python3 -c "print(f'ratio hopscope/tcpdump: {$best_hs/$best_td:.2f}')"
fi

# Memory: RSS of hopscope during a long flood at its zero-drop rate (or the lowest rate).
soak_rate=$best_hs; [ "$soak_rate" -gt 0 ] || soak_rate=${RATES%% *}
"$BIN" capture --netns "$A" -i va -f udp -q > /dev/null 2> "$W/soak.err" &
hs=$!
for _ in $(seq 100); do grep -q 'capturing on' "$W/soak.err" 2>/dev/null && break; sleep 0.1; done
( flood "$soak_rate" "$SOAK" > /dev/null ) &
fl=$!
rss=()
for _ in $(seq $(( SOAK / 5 ))); do
    sleep 5
    rss+=("$(awk '/VmRSS/ {print $2}' /proc/$hs/status)")
done
wait $fl || true
kill -INT $hs; wait $hs || true
echo "soak ${SOAK}s at $soak_rate pps: hopscope RSS (KiB, every 5 s): ${rss[*]}"
grep -E '^va:|^  ' "$W/soak.err" || true
