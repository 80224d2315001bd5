#!/usr/bin/env bash
# Benchmark: `hopscope snapshot --json` against iproute2 dumping the same state, in the same run.
# Fills a throwaway netns with ROUTES routes (ip -batch) and POLICIES XFRM policies, then times
#   hopscope:  hopscope snapshot --json --netns NS > /dev/null
#   iproute2:  ip route show table all; ip -6 route show table all; ip rule; ip -s xfrm policy
# with hyperfine (several runs each), prints the ratio and hopscope's peak RSS.
# Usage (root): benches/snapshot.sh [ROUTES] [POLICIES]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUTES=${1:-100000}
POLICIES=${2:-10000}
RUNS=${RUNS:-10}
NS=hs-bench-$$
BIN=target/release/hopscope
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
cargo build --release --quiet
ip netns add "$NS"
trap 'ip netns del "$NS"' EXIT
ip -n "$NS" link add d0 type veth peer name d1
ip -n "$NS" link set d0 up
ip -n "$NS" link set d1 up
ip -n "$NS" addr add 10.0.0.1/8 dev d0

echo "filling $NS: $ROUTES routes, $POLICIES xfrm policies ..."
# Routes spread over main and Cilium's tables, /32s under 11.0.0.0/8.
awk -v n="$ROUTES" 'BEGIN { for (i = 0; i < n; i++) {
  t = (i % 4 == 0) ? "200" : (i % 4 == 1) ? "2004" : (i % 4 == 2) ? "2005" : "main";
  printf "route add 11.%d.%d.%d/32 dev d0 table %s\n", int(i/65536)%256, int(i/256)%256, i%256, t } }' \
  | ip -n "$NS" -batch -
awk -v n="$POLICIES" 'BEGIN { for (i = 0; i < n; i++)
  printf "xfrm policy add src 10.%d.%d.0/24 dst 12.%d.%d.0/24 dir out priority %d mark 0x3e00 mask 0xff00 tmpl src 10.0.0.1 dst 10.255.%d.%d proto esp spi 3 reqid 1 mode tunnel\n",
    int(i/256)%256, i%256, int(i/256)%256, i%256, i, int(i/256)%256, i%256 }' \
  | ip -n "$NS" -batch -
echo "routes: $(ip -n "$NS" route show table all | wc -l), policies: $(ip -n "$NS" xfrm policy | grep -c '^src')"

IPROUTE="ip -n $NS route show table all >/dev/null; ip -n $NS -6 route show table all >/dev/null; ip -n $NS rule >/dev/null; ip -n $NS -s xfrm policy >/dev/null"
OURS="$BIN snapshot --json --netns $NS >/dev/null"
hyperfine --warmup 1 --runs "$RUNS" --export-json /tmp/hs-bench-$$.json -n iproute2 "$IPROUTE" -n hopscope "$OURS"
python3 - /tmp/hs-bench-$$.json <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ours, theirs = r["hopscope"]["median"], r["iproute2"]["median"]
print(f"median: hopscope {ours*1000:.1f} ms, iproute2 {theirs*1000:.1f} ms, ratio hopscope/iproute2 = {ours/theirs:.2f} (<= 1.0 is the goal)")
PY
rm -f /tmp/hs-bench-$$.json
# CPU time (task-clock) is steadier than wall time on a busy machine: both, same run.
if command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
  cpu() { perf stat -r "$RUNS" -x, -e task-clock sh -c "$1" 2>&1 >/dev/null | awk -F, '/task-clock/ {print $1}'; }
  ours_ms=$(cpu "$OURS"); theirs_ms=$(cpu "$IPROUTE")
  awk -v o="$ours_ms" -v t="$theirs_ms" 'BEGIN { printf "CPU time (perf task-clock, mean of runs): hopscope %.1f ms, iproute2 %.1f ms, ratio %.2f\n", o, t, o/t }'
fi
rss=$( { /usr/bin/time -f '%M' "$BIN" snapshot --json --netns "$NS" >/dev/null; } 2>&1 | tail -1)
echo "hopscope peak RSS: $((rss / 1024)) MiB ($rss KiB)"
