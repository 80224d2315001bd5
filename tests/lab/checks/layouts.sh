#!/bin/bash
# tests/lab/checks/layouts.sh HOPSCOPE — guest side of tests/lab_layouts.rs: one boot with every
# variant of tests/lab/variants/layouts.sh (netns pairs beside the seed cluster). Per pair P:
#   P-<ns>.json / .err / .rc     hopscope snapshot --json --netns <ns>
#   P-<ns>.xs / .xp              ip -s xfrm state / ip xfrm policy of that netns (after the pings)
#   P.ping                       the pings (rc= at the end)
#   P-cap.json / .err / .rc / .pcapng   hopscope capture --decrypt --json -w on the receiver's eth0
#   P-trace.json / .rc / .err    hopscope trace over the pair;  P-follow.json --follow while pinging
#   stat-<ns>.before/.after      /proc/net/xfrm_stat (catch-all: XfrmOutPolBlock)
#   snmp-<ns>.before/.after      /proc/net/snmp (NAT-T port mismatch: Udp NoPorts)
#   P-doctor.json / .rc / .err   hopscope doctor --window over the pair while it pings
#   cilium-ly-ca.txt             snapshot text of ly-ca (node IDs named by its SAs' peers)
#   sa-count-*                   after ly-ca lost one per-source in SA: snapshot text, doctor
set -u
# shellcheck disable=SC1091
. "$LAB_DIR/lib.sh"
HOPSCOPE=$(local_bin "$1")
R=$LAB_RESULTS
N=3

# The layouts need no seed cluster (booted with --no-cluster): build each variant here.
# shellcheck disable=SC1091
. "$LAB_DIR/variants/layouts.sh"
for v in cilium xfrmi natt transport vxlan vti vti_policy natt_mismatch; do
    "variant_layouts_$v" >> "$R/variants.log" 2>&1 || { echo "variant layouts-$v failed: $(tail -5 "$R/variants.log")" >&2; exit 1; }
done

hs_cap_start() { # hs_cap_start NAME NETNS ARGS...
    local name=$1 ns=$2; shift 2
    "$HOPSCOPE" capture --netns "$ns" "$@" > "$R/$name.json" 2> "$R/$name.err" &
    echo $! > "/tmp/hs.$name.pid"
    wait_for "hopscope capture $name to start" 120 started "$name" && return 0
    echo "hopscope capture $name did not start: $(cat "$R/$name.err")" >&2
    return 1
}
hs_cap_stop() {
    local pid
    pid=$(cat "/tmp/hs.$1.pid")
    # No wait: on SIGINT hopscope reads what the kernel still holds before it stops.
    kill -INT "$pid" 2>/dev/null
    wait "$pid"
    echo "$?" > "$R/$1.rc"
}
# follow NAME PINGNS PINGDST TRACE-ARGS...: hopscope trace --follow while PINGNS pings.
follow() {
    local name=$1 ns=$2 dst=$3 pid; shift 3
    # Under a loaded emulated CPU the trace can take many seconds before it follows: wait up
    # to 30 s for it.
    trace "$name" "$@" --json --follow 12 &
    pid=$!
    # "following" is said once every capture is open: the pings can start at once.
    wait_for "the trace $name to follow" 120 has "$R/$name.err" 'following for'
    ip netns exec "$ns" ping -c "$N" -i 0.2 -W 1 "$dst" > "$R/$name.ping" 2>&1
    wait "$pid"
}
# doctor P PINGNS DST NETNS...: hopscope doctor --window over NETNS while PINGNS pings DST.
doctor() {
    local p=$1 ns=$2 dst=$3 ping a=(); shift 3
    for n in "$@"; do a+=(--netns "$n"); done
    ip netns exec "$ns" ping -i 0.2 -W 1 -c 20 "$dst" > /dev/null 2>&1 &
    ping=$!
    "$HOPSCOPE" doctor "${a[@]}" --json --no-kube --window 2s > "$R/$p-doctor.json" 2> "$R/$p-doctor.err"
    echo $? > "$R/$p-doctor.rc"
    kill "$ping" 2>/dev/null; wait "$ping" 2>/dev/null
}
# pair P CAPNS PINGNS DST [PING-ARGS]: capture on CAPNS eth0 while PINGNS pings DST.
pair() {
    local p=$1 capns=$2 ns=$3 dst=$4; shift 4
    hs_cap_start "$p-cap" "$capns" -i eth0 --decrypt --json --print -w "$R/$p-cap.pcapng" || return 1
    ip netns exec "$ns" ping -c "$N" -i 0.2 -W 2 "$@" "$dst" > "$R/$p.ping" 2>&1
    echo "rc=$?" >> "$R/$p.ping"
    hs_cap_stop "$p-cap"
}
# walk P PINGNS SRC DST NS...: the trace of SRC → DST over NS, --follow while PINGNS pings DST,
# and the doctor over NS.
walk() {
    local p=$1 ns=$2 src=$3 dst=$4 a=() n; shift 4
    for n in "$@"; do a+=(--netns "$n"); done
    trace "$p-trace.json" "$src" "$dst" "${a[@]}" --json
    follow "$p-follow.json" "$ns" "$dst" "$src" "$dst" "${a[@]}"
    doctor "$p" "$ns" "$dst" "$@"
}
state() { # state P NS...: snapshot and iproute2's view of each netns
    local p=$1 ns; shift
    for ns in "$@"; do
        snap "$p-$ns.json" --json --netns "$ns" --show-keys
        ip -n "$ns" -s xfrm state > "$R/$p-$ns.xs" 2>&1
        ip -n "$ns" xfrm policy > "$R/$p-$ns.xp" 2>&1
    done
}

# ---- Cilium, node IDs, dual stack, rotation, catch-all ---------------------------------------
ip netns exec ly-ca cat /proc/net/xfrm_stat > "$R/stat-ly-ca.before"
pair cilium4 ly-cb ly-ca 10.61.2.1
pair cilium6 ly-cb ly-ca fd61:2::1
ip netns exec ly-ca ping -c 2 -i 0.2 -W 1 10.61.9.1 > "$R/catchall.ping" 2>&1
echo "rc=$?" >> "$R/catchall.ping"
ip netns exec ly-ca cat /proc/net/xfrm_stat > "$R/stat-ly-ca.after"
state cilium ly-ca ly-cb
trace cilium4-trace.json 10.61.1.1 10.61.2.1 --netns ly-ca --netns ly-cb --mark 0x23e00 --json
trace cilium6-trace.json fd61:1::1 fd61:2::1 --netns ly-ca --netns ly-cb --mark 0x23e00 --json
trace catchall-trace.json 10.61.1.1 10.61.9.1 --netns ly-ca --mark 0x93e00 --json
follow cilium4-follow.json ly-ca 10.61.2.1 10.61.1.1 10.61.2.1 --netns ly-ca --netns ly-cb --mark 0x23e00
follow cilium6-follow.json ly-ca fd61:2::1 fd61:1::1 fd61:2::1 --netns ly-ca --netns ly-cb --mark 0x23e00
doctor cilium ly-ca 10.61.2.1 ly-ca ly-cb

# ---- xfrm interface site-to-site ---------------------------------------------------------------
pair xfrmi ly-xb ly-xa 10.62.2.1
state xfrmi ly-xa ly-xb
ip -n ly-xa -s link show ipsec0 > "$R/xfrmi-ly-xa.link"
walk xfrmi ly-xa 10.62.1.1 10.62.2.1 ly-xa ly-xb

# ---- NAT-T ---------------------------------------------------------------------------------------
pair natt ly-nb ly-na 192.168.64.2
state natt ly-na ly-nb
walk natt ly-na 192.168.63.1 192.168.64.2 ly-na ly-nat ly-nb

# ---- NAT-T with the encap port wrong on the sender -----------------------------------------------
ip netns exec ly-mb cat /proc/net/snmp > "$R/snmp-ly-mb.before"
ip netns exec ly-mb cat /proc/net/xfrm_stat > "$R/stat-ly-mb.before"
ip netns exec ly-ma ping -c "$N" -i 0.2 -W 1 192.168.68.2 > "$R/mismatch.ping" 2>&1
echo "rc=$?" >> "$R/mismatch.ping"
ip netns exec ly-mb cat /proc/net/snmp > "$R/snmp-ly-mb.after"
ip netns exec ly-mb cat /proc/net/xfrm_stat > "$R/stat-ly-mb.after"
state mismatch ly-ma ly-mb
trace mismatch-trace.json 192.168.68.1 192.168.68.2 --netns ly-ma --netns ly-mb --json
doctor mismatch ly-ma 192.168.68.2 ly-ma ly-mb

# ---- transport mode: ESP cbc+hmac(sha1) for ICMP, AH for UDP ------------------------------------
hs_cap_start transport-cap ly-tb -i eth0 --decrypt --json --print -w "$R/transport-cap.pcapng" || exit 1
ip netns exec ly-ta ping -c "$N" -i 0.2 -W 2 192.168.66.2 > "$R/transport.ping" 2>&1
echo "rc=$?" >> "$R/transport.ping"
ip netns exec ly-ta bash -c 'for i in 1 2 3; do echo hopscope > /dev/udp/192.168.66.2/9999; sleep 0.1; done' # 0.1 s apart: three packets, not one burst
hs_cap_stop transport-cap
state transport ly-ta ly-tb
walk transport ly-ta 192.168.66.1 192.168.66.2 ly-ta ly-tb

# ---- VXLAN inside ESP ----------------------------------------------------------------------------
pair vxlan ly-vb ly-va 10.65.0.2
state vxlan ly-va ly-vb
walk vxlan ly-va 10.65.0.1 10.65.0.2 ly-va ly-vb

# ---- VTI ---------------------------------------------------------------------------------------
pair vti ly-ib ly-ia 10.67.2.1
state vti ly-ia ly-ib
ip -n ly-ia -s link show vti0 > "$R/vti-ly-ia.link"
walk vti ly-ia 10.67.1.1 10.67.2.1 ly-ia ly-ib

# ---- VTI with disable_policy off: healthy, then an unmarked in policy, then disable_xfrm ------
pair vtipol ly-jb ly-ja 10.69.2.1
state vtipol ly-ja ly-jb
walk vtipol ly-ja 10.69.1.1 10.69.2.1 ly-ja ly-jb
# an in policy without mark for the site's traffic: the decrypted packet (mark 0, scrubbed by
# the VTI) matches it and has no ESP on record
ip -n ly-jb xfrm policy add src 10.69.1.0/24 dst 10.69.2.0/24 dir in \
    tmpl src 192.168.69.1 dst 192.168.69.2 proto esp reqid 13 mode tunnel
ip netns exec ly-jb cat /proc/net/xfrm_stat > "$R/stat-ly-jb.before"
ip netns exec ly-ja ping -c "$N" -i 0.2 -W 1 10.69.2.1 > "$R/vtitmpl.ping" 2>&1
echo "rc=$?" >> "$R/vtitmpl.ping"
ip netns exec ly-jb cat /proc/net/xfrm_stat > "$R/stat-ly-jb.after"
snap vtitmpl-ly-jb.txt --netns ly-jb --no-kube
trace vtitmpl-trace.json 10.69.1.1 10.69.2.1 --netns ly-ja --netns ly-jb --json
doctor vtitmpl ly-ja 10.69.2.1 ly-ja ly-jb
# disable_xfrm on the sender's VTI: vti_xmit's lookup is skipped
ip netns exec ly-ja sysctl -qw net.ipv4.conf.vti0.disable_xfrm=1
ip -n ly-ja -s link show vti0 > "$R/vtixfrm-ly-ja.before"
ip netns exec ly-ja ping -c "$N" -i 0.2 -W 1 10.69.2.1 > "$R/vtixfrm.ping" 2>&1
echo "rc=$?" >> "$R/vtixfrm.ping"
ip -n ly-ja -s link show vti0 > "$R/vtixfrm-ly-ja.after"
snap vtixfrm-ly-ja.json --json --netns ly-ja
trace vtixfrm-trace.json 10.69.1.1 10.69.2.1 --netns ly-ja --netns ly-jb --json

# ---- Cilium node IDs named and SAs counted (last: it breaks layouts-cilium) --------------------
snap cilium-ly-ca.txt --netns ly-ca --no-kube
# ly-cb's v4 inbound SA for key 4 goes missing on ly-ca: one SA short for node 0x2
ip -n ly-ca xfrm state delete src 192.168.61.2 dst 192.168.61.1 proto esp spi 4 mark 0x20d00 mask 0xffff0f00 \
    > "$R/sa-count.delete" 2>&1
snap sa-count-ly-ca.txt --netns ly-ca --no-kube
"$HOPSCOPE" doctor --netns ly-ca --json --no-kube > "$R/sa-count-doctor.json" 2> "$R/sa-count-doctor.err"
echo $? > "$R/sa-count-doctor.rc"
exit 0
