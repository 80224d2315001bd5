#!/bin/bash
# tests/lab/checks/doctor.sh HOPSCOPE — guest side of tests/lab_doctor.rs: one boot, the
# healthy cluster, then each failure class of variants/doctor.sh in turn: break it, run
# `hopscope doctor --window` over the three nodes while netshoot pings cni-worker2, read the
# kernel's own xfrm_stat around it, undo. Per case C, in $LAB_RESULTS:
#   C.json / C.rc / C.err      hopscope doctor --json (exit status 0/1/2)
#   C.stat.NODE.before/after   /proc/net/xfrm_stat of each node around the traffic
#   C.ping                     the pings' output
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

stats() { local n; for n in $NODES; do ip netns exec "$n" cat /proc/net/xfrm_stat > "$R/$1.stat.$n.$2"; done; }

# judge CASE PINGS [PING-ARGS]: doctor --window while netshoot pings (PINGS=0: no window, no traffic)
judge() {
    local c=$1 n=$2 pid i; shift 2
    if [ "$n" = 0 ]; then
        # shellcheck disable=SC2086
        "$HOPSCOPE" doctor $NETNS --json --no-kube > "$R/$c.json" 2> "$R/$c.err"
        echo $? > "$R/$c.rc"
        return
    fi
    stats "$c" before
    # shellcheck disable=SC2086
    "$HOPSCOPE" doctor $NETNS --json --no-kube --window 3s > "$R/$c.json" 2> "$R/$c.err" &
    pid=$!
    # The window opens once the doctor has read every node and its captures are up (slow
    # under emulation): traffic only then, so the window holds all of it.
    for i in $(seq 1200); do grep -q 'watching' "$R/$c.err" 2>/dev/null && break; sleep 0.1; done
    ip netns exec netshoot ping -c "$n" -i 0.1 -W 1 "$@" 10.0.0.249 > "$R/$c.ping" 2>&1
    wait "$pid"
    echo $? > "$R/$c.rc"
    stats "$c" after
}

# case CLASS PINGS [PING-ARGS]: apply, judge, undo (TEXT=1: the text report too, for people).
case_() {
    local c=$1; shift
    phase "$c"
    "variant_doctor_${c//-/_}" > "$R/$c.apply" 2>&1 || echo "apply failed: $?" >> "$R/$c.apply"
    judge "$c" "$@"
    # shellcheck disable=SC2086
    [ "${TEXT:-0}" = 1 ] && "$HOPSCOPE" doctor $NETNS --no-kube > "$R/$c.txt" 2>&1
    "undo_doctor_${c//-/_}" > "$R/$c.undo" 2>&1 || echo "undo failed: $?" >> "$R/$c.undo"
}

phase healthy
judge healthy 0
"$HOPSCOPE" doctor $NETNS --no-kube > "$R/healthy.txt" 2>&1
judge healthy-window 5
case_ rotation 5
case_ no-in-sa 5
case_ decrypt-mark 5
case_ wrong-key 5
case_ no-out-sa 5
case_ catch-all 5
case_ no-fwd-policy 5
case_ reqid 5
case_ oseq 25 -i 0.05
case_ mtu 3 -M do -s 1472
TEXT=1 case_ stale 0
case_ two-masks 0
case_ kube-mark 0
# After every undo the cluster is the seed's again.
judge healthy-after 5
phase done
exit 0
