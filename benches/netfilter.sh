#!/usr/bin/env bash
# Benchmark: `hopscope trace` through kube-proxy's rules for SERVICES services against
# `iptables-save` itself, in the same run. A throwaway netns gets kube-proxy's iptables mode
# output (legacy backend) for SERVICES ClusterIP services, each also a NodePort, two endpoints
# each (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-SVC-*, KUBE-SEP-*: ~10 rules a service), then times
#   iptables-save:  iptables-legacy-save > /dev/null            (only reads the rules)
#   hopscope:       hopscope trace ... --netns NS > /dev/null   (reads every backend, nft,
#                   conntrack and routes, then evaluates the flow to the LAST service, the
#                   longest walk of KUBE-SERVICES)
# RUNS times each, interleaved, and prints both medians and the ratio. The issue's bar: the
# trace answers in under 2 s including reading the rules.
# Usage (root): benches/netfilter.sh [SERVICES]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SERVICES=${1:-10000}
RUNS=${RUNS:-5}
NS=hs-bench-nf-$$
BIN=${BIN:-target/release/hopscope}
# BIN=path: an already built release binary (skips the build).
[ "$BIN" != target/release/hopscope ] || cargo build --release --quiet --bin hopscope
ip netns add "$NS"
ip netns add "$NS-peer"
trap 'ip netns del "$NS"; ip netns del "$NS-peer"' EXIT
# d1 in a netns of its own: the trace leaves by d0 onto "the wire" (not back into itself).
ip -n "$NS" link add d0 type veth peer name d1 netns "$NS-peer"
ip -n "$NS" link set d0 up
ip -n "$NS-peer" link set d1 up
ip -n "$NS" link set lo up
ip -n "$NS" addr add 172.18.0.3/16 dev d0
ip -n "$NS" route add 10.0.0.0/8 via 172.18.0.4 dev d0

echo "filling $NS: $SERVICES kube-proxy services ..."
# Service i: ClusterIP 10.96.x.y:80, NodePort 30000+i%2768, endpoints 10.1.x.y:8080 and 10.2.x.y:8080.
awk -v n="$SERVICES" 'BEGIN {
  print "*nat"
  print ":KUBE-SERVICES - [0:0]"; print ":KUBE-NODEPORTS - [0:0]"; print ":KUBE-POSTROUTING - [0:0]"; print ":KUBE-MARK-MASQ - [0:0]"
  for (i = 0; i < n; i++) printf ":KUBE-SVC-%08d - [0:0]\n:KUBE-SEP-%08dA - [0:0]\n:KUBE-SEP-%08dB - [0:0]\n", i, i, i
  print "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
  print "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
  print "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"
  print "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"
  print "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"
  print "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0"
  print "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully"
  for (i = 0; i < n; i++) {
    ip = sprintf("%d.%d", int(i / 250) % 250, i % 250 + 1); np = 30000 + i % 2768; s = sprintf("%08d", i)
    printf "-A KUBE-SERVICES -d 10.96.%s/32 -p tcp -m comment --comment \"ns/svc%d:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-%s\n", ip, i, s
    printf "-A KUBE-NODEPORTS -p tcp -m comment --comment \"ns/svc%d:http\" -m tcp --dport %d -j KUBE-SVC-%s\n", i, np, s
    printf "-A KUBE-SVC-%s ! -s 10.0.0.0/8 -d 10.96.%s/32 -p tcp -m comment --comment \"ns/svc%d:http cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ\n", s, ip, i
    printf "-A KUBE-SVC-%s -p tcp -m comment --comment \"ns/svc%d:http\" -m tcp --dport %d -j KUBE-MARK-MASQ\n", s, i, np
    printf "-A KUBE-SVC-%s -m comment --comment \"ns/svc%d:http -> 10.1.%s:8080\" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-%sA\n", s, i, ip, s
    printf "-A KUBE-SVC-%s -m comment --comment \"ns/svc%d:http -> 10.2.%s:8080\" -j KUBE-SEP-%sB\n", s, i, ip, s
    printf "-A KUBE-SEP-%sA -s 10.1.%s/32 -m comment --comment \"ns/svc%d:http\" -j KUBE-MARK-MASQ\n", s, ip, i
    printf "-A KUBE-SEP-%sA -p tcp -m comment --comment \"ns/svc%d:http\" -m tcp -j DNAT --to-destination 10.1.%s:8080\n", s, i, ip
    printf "-A KUBE-SEP-%sB -s 10.2.%s/32 -m comment --comment \"ns/svc%d:http\" -j KUBE-MARK-MASQ\n", s, ip, i
    printf "-A KUBE-SEP-%sB -p tcp -m comment --comment \"ns/svc%d:http\" -m tcp -j DNAT --to-destination 10.2.%s:8080\n", s, i, ip
  }
  print "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
  print "COMMIT"
}' | ip netns exec "$NS" iptables-legacy-restore
echo "rules: $(ip netns exec "$NS" iptables-legacy-save | grep -c '^-A')"
last=$((SERVICES - 1))
DST="10.96.$(( last / 250 % 250 )).$(( last % 250 + 1 ))"

SAVE=(ip netns exec "$NS" iptables-legacy-save)
OURS=("$BIN" trace 172.18.0.9 "$DST" --proto tcp --dport 80 --iif d0 --no-kube --netns "$NS")
# The trace ends on the wire (a non-zero exit: it left the given nodes); its DNAT is checked.
shown=$("${OURS[@]}" || true)
grep -q "DNAT $DST:80 → 10.1." <<< "$shown" || { echo "the trace did not take the last service's DNAT:" >&2; echo "$shown" >&2; exit 1; }
# Interleaved runs: a busy machine slows both alike.
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null || true; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
ours=(); theirs=()
for _ in $(seq "$RUNS"); do
  theirs+=("$(ms "${SAVE[@]}")")
  ours+=("$(ms "${OURS[@]}")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
o=$(median "${ours[@]}"); t=$(median "${theirs[@]}")
echo "runs (ms): hopscope ${ours[*]}; iptables-save ${theirs[*]}"
awk -v o="$o" -v t="$t" 'BEGIN { printf "median: hopscope trace %d ms, iptables-legacy-save %d ms, ratio hopscope/iptables-save = %.2f (bar: trace under 2000 ms)\n", o, t, o / t }'
# Peak memory. hopscope's own: its VmHWM (/proc/PID/status), sampled every few ms until it
# exits (a zombie has no VmHWM line), so the save tools it runs as children are not counted;
# the high-water mark only grows, so the last sample misses at most the final few ms. The
# command tree's largest process (GNU time's maximum resident set size: a save tool it ran,
# if bigger) is printed too. iptables-legacy-save's by GNU time (it runs no child).
own_hwm() {
  local pid kb last=0
  "$@" >/dev/null 2>&1 & pid=$!
  while kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) && [ -n "$kb" ]; do
    last=$kb; sleep 0.005
  done
  wait "$pid" || true
  echo "$last"
}
peak() { local f; f=$(mktemp); /usr/bin/time -f '%M' -o "$f" "$@" >/dev/null 2>&1 || true; tail -1 "$f"; rm -f "$f"; }
own=$(own_hwm "${OURS[@]}"); tree=$(peak "${OURS[@]}"); their_rss=$(peak "${SAVE[@]}")
[ "$own" -gt 0 ] || { echo "could not sample hopscope's VmHWM" >&2; exit 1; }
awk -v o="$own" -v g="$tree" -v t="$their_rss" 'BEGIN { printf "peak RSS: hopscope trace itself %.1f MiB, iptables-legacy-save %.1f MiB, ratio hopscope/iptables-save = %.2f (largest process of the trace'"'"'s tree, a save tool it ran included: %.1f MiB)\n", o / 1024, t / 1024, o / t, g / 1024 }'
