#!/bin/bash
# tests/lab/guest-init.sh — PID 1 of the lab guest, after the initramfs switch_root'ed into the
# host's / (shared over 9p). Never run this on the host.
#
# It mounts the guest's own proc/sys/dev and tmpfs on /run and /tmp (so `ip netns` state and
# temp files stay in the guest), loads the lab's kernel modules (any failure is fatal), builds
# the cluster (tests/lab/cluster.sh), runs the job written by run.sh, writes stdout/stderr/rc
# into the results dir (on the shared fs, so the host sees them) and powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 022

console() { echo "hopscope-lab: $*" >/dev/console; }

[ "$$" = 1 ] || { echo "guest-init.sh runs only as PID 1 inside the lab guest" >&2; exit 2; }

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
JOB=$(sed -n 's/.*hopscope_lab_job=\([^ ]*\).*/\1/p' /proc/cmdline)
# A checkout (or results dir) under the host's /tmp must stay reachable once /tmp is the
# guest's own tmpfs: keep the host's /tmp aside and bind those trees back.
mkdir -p /run/host-tmp && mount --bind /tmp /run/host-tmp
mount -t tmpfs tmpfs /tmp
for p in "$JOB" "$(dirname "$(readlink -f "$0")")"; do
    case "$p" in
    /tmp/?*)
        top=${p#/tmp/}; top=${top%%/*}
        mkdir -p "/tmp/$top" && mount --bind "/run/host-tmp/$top" "/tmp/$top"
        ;;
    esac
done
mkdir -p /run/netns /run/lock

poweroff_now() { sync; echo o > /proc/sysrq-trigger 2>/dev/null; poweroff -f; sleep 10; }
lab_fail() { # the lab itself broke (not the job): rc 125 and a reason the host prints
    console "LAB FAILURE: $*"
    { echo "hopscope lab failure: $*"; } >> "$JOB/stderr"
    echo 125 > "$JOB/rc"
    poweroff_now
}
[ -n "$JOB" ] && [ -f "$JOB/job.sh" ] || { console "no job (hopscope_lab_job=$JOB)"; poweroff_now; }
# shellcheck disable=SC1091
. "$JOB/job.sh"
export LAB_DIR REPO LAB_RESULTS LAB_VARIANTS MODROOT KVER
: > "$JOB/stdout"; : > "$JOB/stderr"
read -r up _ < /proc/uptime
echo "guest_init_uptime_s=$up" > "$JOB/timings"
console "booted in ${up}s (uptime), kernel $(uname -r)"
hostname lab

# --- modules -------------------------------------------------------------------------------
# modprobe reads <MODROOT>/lib/modules/<kver> (the cache dir on the shared fs): `modprobe -d`.
[ "$(uname -r)" = "$KVER" ] || lab_fail "booted $(uname -r), expected $KVER"
# LAB.md's list, plus what cluster.sh's tc/iptables rules need, plus the RNG that ESP's seqiv IV
# generator pulls in (drbg and friends).
# Order matters where a module's init uses the crypto API (no autoload, see below).
MODULES="xfrm_user esp4 veth gcm ghash-generic ctr aes_generic seqiv
  sha512_generic sha3_generic jitterentropy_rng drbg ansi_cprng bridge
  sch_ingress cls_matchall cls_flower act_skbedit act_pedit act_mirred
  iptable_mangle iptable_nat iptable_filter xt_mark xt_conntrack xt_comment xt_tcpudp
  xt_statistic xt_nat xt_MASQUERADE xt_addrtype xt_policy nf_conntrack_netlink"
# Kernel module autoloading off: everything needed is loaded here, and under TCG each request
# (the crypto API asks for "crypto-rfc4106(gcm(aes))" and a dozen more that no module provides)
# costs a second or more. By hand, in `run.sh shell`: lab-modprobe NAME.
echo > /proc/sys/kernel/modprobe
# One modprobe call (each process start costs ~0.3 s under TCG), then check every module is
# really there: loaded (/sys/module/NAME) or built into the kernel.
out=$(modprobe -d "$MODROOT" -a $MODULES 2>&1) || lab_fail "modprobe failed: $out"
for m in $MODULES; do
    m=${m//-/_}
    [ -d "/sys/module/$m" ] || grep -q "/$m\.ko\$" "$MODROOT/lib/modules/$KVER/modules.builtin" \
        || grep -q "/${m//_/-}\.ko\$" "$MODROOT/lib/modules/$KVER/modules.builtin" \
        || lab_fail "module $m did not load"
done
mkdir -p /run/hopscope-lab/bin
printf '#!/bin/sh\nexec /sbin/modprobe -d %s "$@"\n' "$MODROOT" > /run/hopscope-lab/bin/lab-modprobe
chmod +x /run/hopscope-lab/bin/lab-modprobe
export PATH=$PATH:/run/hopscope-lab/bin
read -r up _ < /proc/uptime; echo "modules_loaded_uptime_s=$up" >> "$JOB/timings"

# --- cluster -------------------------------------------------------------------------------
if [ "$LAB_CLUSTER" = 1 ]; then
    vargs=(); for v in $LAB_VARIANTS; do vargs+=(--variant "$v"); done
    console "building the cluster ${LAB_VARIANTS:+(variants: $LAB_VARIANTS)}"
    if ! "$LAB_DIR/cluster.sh" "${vargs[@]}" > "$JOB/cluster.log" 2>&1; then
        tail -n 20 "$JOB/cluster.log" > /dev/console
        lab_fail "cluster.sh failed, see $JOB/cluster.log"
    fi
    read -r up _ < /proc/uptime; echo "cluster_built_uptime_s=$up" >> "$JOB/timings"
    console "cluster built at ${up}s"
fi

# --- job -----------------------------------------------------------------------------------
cd "$REPO" || lab_fail "cd $REPO"
if [ "$LAB_MODE" = shell ]; then
    cat > /dev/ttyS0 <<EOF

hopscope lab: cluster built${LAB_VARIANTS:+ (variants: $LAB_VARIANTS)}. Node netns: control-plane worker worker2;
pods: netshoot cni-worker (on worker), cni-worker2 (on worker2). Module autoload is off:
lab-modprobe NAME loads one from the lab kernel. Try:
  ip netns exec worker ip -s xfrm state
  ip netns exec netshoot ping -c 3 10.0.0.249
  ip netns exec worker tcpdump -pni eth0 esp
Exit the shell to power off.
EOF
    stty -F /dev/ttyS0 rows "${LAB_TTY_ROWS:-24}" cols "${LAB_TTY_COLS:-80}" 2>/dev/null
    setsid -c bash -i </dev/ttyS0 >/dev/ttyS0 2>&1
    poweroff_now
fi

set +e
"${LAB_CMD[@]}" >> "$JOB/stdout" 2>> "$JOB/stderr" </dev/null
rc=$?
read -r up _ < /proc/uptime; echo "script_done_uptime_s=$up" >> "$JOB/timings"
echo "$rc" > "$JOB/rc"
console "script exited $rc at ${up}s"
poweroff_now
