#!/bin/bash
# tests/lab/checks/record-demo.sh HOPSCOPE — makes the recordings `hopscope demo` plays
# (demo/seed.hsrec, demo/seed-broken.hsrec). Run by hand, then check the files in:
#   cargo build && tests/lab/run.sh --results target/lab-demo tests/lab/checks/record-demo.sh \
#       target/debug/hopscope && cp target/lab-demo/seed*.hsrec demo/
# Healthy: worker and worker2 recorded while the netshoot pod (10.0.1.52, worker) pings
# cni-worker2 (10.0.0.249, worker2): SPI 3 counters move, ESP on eth0 (decrypted when
# recording; no keys in the file), the pod's lxc, cilium_host and cilium_net on the path.
# Broken: the same after worker2's inbound SA is deleted (the no-inbound-sa variant, made
# live): XfrmInNoStates rises on worker2, pings go unanswered.
set -u
. "$LAB_DIR/lib.sh"
HOPSCOPE=$(local_bin "$1")
R=$LAB_RESULTS
ifaces=()
for n in worker worker2; do
    for i in $(ip -n "$n" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(eth0|lxc|cilium_host|cilium_net)'); do
        ifaces+=(-i "$i")
    done
done
record() { # NAME NOTE
    "$HOPSCOPE" --no-kube record -q -o "$R/$1.hsrec" --netns worker --netns worker2 \
        "${ifaces[@]}" --duration 14 --limit 2 --note "$2" 2> "$R/$1.err" &
    local pid=$!
    wait_for "the recorder's captures" 120 has "$R/$1.err" 'capturing on' # frames before are not recorded
    ip netns exec netshoot ping -c 20 -i 0.5 -W 1 10.0.0.249 > "$R/$1.ping" 2>&1
    wait "$pid"
    echo "rc=$?" >> "$R/$1.err"
}
record seed "the lab's seed cluster (Cilium 1.13 IPsec, 3 nodes): netshoot on worker pings cni-worker2 on worker2"
ip -n worker2 xfrm state deleteall src 0.0.0.0
record seed-broken "the lab's seed cluster with worker2's inbound SA deleted (no-inbound-sa): netshoot's pings to cni-worker2 go unanswered"
ls -l "$R"
cat "$R"/*.err
