#!/usr/bin/env bash
# TUI start-up and idle cost with 100k routes and 10k XFRM policies (root, tmux, iproute2):
# time to the first frame and to the first frame with all rows, idle CPU over 30 s at
# the default 1 s interval, and memory (RSS, peak RSS). Numbers go to stdout; record
# them in docs/tui.md.  Usage: benches/tui.sh [ROUTES] [POLICIES] [IDLE_SECONDS]
set -euo pipefail
ROUTES=${1:-100000}
POLICIES=${2:-10000}
IDLE=${3:-30}
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin hopscope
BIN=$PWD/target/release/hopscope
NS=hs-tuibench-$$
SOCK=hs-tuibench-$$
cleanup() {
    tmux -L "$SOCK" kill-server 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add hs-b0 type veth peer name hs-b1
ip -n "$NS" link set hs-b0 up
ip -n "$NS" addr add 172.31.0.1/16 dev hs-b0
echo "setting up $ROUTES routes and $POLICIES XFRM policies in $NS ..."
awk -v n="$ROUTES" 'BEGIN { for (i = 0; i < n; i++)
    printf "route add 10.%d.%d.0/24 via 172.31.0.2 dev hs-b0 table %d\n", int(i / 256) % 256, i % 256, 1000 + int(i / 65536) }' \
    | ip -n "$NS" -batch -
awk -v n="$POLICIES" 'BEGIN { for (i = 0; i < n; i++)
    printf "xfrm policy add src 10.250.0.0/16 dst 11.%d.%d.0/24 dir out tmpl src 172.31.0.1 dst 172.31.0.2 proto esp reqid 1 mode tunnel\n", int(i / 256) % 256, i % 256 }' \
    | ip -n "$NS" -batch -

now_ms() { date +%s%3N; }
screen() { tmux -L "$SOCK" capture-pane -p 2>/dev/null || true; }
t0=$(now_ms)
tmux -L "$SOCK" -f /dev/null new-session -d -x 120 -y 30 "$BIN --netns $NS --interval 1s"
first=""; full=""
while [ -z "$full" ]; do
    s=$(screen)
    if [ -z "$first" ] && grep -q "hopscope" <<<"$s"; then first=$(( $(now_ms) - t0 )); fi
    if grep -q "Routes $((ROUTES + 1))" <<<"$s" || grep -Eq "Routes [0-9]{6}" <<<"$s"; then full=$(( $(now_ms) - t0 )); fi
    if [ $(( $(now_ms) - t0 )) -gt 60000 ]; then echo "no populated frame after 60 s"; screen; exit 1; fi
    sleep 0.005
done
pane=$(tmux -L "$SOCK" display-message -p '#{pane_pid}')
pid=$(pgrep -n -f -- "--netns $NS" || echo "$pane")
echo "first frame:            ${first} ms (tmux start included)"
echo "first populated frame:  ${full} ms ($(screen | grep -o 'Routes [0-9]*' | head -1), policies: $(screen | grep -o 'Policies [0-9]*' | head -1))"
sleep 2   # let start-up settle
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
a=$(ticks); sleep "$IDLE"; b=$(ticks)
awk -v a="$a" -v b="$b" -v hz="$hz" -v s="$IDLE" 'BEGIN { printf "idle CPU over %d s:      %.2f %% of one core\n", s, (b - a) * 100 / hz / s }'
grep -E '^(VmRSS|VmHWM)' "/proc/$pid/status" | awk '{ printf "%-23s %.1f MB\n", $1, $2 / 1024 }'
