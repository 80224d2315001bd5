#!/bin/bash
# tests/lab/cluster.sh — rebuild the seed's 3-node Cilium 1.13 IPsec kind cluster with netns.
#
# Runs inside the lab guest (run.sh calls it before your script); it needs a kernel with ESP,
# so never on our hosts. Source: shared/reference/seed-cilium-ipsec-kubeproxy.txt.
#
#   cluster.sh [--variant V]...
#
# Layout (root netns of the guest = the "docker host"):
#   bridge br-kind 172.18.0.1/16 (docker's kind network); node netns with eth0 on it:
#     netns          eth0 IP / MAC                    cilium_host (router IP)  pod CIDR
#     control-plane  172.18.0.2  02:42:ac:12:00:02    10.0.2.52                10.0.2.0/24
#     worker         172.18.0.3  02:42:ac:12:00:03    10.0.1.138               10.0.1.0/24
#     worker2        172.18.0.4  02:42:ac:12:00:04    10.0.0.40                10.0.0.0/24
#   pods (netns named after the pod; the seed's pods were net, cni-s22px, cni-fcnh6):
#     netns        node     IP           host-side veth
#     netshoot     worker   10.0.1.52    lxcda1dd0af135e   (seed: "net")
#     cni-worker   worker   10.0.1.103   lxca872fa140b51   (seed: cni-s22px)
#     cni-worker2  worker2  10.0.0.249   lxc92161d5a7c99   (seed: cni-fcnh6)
#   Pod eth0: mtu 1500, 10.0.x.y/32, routes "<router> dev eth0 scope link" and
#   "default via <router> dev eth0 mtu 1423" (the seed's ip r s in the pod).
#
# Per node, exactly as the seed prints: main routes, ip rules (pref 1 fwmark 0xd00/0xf00 and
# 0xe00/0xf00 -> 200, 9 0x200/0xf00 -> 2004, 10 0xa00/0xf00 -> 2005, local at 100), table 200,
# xfrm states (SPI 3, rfc4106(gcm(aes)), key $KEY3 below, ICV 128) and policies.
#
# Cilium's BPF is replaced by (each rule carries a "hopscope-lab:" comment):
#   - iptables-legacy mangle chain CILIUM_PRE_mangle (from PREROUTING):
#       pod traffic (-i lxc+) to a remote pod CIDR  -> mark 0x3e00/0xff00 (encrypt, SPI 3)  [bpf_lxc]
#       ESP arriving on eth0                         -> mark 0xd00/0xf00  (decrypt)         [bpf_host]
#       decrypted inner packets (come back on eth0 with 0xd00) -> clear 0xf00 so they route to
#       the pod via the main table                                                          [bpf_host]
#       ESP coming back in on cilium_net (after encryption) -> clear 0xff00 so it leaves eth0
#   - tc ingress on cilium_net: matchall skbedit ptype host (frames addressed to cilium_host's MAC)
#   - tc egress on cilium_host: per pod, flower dst_ip POD -> rewrite MACs -> redirect to its lxc
#     (Cilium's ipv4_local_delivery; keeps the main table exactly as the seed's, no /32 routes)
#   - sysctls in node netns: ip_forward=1, rp_filter=0, accept_local=1; proxy_arp=1 on lxc.
#
# Variants:
#   rotation       second key, SPI 4 ($KEY4), added on every node alongside SPI 3 as during a
#                  Cilium key rotation: out states mark 0x4e00/0xff00 + out policies for them and
#                  an inbound SPI 4 state. Pod traffic still uses SPI 3 (mark 0x3e00).
#   no-inbound-sa  worker2 has no inbound state: ESP to worker2 counts XfrmInNoStates there.
#   no-out-policy  worker has no out policies: its pod traffic leaves eth0 in plaintext.
#   clusterip      kube-proxy style iptables-legacy nat on every node: ClusterIP
#                  10.96.169.246:80 (default/serversvc:cni) DNAT to 10.0.0.249:80 via
#                  KUBE-SERVICES -> KUBE-SVC-CU7F3MNN62CF4ANP -> KUBE-SEP-CNIWORKER2ZZZZZ, plus
#                  KUBE-MARK-MASQ/KUBE-POSTROUTING. The DNAT runs after the mangle encrypt mark
#                  (as with kube-proxy, not Cilium's socket LB), so pod->ClusterIP traffic goes
#                  out eth0 unencrypted. No server listens on :80 unless a test starts one.
#   wrong-key      worker2's states use $KEY_WRONG: ESP from worker fails integrity on worker2
#                  (XfrmInStateProtoError, the state's integrity_failed), and vice versa.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091
. "$LAB_DIR/keys.env"

variants=()
while [ $# -gt 0 ]; do
    case "$1" in
        --variant) variants+=("$2"); shift 2;;
        --variant=*) variants+=("${1#*=}"); shift;;
        *) echo "cluster.sh: unknown argument $1" >&2; exit 2;;
    esac
done
has_variant() { local v; for v in "${variants[@]}"; do [ "$v" = "$1" ] && return 0; done; return 1; }
# More variants live in variants/*.sh, one file per area: each defines `variant_<name>` (dashes
# become underscores), run after the base cluster is up and before the self-check, in the order
# given. A variant that breaks cross-node traffic on purpose sets `broken=1` from its function
# (or lists its name in BREAKING_VARIANTS at file level) so the self-check skips those pairs.
BREAKING_VARIANTS=()
for f in "$LAB_DIR"/variants/*.sh; do
    # shellcheck disable=SC1090
    [ -e "$f" ] && . "$f"
done
variant_fn() { echo "variant_${1//-/_}"; }
for v in "${variants[@]}"; do
    case "$v" in rotation|no-inbound-sa|no-out-policy|clusterip|wrong-key) ;;
        *) declare -F "$(variant_fn "$v")" >/dev/null \
               || { echo "cluster.sh: unknown variant $v" >&2; exit 2; };;
    esac
done

if ! ip xfrm state add src 127.0.0.2 dst 127.0.0.3 proto esp spi 9 mode tunnel \
        aead 'rfc4106(gcm(aes))' "$KEY3" 128 2>/dev/null; then
    echo "cluster.sh: this kernel cannot add an ESP rfc4106(gcm(aes)) state: run me in the lab guest (tests/lab/run.sh)" >&2
    exit 1
fi
ip xfrm state flush

IPT=iptables-legacy
command -v $IPT >/dev/null || { echo "cluster.sh: iptables-legacy missing (Debian package iptables)" >&2; exit 1; }

# ---- the seed's numbers -------------------------------------------------------------------
NODES="control-plane worker worker2"
declare -A IDX=([control-plane]=2 [worker]=3 [worker2]=4)             # 172.18.0.X, MAC ..:0X
declare -A ROUTER=([control-plane]=10.0.2.52 [worker]=10.0.1.138 [worker2]=10.0.0.40)
declare -A CIDR=([control-plane]=10.0.2.0/24 [worker]=10.0.1.0/24 [worker2]=10.0.0.0/24)
# cilium_host / cilium_net MACs: the worker's from the seed, the others made up.
declare -A HOST_MAC=([control-plane]=12:3d:af:49:19:f2 [worker]=12:3d:af:49:19:f5 [worker2]=12:3d:af:49:19:f4)
declare -A NET_MAC=([control-plane]=0a:43:07:d8:3b:02 [worker]=0a:43:07:d8:3b:01 [worker2]=0a:43:07:d8:3b:04)
# pod: node ip lxc-name lxc-mac pod-eth0-mac
PODS="netshoot cni-worker cni-worker2"
declare -A POD_NODE=([netshoot]=worker [cni-worker]=worker [cni-worker2]=worker2)
declare -A POD_IP=([netshoot]=10.0.1.52 [cni-worker]=10.0.1.103 [cni-worker2]=10.0.0.249)
declare -A POD_LXC=([netshoot]=lxcda1dd0af135e [cni-worker]=lxca872fa140b51 [cni-worker2]=lxc92161d5a7c99)
declare -A LXC_MAC=([netshoot]=4e:0d:10:48:00:05 [cni-worker]=6a:86:19:2c:28:f0 [cni-worker2]=de:4b:0f:21:7c:99)
declare -A POD_MAC=([netshoot]=6e:7b:6a:37:31:ab [cni-worker]=9a:3c:51:0e:8d:67 [cni-worker2]=b2:1f:6c:40:aa:49)

key_of() { # key_of NODE SPI
    if [ "$2" = 4 ]; then echo "$KEY4"
    elif [ "$1" = worker2 ] && has_variant wrong-key; then echo "$KEY_WRONG"
    else echo "$KEY3"; fi
}
others() { local m; for m in $NODES; do [ "$m" != "$1" ] && echo "$m"; done; }

# Every process start costs ~0.2 s under TCG, so commands are collected into batch files (one
# per tool and netns) and run with `ip -batch`, `tc -batch`, `iptables-legacy-restore`.
B=/tmp/hopscope-lab-cluster
rm -rf "$B" && mkdir -p "$B"
ipb() { local ns=$1; shift; echo "$*" >> "$B/ip.$ns"; }         # ipb NETNS|root ip-args...
tcb() { local ns=$1; shift; echo "$*" >> "$B/tc.$ns"; }
iptb() { local ns=$1; shift; echo "$*" >> "$B/ipt.$ns"; }       # iptables-restore lines
sysb() { local ns=$1; shift; echo "$*" >> "$B/sysctl.$ns"; }    # sysctl assignments

# ---- links: created from the root netns, each end straight into its netns --------------------
ipb root link add br-kind type bridge
ipb root addr add 172.18.0.1/16 dev br-kind
ipb root link set br-kind up
for n in $NODES; do
    ipb root netns add "$n"
    ipb root link add "veth-kind${IDX[$n]}" type veth peer name eth0 netns "$n"
    ipb root link set "veth-kind${IDX[$n]}" master br-kind up
    ipb root link add cilium_net netns "$n" type veth peer name cilium_host netns "$n"
done
for p in $PODS; do
    ipb root netns add "$p"
    ipb root link add "${POD_LXC[$p]}" netns "${POD_NODE[$p]}" type veth peer name eth0 netns "$p"
done

# ---- nodes --------------------------------------------------------------------------------
for n in $NODES; do
    i=${IDX[$n]} r=${ROUTER[$n]}
    sysb "$n" net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
        net.ipv4.conf.all.accept_local=1 net.ipv4.conf.default.accept_local=1
    ipb "$n" link set lo up
    ipb "$n" link set eth0 address "02:42:ac:12:00:0$i" up
    ipb "$n" addr add "172.18.0.$i/16" brd 172.18.255.255 dev eth0
    ipb "$n" route add default via 172.18.0.1 dev eth0

    # cilium_host/cilium_net veth pair, NOARP, router IP /32 scope link on cilium_host
    ipb "$n" link set cilium_host address "${HOST_MAC[$n]}" arp off up
    ipb "$n" link set cilium_net address "${NET_MAC[$n]}" arp off up
    ipb "$n" addr add "$r/32" dev cilium_host scope link
    ipb "$n" route add "$r" dev cilium_host scope link
    ipb "$n" route add "${CIDR[$n]}" via "$r" dev cilium_host src "$r"
    for m in $(others "$n"); do
        ipb "$n" route add "${CIDR[$m]}" via "172.18.0.${IDX[$m]}" dev eth0
    done

    # ip rules and table 200, as the seed's `ip rule` / `ip r s t 200`
    ipb "$n" rule add pref 1 fwmark 0xd00/0xf00 lookup 200
    ipb "$n" rule add pref 1 fwmark 0xe00/0xf00 lookup 200
    ipb "$n" rule add pref 9 fwmark 0x200/0xf00 lookup 2004
    ipb "$n" rule add pref 10 fwmark 0xa00/0xf00 lookup 2005
    ipb "$n" rule add pref 100 lookup local
    ipb "$n" rule del pref 0 lookup local
    for m in $(others "$n"); do
        ipb "$n" route add "${CIDR[$m]}" dev cilium_host scope global mtu 1500 table 200
    done
    ipb "$n" route add local "${CIDR[$n]}" dev eth0 proto 50 scope host table 200

    # tc: cilium_net hands cilium_host's frames to the stack; cilium_host egress -> pods (below)
    tcb "$n" qdisc add dev cilium_net clsact
    tcb "$n" filter add dev cilium_net ingress pref 1 matchall action skbedit ptype host
    tcb "$n" qdisc add dev cilium_host clsact

    # iptables-legacy mangle, standing in for bpf_lxc/bpf_host marks
    iptb "$n" '*mangle'
    iptb "$n" ':CILIUM_PRE_mangle - [0:0]'
    iptb "$n" '-A PREROUTING -m comment --comment "cilium-feeder: CILIUM_PRE_mangle" -j CILIUM_PRE_mangle'
    iptb "$n" '-A CILIUM_PRE_mangle -i eth0 -p esp -m comment --comment "hopscope-lab: ESP to this node: decrypt mark" -j MARK --set-xmark 0xd00/0xf00'
    iptb "$n" '-A CILIUM_PRE_mangle -i eth0 ! -p esp -m mark --mark 0xd00/0xf00 -m comment --comment "hopscope-lab: decrypted packet: route to pod via main" -j MARK --set-xmark 0x0/0xf00'
    iptb "$n" '-A CILIUM_PRE_mangle -i cilium_net -m comment --comment "hopscope-lab: encrypted packet back from cilium_host: route via eth0" -j MARK --set-xmark 0x0/0xff00'
    for m in $(others "$n"); do
        iptb "$n" "-A CILIUM_PRE_mangle -i lxc+ -d ${CIDR[$m]} -m comment --comment \"hopscope-lab: pod to remote pod CIDR: encrypt with SPI 3\" -j MARK --set-xmark 0x3e00/0xff00"
    done
    iptb "$n" COMMIT
done

# ---- pods ---------------------------------------------------------------------------------
for p in $PODS; do
    n=${POD_NODE[$p]} lxc=${POD_LXC[$p]} r=${ROUTER[${POD_NODE[$p]}]}
    ipb "$n" link set "$lxc" address "${LXC_MAC[$p]}" up
    sysb "$n" "net.ipv4.conf.$lxc.proxy_arp=1" "net.ipv4.conf.$lxc.rp_filter=0"
    ipb "$p" link set lo up
    ipb "$p" link set eth0 address "${POD_MAC[$p]}" mtu 1500 up
    ipb "$p" addr add "${POD_IP[$p]}/32" dev eth0
    ipb "$p" route add "$r" dev eth0 scope link
    ipb "$p" route add default via "$r" dev eth0 mtu 1423
    tcb "$n" filter add dev cilium_host egress pref 1 protocol ip flower dst_ip "${POD_IP[$p]}" \
        action pedit ex munge eth dst set "${POD_MAC[$p]}" munge eth src set "${LXC_MAC[$p]}" pipe \
        action mirred egress redirect dev "$lxc"
done

# ---- IPsec: states and policies as the seed's `ip x s` / `ip x p` ----------------------------
# The kernel dumps newest first: added in reverse so the listing follows the seed's order.
add_states() { # add_states NODE SPI
    local n=$1 spi=$2 m key
    key=$(key_of "$n" "$spi")
    if ! { [ "$n" = worker2 ] && has_variant no-inbound-sa; }; then
        ipb "$n" xfrm state add src 0.0.0.0 dst "${ROUTER[$n]}" proto esp spi "$spi" reqid 1 mode tunnel \
            replay-window 0 mark 0xd00 mask 0xf00 output-mark 0xd00 mask 0xf00 \
            aead "rfc4106(gcm(aes))" "$key" 128 sel src 0.0.0.0/0 dst 0.0.0.0/0
    fi
    for m in $(others "$n" | tac); do
        ipb "$n" xfrm state add src "${ROUTER[$n]}" dst "${ROUTER[$m]}" proto esp spi "$spi" reqid 1 mode tunnel \
            replay-window 0 mark "0x${spi}e00" mask 0xff00 output-mark 0xe00 mask 0xf00 \
            aead "rfc4106(gcm(aes))" "$key" 128 sel src 0.0.0.0/0 dst 0.0.0.0/0
    done
}
add_out_policies() { # add_out_policies NODE SPI
    local n=$1 spi=$2 m
    for m in $(others "$n" | tac); do
        ipb "$n" xfrm policy add src "${CIDR[$n]}" dst "${CIDR[$m]}" dir out priority 0 \
            mark "0x${spi}e00" mask 0xff00 \
            tmpl src "${ROUTER[$n]}" dst "${ROUTER[$m]}" proto esp spi "$spi" reqid 1 mode tunnel
    done
}
for n in $NODES; do
    has_variant rotation && add_states "$n" 4
    add_states "$n" 3
    ipb "$n" xfrm policy add src 0.0.0.0/0 dst "${CIDR[$n]}" dir in priority 0 mark 0x200 mask 0xf00 \
        tmpl src 0.0.0.0 dst "${ROUTER[$n]}" proto esp reqid 1 mode tunnel level use
    ipb "$n" xfrm policy add src 0.0.0.0/0 dst "${CIDR[$n]}" dir in priority 0 mark 0xd00 mask 0xf00 \
        tmpl src 0.0.0.0 dst "${ROUTER[$n]}" proto esp reqid 1 mode tunnel
    ipb "$n" xfrm policy add src 0.0.0.0/0 dst "${CIDR[$n]}" dir fwd priority 2975 mark 0 mask 0xf00 \
        tmpl src 0.0.0.0 dst "${ROUTER[$n]}" proto esp reqid 1 mode tunnel level use
    if ! { [ "$n" = worker ] && has_variant no-out-policy; }; then
        has_variant rotation && add_out_policies "$n" 4
        add_out_policies "$n" 3
    fi
done

# ---- variant: kube-proxy ClusterIP ---------------------------------------------------------
if has_variant clusterip; then
    for n in $NODES; do
        cat >> "$B/ipt.$n" <<'EOT'
*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-CU7F3MNN62CF4ANP - [0:0]
:KUBE-SEP-CNIWORKER2ZZZZZ - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SERVICES -d 10.96.169.246/32 -p tcp -m comment --comment "default/serversvc:cni cluster IP" -m tcp --dport 80 -j KUBE-SVC-CU7F3MNN62CF4ANP
-A KUBE-SVC-CU7F3MNN62CF4ANP ! -s 10.0.0.0/8 -d 10.96.169.246/32 -p tcp -m comment --comment "default/serversvc:cni cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-CU7F3MNN62CF4ANP -m comment --comment "default/serversvc:cni -> 10.0.0.249:80" -j KUBE-SEP-CNIWORKER2ZZZZZ
-A KUBE-SEP-CNIWORKER2ZZZZZ -s 10.0.0.249/32 -m comment --comment "default/serversvc:cni" -j KUBE-MARK-MASQ
-A KUBE-SEP-CNIWORKER2ZZZZZ -p tcp -m comment --comment "default/serversvc:cni" -m tcp -j DNAT --to-destination 10.0.0.249:80
COMMIT
EOT
    done
fi

# ---- apply the batches --------------------------------------------------------------------
run_batch() { # run_batch FILE CMD... : run, and on failure show the file
    local f=$1; shift
    "$@" < "$f" || { echo "cluster.sh: failed: $* < $f" >&2; cat -n "$f" >&2; exit 1; }
}
run_batch "$B/ip.root" ip -batch -
# Nodes and pods are independent from here: set them up in parallel (2 vCPUs).
setup_node() {
    local n=$1
    run_batch "$B/ip.$n" ip -n "$n" -batch -
    # shellcheck disable=SC2046
    ip netns exec "$n" sysctl -qw $(cat "$B/sysctl.$n")
    run_batch "$B/tc.$n" tc -n "$n" -batch -
    run_batch "$B/ipt.$n" ip netns exec "$n" $IPT-restore
}
pids=()
for n in $NODES; do setup_node "$n" & pids+=($!); done
for p in $PODS; do run_batch "$B/ip.$p" ip -n "$p" -batch - & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid" || { echo "cluster.sh: setup failed" >&2; exit 1; }; done

# ---- variants from variants/*.sh, on top of the base cluster
broken=0
for v in "${variants[@]}"; do
    fn=$(variant_fn "$v")
    if declare -F "$fn" >/dev/null; then
        "$fn" || { echo "cluster.sh: variant $v failed" >&2; exit 1; }
    fi
done
for v in "${BREAKING_VARIANTS[@]}"; do has_variant "$v" && broken=1; done

# ---- self-check: every pod reaches every other pod (across nodes only when no variant breaks it)
has_variant no-inbound-sa && broken=1
has_variant wrong-key && broken=1
pids=()
for p in $PODS; do
    for q in $PODS; do
        [ "$p" = "$q" ] && continue
        [ $broken = 1 ] && [ "${POD_NODE[$p]}" != "${POD_NODE[$q]}" ] && continue
        { ip netns exec "$p" ping -c 1 -W 5 "${POD_IP[$q]}" >/dev/null \
            || { echo "cluster.sh: $p cannot ping $q (${POD_IP[$q]})" >&2; exit 1; }; } &
        pids+=($!)
    done
done
for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
echo "cluster.sh: cluster up${variants[*]:+ (variants: ${variants[*]})}"
