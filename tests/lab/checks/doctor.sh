#!/bin/bash
# tests/lab/checks/doctor.sh HOPSCOPE — guest side of tests/lab_doctor.rs: one boot, the
# healthy cluster, then each failure class of variants/doctor.sh in turn: break it, run
# `hopscope doctor --window` over the three nodes while netshoot pings cni-worker2, read the
# kernel's own xfrm_stat around it, undo. Per case C, in $LAB_RESULTS:
#   C.json / C.rc / C.err      hopscope doctor --json (exit status 0/1/2)
#   C.stat.NODE.before/after   /proc/net/xfrm_stat of each node around the traffic
#   C.snmp.NODE.before/after   /proc/net/snmp of each node around the traffic
#   C.ping                     the pings' output (they run all through the window)
set -u
# shellcheck disable=SC1091
. "$LAB_DIR/lib.sh"
# shellcheck disable=SC1091
. "$LAB_DIR/keys.env"
# shellcheck disable=SC1091
. "$LAB_DIR/variants/doctor.sh"
HOPSCOPE=$(local_bin "$1")
R=$LAB_RESULTS
NODES="worker worker2 control-plane"
NETNS="--netns worker --netns worker2 --netns control-plane"

stats() {
    local n
    for n in $NODES; do
        ip netns exec "$n" cat /proc/net/xfrm_stat > "$R/$1.stat.$n.$2"
        ip netns exec "$n" cat /proc/net/snmp > "$R/$1.snmp.$n.$2"
    done
}

# judge CASE static|ping|window [PING-ARGS]: the doctor over the three nodes; with a window,
# netshoot pings cni-worker2 ($DST, IPv4 unless set) all through it (from before the doctor
# reads the nodes until it has judged), so the window holds traffic however slow the guest is;
# `ping` sends three pings first, then judges without a window (a class no counter shows).
judge() {
    local c=$1 mode=$2 ping; shift 2
    if [ "$mode" = ping ]; then
        stats "$c" before
        ip netns exec netshoot ping -c 3 -i 0.2 -W 1 "$@" "${DST:-10.0.0.249}" > "$R/$c.ping" 2>&1
        stats "$c" after
        mode=static
    fi
    if [ "$mode" = static ]; then
        # shellcheck disable=SC2086
        "$HOPSCOPE" doctor $NETNS --json --no-kube > "$R/$c.json" 2> "$R/$c.err"
        echo $? > "$R/$c.rc"
        return
    fi
    stats "$c" before
    local sent
    sent=$(echoes_sent netshoot)
    ip netns exec netshoot ping -i 0.1 -W 1 "$@" "${DST:-10.0.0.249}" > "$R/$c.ping" 2>&1 &
    ping=$!
    wait_for "netshoot's first ping" 120 echoes_above netshoot "$sent"
    # shellcheck disable=SC2086
    "$HOPSCOPE" doctor $NETNS --json --no-kube --window 3s > "$R/$c.json" 2> "$R/$c.err"
    echo $? > "$R/$c.rc"
    kill -INT "$ping"
    wait "$ping"
    stats "$c" after
}

# case CLASS static|ping|window [PING-ARGS]: apply, judge, undo (TEXT=1: the text report too,
# for people; PROBE=NAME: probe_doctor_NAME's output, the kernel's view, in CLASS.probe).
case_() {
    local c=$1; shift
    phase "$c"
    "variant_doctor_${c//-/_}" > "$R/$c.apply" 2>&1 || echo "apply failed: $?" >> "$R/$c.apply"
    [ -n "${PROBE:-}" ] && "probe_doctor_$PROBE" > "$R/$c.probe" 2>&1
    judge "$c" "$@"
    # shellcheck disable=SC2086
    [ "${TEXT:-0}" = 1 ] && "$HOPSCOPE" doctor $NETNS --no-kube > "$R/$c.txt" 2>&1
    "undo_doctor_${c//-/_}" > "$R/$c.undo" 2>&1 || echo "undo failed: $?" >> "$R/$c.undo"
}

phase healthy
judge healthy static
"$HOPSCOPE" doctor $NETNS --no-kube > "$R/healthy.txt" 2>&1
judge healthy-window window
case_ rotation window
case_ no-in-sa window
case_ decrypt-mark window
case_ wrong-key window
case_ no-out-sa window
case_ catch-all window
case_ no-fwd-policy window
case_ reqid window
case_ oseq window
case_ mtu window -M do -s 1472
TEXT=1 case_ stale static
case_ two-masks static
case_ kube-mark static
case_ replay window
PROBE=route TEXT=1 case_ route-200-drop ping
PROBE=route case_ route-200-missing ping
# After every undo the cluster is the seed's again (the kernel's route for the probe too).
probe_doctor_route > "$R/healthy-after.probe" 2>&1
judge healthy-after window
# IPv6 beside the IPv4 between worker and worker2 (kept from here on): healthy, then one break.
DST=fd10::249 case_ v6 window
DST=fd10::249 case_ v6-no-in-sa window
# Decrypted packets to worker2's router IP are delivered (the in policies), pods forwarded:
# first as the base lab is (the decrypt mark cleared: no in policy matches), then with the
# mark kept for it (fine), then with worker2's in policies gone.
DST=10.0.0.40 judge router-base window
doc_router_delivery > "$R/router.apply" 2>&1
DST=10.0.0.40 judge router window
DST=10.0.0.40 case_ no-in-policy window
phase done
exit 0
