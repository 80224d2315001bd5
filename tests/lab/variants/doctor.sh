# tests/lab/variants/doctor.sh — the doctor's failure classes (docs/doctor.md), each a pair
# `variant_doctor_<class>` (break the kernel state for real) / `undo_doctor_<class>` (restore
# the seed's state), so checks/doctor.sh can apply one, send traffic, judge, undo, go on — all
# in one boot. Traffic runs netshoot (worker, 10.0.1.52) -> cni-worker2 (worker2, 10.0.0.249).
# Sourced by cluster.sh (usable as --variant doctor-<class>) and by checks/doctor.sh. Needs
# KEY3/KEY4/KEY_WRONG from keys.env.

DOC_SA_OPTS="replay-window 0 aead rfc4106(gcm(aes))"
doc_in_sa() { # doc_in_sa NODE ROUTER SPI KEY [extra ip xfrm args]
    local n=$1 r=$2 spi=$3 key=$4; shift 4
    ip -n "$n" xfrm state add src 0.0.0.0 dst "$r" proto esp spi "$spi" reqid 1 mode tunnel \
        replay-window 0 mark 0xd00 mask 0xf00 output-mark 0xd00 mask 0xf00 \
        aead 'rfc4106(gcm(aes))' "$key" 128 sel src 0.0.0.0/0 dst 0.0.0.0/0 "$@"
}
doc_out_sa() { # doc_out_sa NODE SRC DST SPI KEY MARK MASK [extra]
    local n=$1 s=$2 d=$3 spi=$4 key=$5 mark=$6 mask=$7; shift 7
    ip -n "$n" xfrm state add src "$s" dst "$d" proto esp spi "$spi" reqid 1 mode tunnel \
        replay-window 0 mark "$mark" mask "$mask" output-mark 0xe00 mask 0xf00 \
        aead 'rfc4106(gcm(aes))' "$key" 128 sel src 0.0.0.0/0 dst 0.0.0.0/0 "$@"
}
doc_fwd_policy() { # doc_fwd_policy REQID
    ip -n worker2 xfrm policy add src 0.0.0.0/0 dst 10.0.0.0/24 dir fwd priority 2975 mark 0 mask 0xf00 \
        tmpl src 0.0.0.0 dst 10.0.0.40 proto esp reqid "$1" mode tunnel level use
}
doc_out_policy_w_w2() { # worker's out policy to worker2's pods, SPI 3
    ip -n worker xfrm policy add src 10.0.1.0/24 dst 10.0.0.0/24 dir out priority 0 mark 0x3e00 mask 0xff00 \
        tmpl src 10.0.1.138 dst 10.0.0.40 proto esp spi 3 reqid 1 mode tunnel
}

# 1. worker2 has no inbound SA for SPI 3: XfrmInNoStates on worker2.
variant_doctor_no_in_sa() { ip -n worker2 xfrm state delete src 0.0.0.0 dst 10.0.0.40 proto esp spi 3 mark 0xd00 mask 0xf00; }
undo_doctor_no_in_sa() { doc_in_sa worker2 10.0.0.40 3 "$KEY3"; }

# 2. ESP reaches worker2 without the decrypt mark (the stand-in for bpf_host is gone from eth0):
#    the SA exists, the lookup misses on the mark: XfrmInNoStates on worker2.
DOC_DECRYPT_RULE='-i eth0 -p esp -m comment --comment "hopscope-lab: ESP to this node: decrypt mark" -j MARK --set-xmark 0xd00/0xf00'
variant_doctor_decrypt_mark() { eval ip netns exec worker2 iptables-legacy -t mangle -D CILIUM_PRE_mangle "$DOC_DECRYPT_RULE"; }
undo_doctor_decrypt_mark() { eval ip netns exec worker2 iptables-legacy -t mangle -I CILIUM_PRE_mangle 1 "$DOC_DECRYPT_RULE"; }

# 3. worker2's inbound SA for SPI 3 has another key: XfrmInStateProtoError on worker2.
variant_doctor_wrong_key() {
    ip -n worker2 xfrm state delete src 0.0.0.0 dst 10.0.0.40 proto esp spi 3 mark 0xd00 mask 0xf00
    doc_in_sa worker2 10.0.0.40 3 "$KEY_WRONG"
}
undo_doctor_wrong_key() { variant_doctor_no_in_sa; undo_doctor_no_in_sa; }

# 4. worker's out policy to worker2 stays, its out SA is gone: XfrmOutNoStates on worker.
variant_doctor_no_out_sa() { ip -n worker xfrm state delete src 10.0.1.138 dst 10.0.0.40 proto esp spi 3 mark 0x3e00 mask 0xff00; }
undo_doctor_no_out_sa() { doc_out_sa worker 10.0.1.138 10.0.0.40 3 "$KEY3" 0x3e00 0xff00; }

# 5. Cilium 1.14's fail-closed catch-all on worker, and no per-node out policy to worker2:
#    XfrmOutPolBlock on worker.
variant_doctor_catch_all() {
    ip -n worker xfrm policy delete src 10.0.1.0/24 dst 10.0.0.0/24 dir out mark 0x3e00 mask 0xff00
    ip -n worker xfrm policy add src 0.0.0.0/0 dst 0.0.0.0/0 dir out priority 1 mark 0xe00 mask 0xf00 action block
}
undo_doctor_catch_all() {
    ip -n worker xfrm policy delete src 0.0.0.0/0 dst 0.0.0.0/0 dir out mark 0xe00 mask 0xf00
    doc_out_policy_w_w2
}

# 6. worker2 has no fwd policy: decrypted packets to its pod are dropped (XfrmInNoPols).
# (`deleteall dir fwd`: the one fwd policy; iproute2 cannot name a mark of value 0 to delete.)
variant_doctor_no_fwd_policy() { ip -n worker2 xfrm policy deleteall dir fwd; }
undo_doctor_no_fwd_policy() { doc_fwd_policy 1; }

# 7. worker2's fwd policy template says reqid 2, its SA reqid 1 (XfrmInTmplMismatch, even for
#    an optional `level use` template: a tunnel-mode SA must be matched by one).
variant_doctor_reqid() { variant_doctor_no_fwd_policy; doc_fwd_policy 2; }
undo_doctor_reqid() { variant_doctor_no_fwd_policy; undo_doctor_no_fwd_policy; }

# 8. worker's out SA to worker2 is 15 packets from the end of its sequence numbers (no ESN):
#    XfrmOutStateSeqError on worker once they are used.
variant_doctor_oseq() {
    variant_doctor_no_out_sa
    doc_out_sa worker 10.0.1.138 10.0.0.40 3 "$KEY3" 0x3e00 0xff00 replay-oseq 0xfffffff0
}
undo_doctor_oseq() { variant_doctor_no_out_sa; undo_doctor_no_out_sa; }

# 9. netshoot's route MTU ignores the ESP overhead (1500 on a 1500 link).
variant_doctor_mtu() { ip -n netshoot route replace default via 10.0.1.138 dev eth0 mtu 1500; }
undo_doctor_mtu() { ip -n netshoot route replace default via 10.0.1.138 dev eth0 mtu 1423; }

# 10. worker keeps an SA, a policy and a table-200 route to a node that no longer exists
#     (10.0.9.1, pods 10.0.9.0/24).
variant_doctor_stale() {
    doc_out_sa worker 10.0.1.138 10.0.9.1 3 "$KEY3" 0x3e00 0xff00
    ip -n worker xfrm policy add src 10.0.1.0/24 dst 10.0.9.0/24 dir out priority 0 mark 0x3e00 mask 0xff00 \
        tmpl src 10.0.1.138 dst 10.0.9.1 proto esp spi 3 reqid 1 mode tunnel
    ip -n worker route add 10.0.9.0/24 dev cilium_host mtu 1500 table 200
}
undo_doctor_stale() {
    ip -n worker route del 10.0.9.0/24 table 200
    ip -n worker xfrm policy delete src 10.0.1.0/24 dst 10.0.9.0/24 dir out mark 0x3e00 mask 0xff00
    ip -n worker xfrm state delete src 10.0.1.138 dst 10.0.9.1 proto esp spi 3 mark 0x3e00 mask 0xff00
}

# 11. Two mark widths for one peer: worker has a node-ID layout out SA to worker2 (node 2,
#     0x23e00/0xffffff00) and the 1.13 one (0x3e00/0xff00) beside it. The kernel refuses the
#     node-ID one while the 1.13 one is there ("File exists": its lookup by mark finds the
#     old SA), so the old one goes first and comes back after, as after a downgrade.
variant_doctor_two_masks() {
    variant_doctor_no_out_sa
    doc_out_sa worker 10.0.1.138 10.0.0.40 3 "$KEY3" 0x23e00 0xffffff00
    undo_doctor_no_out_sa
}
undo_doctor_two_masks() {
    # A delete by mark takes whichever SA the mark finds: remove both, restore the seed's.
    ip -n worker xfrm state deleteall src 10.0.1.138 dst 10.0.0.40 proto esp spi 3
    undo_doctor_no_out_sa
}

# 12. Key 4 on worker (states and an out policy, mark 0x4e00) next to kube-proxy's masquerade
#     rule, which matches mark 0x4000/0x4000: the key id bits collide with kube-proxy's.
variant_doctor_kube_mark() {
    doc_out_sa worker 10.0.1.138 10.0.0.40 4 "$KEY4" 0x4e00 0xff00
    ip -n worker xfrm policy add src 10.0.1.0/24 dst 10.0.0.0/24 dir out priority 0 mark 0x4e00 mask 0xff00 \
        tmpl src 10.0.1.138 dst 10.0.0.40 proto esp spi 4 reqid 1 mode tunnel
    doc_in_sa worker2 10.0.0.40 4 "$KEY4"
    ip netns exec worker iptables-legacy -t nat -N KUBE-POSTROUTING
    ip netns exec worker iptables-legacy -t nat -A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
    ip netns exec worker iptables-legacy -t nat -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
    ip netns exec worker iptables-legacy -t nat -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
}
undo_doctor_kube_mark() {
    ip netns exec worker iptables-legacy -t nat -D POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
    ip netns exec worker iptables-legacy -t nat -F KUBE-POSTROUTING
    ip netns exec worker iptables-legacy -t nat -X KUBE-POSTROUTING
    ip -n worker2 xfrm state delete src 0.0.0.0 dst 10.0.0.40 proto esp spi 4 mark 0xd00 mask 0xf00
    ip -n worker xfrm policy delete src 10.0.1.0/24 dst 10.0.0.0/24 dir out mark 0x4e00 mask 0xff00
    ip -n worker xfrm state delete src 10.0.1.138 dst 10.0.0.40 proto esp spi 4 mark 0x4e00 mask 0xff00
}

# Key rotation (must be judged fine): SPI 4 states and out policies on every node beside SPI 3.
DOC_NODES="control-plane:10.0.2.52:10.0.2.0/24 worker:10.0.1.138:10.0.1.0/24 worker2:10.0.0.40:10.0.0.0/24"
doc_rotation() { # doc_rotation add|delete
    local a b na ra ca nb rb cb
    for a in $DOC_NODES; do
        IFS=: read -r na ra ca <<< "$a"
        if [ "$1" = add ]; then doc_in_sa "$na" "$ra" 4 "$KEY4"
        else ip -n "$na" xfrm state delete src 0.0.0.0 dst "$ra" proto esp spi 4 mark 0xd00 mask 0xf00; fi
        for b in $DOC_NODES; do
            IFS=: read -r nb rb cb <<< "$b"
            [ "$na" = "$nb" ] && continue
            if [ "$1" = add ]; then
                doc_out_sa "$na" "$ra" "$rb" 4 "$KEY4" 0x4e00 0xff00
                ip -n "$na" xfrm policy add src "$ca" dst "$cb" dir out priority 0 mark 0x4e00 mask 0xff00 \
                    tmpl src "$ra" dst "$rb" proto esp spi 4 reqid 1 mode tunnel
            else
                ip -n "$na" xfrm policy delete src "$ca" dst "$cb" dir out mark 0x4e00 mask 0xff00
                ip -n "$na" xfrm state delete src "$ra" dst "$rb" proto esp spi 4 mark 0x4e00 mask 0xff00
            fi
        done
    done
}
variant_doctor_rotation() { doc_rotation add; }
undo_doctor_rotation() { doc_rotation delete; }

# 13. worker2's inbound SA for SPI 3 has a replay window and has seen sequence numbers far
#     ahead of what its senders' out SAs send (as when a sender's SA was re-created): every
#     packet is too old, XfrmInStateSeqError on worker2.
variant_doctor_replay() {
    variant_doctor_no_in_sa
    ip -n worker2 xfrm state add src 0.0.0.0 dst 10.0.0.40 proto esp spi 3 reqid 1 mode tunnel \
        replay-window 32 replay-seq 0x100000 mark 0xd00 mask 0xf00 output-mark 0xd00 mask 0xf00 \
        aead 'rfc4106(gcm(aes))' "$KEY3" 128 sel src 0.0.0.0/0 dst 0.0.0.0/0
}
undo_doctor_replay() { variant_doctor_no_in_sa; undo_doctor_no_in_sa; }

# 14. worker's table 200 drops worker2's pod CIDR (unreachable): encrypt-marked pod traffic
#     gets ICMP host unreachable before any XFRM lookup (no xfrm_stat counter moves).
DOC_T200_ROUTE="10.0.0.0/24 dev cilium_host scope global mtu 1500 table 200"
variant_doctor_route_200_drop() { ip -n worker route replace unreachable 10.0.0.0/24 table 200; }
undo_doctor_route_200_drop() {
    ip -n worker route del unreachable 10.0.0.0/24 table 200
    # shellcheck disable=SC2086
    ip -n worker route add $DOC_T200_ROUTE
}

# 15. worker's table 200 lacks worker2's pod CIDR while it routes control-plane's: the
#     encrypt-marked traffic falls through to the main table (straight out eth0).
# shellcheck disable=SC2086
variant_doctor_route_200_missing() { ip -n worker route del $DOC_T200_ROUTE; }
# shellcheck disable=SC2086
undo_doctor_route_200_missing() { ip -n worker route add $DOC_T200_ROUTE; }
# The kernel's own route choice for netshoot's encrypt-marked traffic to cni-worker2.
probe_doctor_route() {
    ip -n worker route get 10.0.0.249 from 10.0.1.52 iif lxcda1dd0af135e mark 0x3e00
}

# 16. IPv6 between worker and worker2 (the seed is IPv4-only), laid out like the seed's IPv4:
#     underlay fc18::3/::4 on eth0; pod CIDRs fd10:1::/64 (worker; netshoot fd10:1::52) and
#     fd10::/64 (worker2; cni-worker2 fd10::249), routed to each pod's lxc; SPI 3 out SAs
#     (mark 0x3e00/0xff00, output-mark 0xe00), in SA from :: (0xd00/0xf00), in/fwd/out
#     policies, ip6tables-legacy mangle marks standing in for bpf_lxc/bpf_host. Pods' routes
#     to the node use static neighbours (no NDP through proxy_arp-style lxc). Stays up.
doc_mac() { ip -n "$1" -br link show dev "$2" | awk '{print $3}'; }
# doc_v6_node NODE IDX POD-CIDR POD POD-ADDR LXC PEER-IDX PEER-POD-CIDR
doc_v6_node() {
    local n=$1 i=$2 cidr=$3 pod=$4 addr=$5 lxc=$6 pi=$7 pc=$8
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.accept_dad=0
    ip -n "$n" -batch - <<EOB || return 1
addr add fc18::$i/64 dev eth0 nodad
route add $addr dev $lxc
neigh replace $addr lladdr $(doc_mac "$pod" eth0) dev $lxc nud permanent
route add $pc via fc18::$pi dev eth0
xfrm state add src :: dst fc18::$i proto esp spi 3 reqid 1 mode tunnel replay-window 0 mark 0xd00 mask 0xf00 output-mark 0xd00 mask 0xf00 aead rfc4106(gcm(aes)) $KEY3 128 sel src ::/0 dst ::/0
xfrm state add src fc18::$i dst fc18::$pi proto esp spi 3 reqid 1 mode tunnel replay-window 0 mark 0x3e00 mask 0xff00 output-mark 0xe00 mask 0xf00 aead rfc4106(gcm(aes)) $KEY3 128 sel src ::/0 dst ::/0
xfrm policy add src ::/0 dst $cidr dir in priority 0 mark 0xd00 mask 0xf00 tmpl src :: dst fc18::$i proto esp reqid 1 mode tunnel
xfrm policy add src ::/0 dst $cidr dir fwd priority 2975 mark 0 mask 0xf00 tmpl src :: dst fc18::$i proto esp reqid 1 mode tunnel level use
xfrm policy add src $cidr dst $pc dir out priority 0 mark 0x3e00 mask 0xff00 tmpl src fc18::$i dst fc18::$pi proto esp spi 3 reqid 1 mode tunnel
EOB
    ip -n "$pod" -batch - <<EOB || return 1
addr add $addr/128 dev eth0 nodad
neigh replace fe80::1 lladdr $(doc_mac "$n" "$lxc") dev eth0 nud permanent
route add ::/0 via fe80::1 dev eth0 mtu 1423
EOB
    ip netns exec "$n" ip6tables-legacy-restore --noflush <<EOB
*mangle
-A PREROUTING -i eth0 -p esp -m comment --comment "hopscope-lab: IPv6 ESP to this node: decrypt mark" -j MARK --set-xmark 0xd00/0xf00
-A PREROUTING -i eth0 ! -p esp -m mark --mark 0xd00/0xf00 -m comment --comment "hopscope-lab: decrypted IPv6 packet: route to pod via main" -j MARK --set-xmark 0x0/0xf00
-A PREROUTING -i lxc+ -d $pc -m comment --comment "hopscope-lab: pod to remote IPv6 pod CIDR: encrypt with SPI 3" -j MARK --set-xmark 0x3e00/0xff00
COMMIT
EOB
}
variant_doctor_v6() {
    lab-modprobe -a esp6 ip6table_mangle || return 1
    doc_v6_node worker 3 fd10:1::/64 netshoot fd10:1::52 lxcda1dd0af135e 4 fd10::/64 || return 1
    doc_v6_node worker2 4 fd10::/64 cni-worker2 fd10::249 lxc92161d5a7c99 3 fd10:1::/64
}
undo_doctor_v6() { :; }

# 17. worker2 has no IPv6 inbound SA for SPI 3 (the IPv4 one stays): XfrmInNoStates on worker2
#     for the IPv6 ESP only.
variant_doctor_v6_no_in_sa() { ip -n worker2 xfrm state delete src :: dst fc18::4 proto esp spi 3 mark 0xd00 mask 0xf00; }
undo_doctor_v6_no_in_sa() {
    ip -n worker2 xfrm state add src :: dst fc18::4 proto esp spi 3 reqid 1 mode tunnel \
        replay-window 0 mark 0xd00 mask 0xf00 output-mark 0xd00 mask 0xf00 \
        aead 'rfc4106(gcm(aes))' "$KEY3" 128 sel src ::/0 dst ::/0
}

# 18. Decrypted packets to worker2's own router IP (10.0.0.40 on cilium_host, inside the pod
#     CIDR its peers encrypt to) are delivered, not forwarded: the kernel checks the `in`
#     policies. The base lab clears the decrypt mark of every decrypted packet (for the route to
#     the pods), so none matches (mark 0): XfrmInNoPols. `doc_router_delivery` keeps the mark
#     for the router IP, as Cilium's datapath does (table 200's local route delivers it);
#     then only worker2's in policies gone make the kernel drop it (XfrmInNoPols), the pods
#     (fwd) untouched.
doc_router_delivery() {
    ip netns exec worker2 iptables-legacy -t mangle -I CILIUM_PRE_mangle 2 -i eth0 -d 10.0.0.40/32 \
        -m mark --mark 0xd00/0xf00 -m comment --comment "hopscope-lab: decrypted packet to the router IP: keep the decrypt mark" -j RETURN
}
DOC_IN_POLICY="src 0.0.0.0/0 dst 10.0.0.0/24 dir in"
variant_doctor_no_in_policy() {
    # shellcheck disable=SC2086
    ip -n worker2 xfrm policy delete $DOC_IN_POLICY mark 0xd00 mask 0xf00 &&
        ip -n worker2 xfrm policy delete $DOC_IN_POLICY mark 0x200 mask 0xf00
}
undo_doctor_no_in_policy() {
    local m
    for m in "0x200 level use" "0xd00"; do
        # shellcheck disable=SC2086
        ip -n worker2 xfrm policy add $DOC_IN_POLICY priority 0 mark ${m%% *} mask 0xf00 \
            tmpl src 0.0.0.0 dst 10.0.0.40 proto esp reqid 1 mode tunnel ${m#0x?00}
    done
}
