#!/bin/bash
# tests/lab/checks/netfilter.sh HOPSCOPE — guest side of tests/lab_netfilter.rs, booted with
# --variant nodeport. The reference's NodePort request (netshoot curl 172.18.0.3:32000), made
# with busybox nc until one lands on cni-worker2 (kube-proxy picks
# each connection's endpoint at random):
#   nodeport.sport, nodeport.txt   the source port that reached cni-worker2, and its answer
#   conntrack.txt                  `conntrack -L` on worker for that connection
#   ipt-worker.txt                 iptables-legacy-save of worker
#   trace-nodeport.json/.txt       hopscope trace of it (worker, worker2)
#   follow-nodeport.json           the same with --follow while more connections are made
# and, with --variant ipvs, netshoot's request to ClusterIP 10.96.0.50:80 through worker's IPVS:
#   ipvs.txt, ipvs-conntrack.txt   cni-worker's answer; `conntrack -L` of that connection
#   ipvsadm.txt                    `ipvsadm -Ln` on worker
#   trace-ipvs.json/.txt           hopscope trace of that connection (established: its entry)
#   trace-ipvs-new.json            the same flow from a source port with no entry (new)
#   trace-ipvs-reply.json          the real server's reply (SYN-ACK) back through worker
#   ipvs-reply-cni-worker.txt, ipvs-reply-netshoot.txt   tcpdump of that reply leaving
#                                  cni-worker and arriving at netshoot
#   ipvs.strace                    the socket/sendto/sendmsg/openat calls of the text trace
#                                  (read-only proof; conntrack is a ctnetlink dump, not /proc)
set -u
# shellcheck disable=SC1091
. "$LAB_DIR/lib.sh"
HOPSCOPE=$(local_bin "$1")
R=$LAB_RESULTS
ip netns exec cni-worker2 sh -c 'while true; do busybox nc -l -p 80 -e echo hello-from-cni-worker2; done' &
server=$!
wait_for "the listener on cni-worker2:80" 120 listens cni-worker2 80
# busybox nc ignores -p when connecting: the source port is read back from worker's conntrack
# entry of the first connection that cni-worker2 answered (its reply source is 10.0.0.249).
sport=
for i in $(seq 40); do
    ip netns exec netshoot busybox nc -w 2 172.18.0.3 32000 > "$R/nodeport.txt" 2>&1 </dev/null
    if grep -q hello-from-cni-worker2 "$R/nodeport.txt"; then
        ip netns exec worker conntrack -L -p tcp --reply-src 10.0.0.249 2>/dev/null | grep 'dport=32000 ' > "$R/conntrack.txt"
        sport=$(head -1 "$R/conntrack.txt" | grep -o 'sport=[0-9]*' | head -1 | cut -d= -f2)
        break
    fi
done
echo "$sport" > "$R/nodeport.sport"
ip netns exec worker iptables-legacy-save > "$R/ipt-worker.txt"
trace trace-nodeport.json 10.0.1.52 172.18.0.3 --proto tcp --sport "${sport:-1}" --dport 32000 --netns worker --netns worker2 --json
"$HOPSCOPE" trace 10.0.1.52 172.18.0.3 --proto tcp --sport "${sport:-1}" --dport 32000 --netns worker --netns worker2 > "$R/trace-nodeport.txt" 2>&1
# --follow: captures on the predicted path while new connections are made (some land on
# worker2, as the traced one did).
trace follow-nodeport.json 10.0.1.52 172.18.0.3 --proto tcp --sport "${sport:-1}" --dport 32000 --netns worker --netns worker2 --json --follow 10 &
pid=$!
# "following" is said once every capture is open: the connections can start at once.
wait_for "the trace to follow" 120 has "$R/follow-nodeport.json.err" 'following for'
for i in $(seq 8); do
    ip netns exec netshoot busybox nc -w 1 172.18.0.3 32000 >/dev/null 2>&1 </dev/null
done
wait "$pid"
kill "$server" 2>/dev/null

ip netns exec cni-worker sh -c 'while true; do busybox nc -l -p 80 -e echo hello-from-cni-worker; done' &
ipvs_server=$!
wait_for "the listener on cni-worker:80" 120 listens cni-worker 80
# The reply as the kernel sends it: leaving the real server (cni-worker) and arriving at
# netshoot, each captured by tcpdump on the pod's eth0 (the director rewrites its source in
# between). What the test means is the connection's SYN-ACK: from port 80, SYN and ACK set.
# capture_start returns once tcpdump listens (slow under TCG); -c 1 ends it at that packet.
synack='tcp src port 80 and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)'
capture_start cni-worker eth0 ipvs-reply-cni-worker -c 1 "$synack"
capture_start netshoot eth0 ipvs-reply-netshoot -c 1 "$synack"
ip netns exec netshoot busybox nc -w 2 10.96.0.50 80 > "$R/ipvs.txt" 2>&1 </dev/null
capture_stop ipvs-reply-cni-worker "Flags [S.]" 1
capture_stop ipvs-reply-netshoot "Flags [S.]" 1
ip netns exec worker conntrack -L -p tcp --orig-dst 10.96.0.50 > "$R/ipvs-conntrack.txt" 2>/dev/null
ipvs_sport=$(head -1 "$R/ipvs-conntrack.txt" | grep -o 'sport=[0-9]*' | head -1 | cut -d= -f2)
ip netns exec worker ipvsadm -Ln > "$R/ipvsadm.txt" 2>&1
trace trace-ipvs.json 10.0.1.52 10.96.0.50 --proto tcp --sport "${ipvs_sport:-1}" --dport 80 --netns worker --json
trace trace-ipvs-new.json 10.0.1.52 10.96.0.50 --proto tcp --sport 1 --dport 80 --netns worker --json
trace trace-ipvs-reply.json 10.0.1.103 10.0.1.52 --proto tcp --sport 80 --dport "${ipvs_sport:-1}" --netns worker --json
strace -f -qq -e trace=socket,sendto,sendmsg,openat -o "$R/ipvs.strace" \
    "$HOPSCOPE" trace 10.0.1.52 10.96.0.50 --proto tcp --sport "${ipvs_sport:-1}" --dport 80 --netns worker > "$R/trace-ipvs.txt" 2>&1
kill "$ipvs_server" 2>/dev/null

exit 0
