#!/bin/bash
# tests/lab/checks/capture.sh HOPSCOPE — guest side of tests/lab_capture.rs (hopscope capture).
# Booted once healthy and once with --variant no-out-policy --variant wrong-key; the same script
# runs in both (LAB_VARIANTS tells which). Writes into $LAB_RESULTS:
#   cap-worker.json / .err / .pcapng   hopscope capture --decrypt --json on worker: eth0,
#                                      cilium_host, cilium_net, the netshoot pod's lxc
#   cap-worker-nodecrypt.json / .err   the same interfaces without --decrypt (SA match, labels)
#   cap-worker2.json / .err            hopscope capture --decrypt on worker2 eth0
#   tcpdump-worker-eth0.txt            tcpdump -pne on worker eth0 during the same pings
#   ping.txt, params                   N pings netshoot (10.0.1.52) -> cni-worker2 (10.0.0.249)
set -u
HOPSCOPE=$1
# shellcheck disable=SC1091
. "$LAB_DIR/lib.sh"
R=$LAB_RESULTS
N=5
echo "N=$N" > "$R/params"

# hs_start NAME NETNS ARGS...: hopscope capture in the background; returns once it listens.
hs_start() {
    local name=$1 ns=$2; shift 2
    "$HOPSCOPE" capture --netns "$ns" "$@" > "$R/$name.json" 2> "$R/$name.err" &
    echo $! > "/tmp/hs.$name.pid"
    wait_for "hopscope capture $name to start" 120 started "$name" && return 0
    cat "$R/$name.err" >&2
    return 1
}
hs_stop() {
    local pid
    pid=$(cat "/tmp/hs.$1.pid")
    # No wait: on SIGINT hopscope reads what the kernel still holds before it stops.
    kill -INT "$pid" 2>/dev/null
    wait "$pid"
    echo "$?" > "$R/$1.rc"
}

LXC=lxcda1dd0af135e
hs_start cap-worker worker -i eth0 -i cilium_host -i cilium_net -i "$LXC" --decrypt --json \
    --print -w "$R/cap-worker.pcapng" || exit 1
hs_start cap-worker-nodecrypt worker -i eth0 -i cilium_host -i cilium_net -i "$LXC" --json || exit 1
hs_start cap-worker2 worker2 -i eth0 --decrypt --json || exit 1
capture_start worker eth0 tcpdump-worker-eth0 || exit 1
ip netns exec netshoot ping -c "$N" -i 0.3 -W 1 10.0.0.249 > "$R/ping.txt" 2>&1
echo "rc=$?" >> "$R/ping.txt"
capture_stop tcpdump-worker-eth0 "ESP(" $((2 * N))
hs_stop cap-worker
hs_stop cap-worker-nodecrypt
hs_stop cap-worker2

# Bad input, in the lab too: unknown interface and a bad filter.
"$HOPSCOPE" capture --netns worker -i nosuch0 -c 1 > /dev/null 2> "$R/bad-iface.err"
echo "$?" > "$R/bad-iface.rc"
"$HOPSCOPE" capture --netns worker -i eth0 -f 'esp and and' -c 1 > /dev/null 2> "$R/bad-filter.err"
echo "$?" > "$R/bad-filter.rc"
exit 0
