# Lab variants of the netfilter area (sourced by cluster.sh; see README.md here).
#
#   nodeport   the reference's NodePort service on worker, as kube-proxy's iptables mode writes
#              it (legacy backend, nat and filter tables): default/serversvc:cni NodePort 32000
#              and ClusterIP 10.96.142.173:80, endpoints cni-worker 10.0.1.103:80 and
#              cni-worker2 10.0.0.249:80 (statistic 0.5). PREROUTING → KUBE-SERVICES →
#              `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS` → `--dport 32000 -j KUBE-SVC-…`
#              (KUBE-MARK-MASQ) → KUBE-SEP-… DNAT; KUBE-POSTROUTING MASQUERADE on mark
#              0x4000/0x4000; KUBE-FIREWALL drops mark 0x8000/0x8000. No server listens until a
#              check starts one.
#   ipvs       kube-proxy's IPVS mode on worker: ClusterIP 10.96.0.50 on the dummy kube-ipvs0
#              (down, as kube-proxy leaves it: its addresses are still local), virtual service
#              tcp 10.96.0.50:80 rr with real servers cni-worker 10.0.1.103:80 (weight 1) and
#              cni-worker2 10.0.0.249:80 (weight 0: quiesced, so every new connection lands on
#              cni-worker and the check knows where); net.ipv4.vs.conntrack=1 as kube-proxy
#              sets it. Set up with ipvsadm (Debian package ipvsadm, from the host's /).
variant_nodeport() {
    ip netns exec worker iptables-legacy-restore --noflush <<'EOT'
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-CU7F3MNN62CF4ANP - [0:0]
:KUBE-SEP-CNIWORKERZZZZZZ - [0:0]
:KUBE-SEP-CNIWORKER2ZZZZZ - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/serversvc:cni" -m tcp --dport 32000 -j KUBE-SVC-CU7F3MNN62CF4ANP
-A KUBE-SERVICES -d 10.96.142.173/32 -p tcp -m comment --comment "default/serversvc:cni cluster IP" -m tcp --dport 80 -j KUBE-SVC-CU7F3MNN62CF4ANP
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-CU7F3MNN62CF4ANP ! -s 10.0.0.0/8 -d 10.96.142.173/32 -p tcp -m comment --comment "default/serversvc:cni cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-CU7F3MNN62CF4ANP -p tcp -m comment --comment "default/serversvc:cni" -m tcp --dport 32000 -j KUBE-MARK-MASQ
-A KUBE-SVC-CU7F3MNN62CF4ANP -m comment --comment "default/serversvc:cni -> 10.0.1.103:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-CNIWORKERZZZZZZ
-A KUBE-SVC-CU7F3MNN62CF4ANP -m comment --comment "default/serversvc:cni -> 10.0.0.249:80" -j KUBE-SEP-CNIWORKER2ZZZZZ
-A KUBE-SEP-CNIWORKERZZZZZZ -s 10.0.1.103/32 -m comment --comment "default/serversvc:cni" -j KUBE-MARK-MASQ
-A KUBE-SEP-CNIWORKERZZZZZZ -p tcp -m comment --comment "default/serversvc:cni" -m tcp -j DNAT --to-destination 10.0.1.103:80
-A KUBE-SEP-CNIWORKER2ZZZZZ -s 10.0.0.249/32 -m comment --comment "default/serversvc:cni" -j KUBE-MARK-MASQ
-A KUBE-SEP-CNIWORKER2ZZZZZ -p tcp -m comment --comment "default/serversvc:cni" -m tcp -j DNAT --to-destination 10.0.0.249:80
COMMIT
*filter
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
-A INPUT -j KUBE-FIREWALL
-A OUTPUT -j KUBE-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
EOT
}

variant_ipvs() {
    command -v ipvsadm >/dev/null || { echo "ipvs: ipvsadm is missing (Debian package ipvsadm)" >&2; return 1; }
    lab-modprobe -a dummy ip_vs ip_vs_rr || { echo "ipvs: modprobe dummy ip_vs ip_vs_rr failed" >&2; return 1; }
    ip -n worker link add kube-ipvs0 type dummy
    ip -n worker addr add 10.96.0.50/32 dev kube-ipvs0
    ip netns exec worker sysctl -qw net.ipv4.vs.conntrack=1
    ip netns exec worker ipvsadm -A -t 10.96.0.50:80 -s rr
    ip netns exec worker ipvsadm -a -t 10.96.0.50:80 -r 10.0.1.103:80 -m -w 1
    ip netns exec worker ipvsadm -a -t 10.96.0.50:80 -r 10.0.0.249:80 -m -w 0
}
