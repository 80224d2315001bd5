#!/bin/bash
# tests/lab/checks/no-inbound-sa.sh HOPSCOPE — guest side of tests/lab.rs' group booted with
# --variant no-inbound-sa --variant rotation --variant clusterip.
#   count-worker2.{before,after}.json  hopscope on worker2 around $N pings netshoot -> cni-worker2
#                                      (worker2 has no inbound SA: XfrmInNoStates must rise by N)
#   snap-worker-keys.json              worker with SPI 3 and SPI 4 (rotation), keys shown
#   ipt-worker.txt, conntrack.txt      kube-proxy nat chains; the ClusterIP DNAT of a connection
#   trace-*.json, follow-pod.json      hopscope trace of the pod flow (stops) and the ClusterIP
set -u
# shellcheck disable=SC1091
. "$LAB_DIR/lib.sh"
HOPSCOPE=$(local_bin "$1")
R=$LAB_RESULTS
N=3
echo "N=$N" > "$R/params"
snap snap-worker-keys.json --json --netns worker --show-keys
snap snap-worker2.json --json --netns worker2
snap count-worker2.before.json --json --netns worker2
ip netns exec netshoot ping -c "$N" -i 0.2 -W 1 10.0.0.249 > "$R/ping.txt" 2>&1
echo "rc=$?" >> "$R/ping.txt"
snap count-worker2.after.json --json --netns worker2

# clusterip: a TCP connection to the ClusterIP is DNAT'ed to cni-worker2:80 (served by busybox nc)
ip netns exec cni-worker2 busybox nc -l -p 80 -e echo hello-from-cni-worker2 &
# Under emulation the listener can take a while: connect only once it listens.
wait_for "the listener on cni-worker2:80" 120 listens cni-worker2 80
ip netns exec netshoot busybox nc -w 3 10.96.169.246 80 > "$R/clusterip.txt" 2>&1 </dev/null
echo "rc=$?" >> "$R/clusterip.txt"
ip netns exec worker iptables-legacy-save -t nat > "$R/ipt-worker.txt"
ip netns exec worker conntrack -L -p tcp > "$R/conntrack.txt" 2>&1

# trace: stops at worker2 (no inbound SA); followed, XfrmInNoStates rises; the ClusterIP flow
# shows its DNAT hop and conntrack entry.
trace trace-pod.json 10.0.1.52 10.0.0.249 --netns worker --netns worker2 --netns control-plane --json
follow_pings follow-pod.json "$N"
trace trace-clusterip.json 10.0.1.52 10.96.169.246 --proto tcp --dport 80 --netns worker --netns worker2 --netns control-plane --json
exit 0
