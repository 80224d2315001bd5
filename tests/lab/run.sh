#!/bin/bash
# tests/lab/run.sh — boot Debian's kernel under qemu and run a script inside it.
#
#   run.sh [options] SCRIPT [ARGS...]   run SCRIPT (a path on the host; the guest's / IS the
#                                       host's /, shared over 9p) after building the cluster;
#                                       prints its stdout/stderr and exits with its status
#   run.sh [options] shell              interactive bash in the guest, cluster built
#                                       (exit the shell to power off; Ctrl-A x kills qemu)
# Options:
#   --variant V      cluster variant (repeatable): rotation no-inbound-sa no-out-policy
#                    clusterip wrong-key (see tests/lab/cluster.sh)
#   --no-cluster     do not build the cluster (bare guest, modules loaded)
#   --results DIR    where the guest writes its results (default target/lab-results/<stamp>)
#   --timeout SEC    kill the guest after SEC seconds (default $HOPSCOPE_LAB_TIMEOUT or 300)
#   -v, --verbose    stream the guest's serial console to stderr
#
# Results dir (kept after the run):  job.sh (what the guest ran), console.log (serial console),
# cluster.log, stdout, stderr, rc. SCRIPT sees $LAB_RESULTS (this dir, for extra files),
# $LAB_DIR (tests/lab), $LAB_VARIANTS and $REPO. Exit status: SCRIPT's; 124 on timeout; 125 when
# the lab itself failed (module load, cluster build, no rc written).
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_DIR/../.." && pwd)

die() { echo "run.sh: ERROR: $*" >&2; exit 125; }

variants=() cluster=1 results="" timeout=${HOPSCOPE_LAB_TIMEOUT:-300} verbose=${HOPSCOPE_LAB_VERBOSE:-0}
while [ $# -gt 0 ]; do
    case "$1" in
        --variant) variants+=("$2"); shift 2;;
        --variant=*) variants+=("${1#*=}"); shift;;
        --no-cluster) cluster=0; shift;;
        --results) results=$2; shift 2;;
        --timeout) timeout=$2; shift 2;;
        -v|--verbose) verbose=1; shift;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;;
        --) shift; break;;
        -*) die "unknown option $1";;
        *) break;;
    esac
done
[ $# -ge 1 ] || die "usage: run.sh [--variant V]... [--no-cluster] SCRIPT [ARGS...] | shell"
for v in "${variants[@]}"; do
    case "$v" in rotation|no-inbound-sa|no-out-policy|clusterip|wrong-key) ;;
        *) grep -qs "^variant_${v//-/_}()" "$LAB_DIR"/variants/*.sh || die "unknown variant '$v'";; esac
done

mode=script
if [ "$1" = shell ]; then
    mode=shell; shift
    [ -t 0 ] || die "'run.sh shell' needs a terminal on stdin"
else
    script=$(realpath -e "$1" 2>/dev/null) || die "script '$1' not found"
    [ -x "$script" ] || die "script '$script' is not executable"
    shift
fi

env_file=$("$LAB_DIR/kernel.sh") || die "kernel.sh failed (see above)"
# shellcheck disable=SC1090
. "$env_file"

results=${results:-$REPO/target/lab-results/$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$results"
results=$(realpath "$results")
rm -f "$results/rc" "$results/stdout" "$results/stderr" "$results/cluster.log" "$results/console.log" \
    "$results/timings" "$results/phases"
case "$results$LAB_DIR" in *[[:space:]]*) die "paths with spaces are not supported: $results $LAB_DIR";; esac

# The job the guest runs: plain assignments plus the quoted command line.
{
    echo "# written by run.sh; sourced by guest-init.sh"
    printf 'LAB_MODE=%q\n' "$mode"
    printf 'LAB_CLUSTER=%q\n' "$cluster"
    printf 'LAB_VARIANTS=%q\n' "${variants[*]:-}"
    printf 'LAB_DIR=%q\nREPO=%q\nLAB_RESULTS=%q\n' "$LAB_DIR" "$REPO" "$results"
    printf 'MODROOT=%q\nKVER=%q\n' "$MODROOT" "$KVER"
    printf 'HOST_PATH=%q\n' "$PATH"
    if [ "$mode" = shell ]; then  # the guest's serial tty gets the host terminal's size
        read -r rows cols < <(stty size 2>/dev/null || echo "24 80")
        printf 'LAB_TTY_ROWS=%q\nLAB_TTY_COLS=%q\n' "$rows" "$cols"
    fi
    if [ "$mode" = script ]; then
        printf 'LAB_CMD=(%q' "$script"; for a in "$@"; do printf ' %q' "$a"; done; echo ')'
    fi
} > "$results/job.sh"

qemu=(qemu-system-x86_64 -accel tcg -m 1G -smp 2 -no-reboot -display none -nodefaults
      -kernel "$VMLINUZ" -initrd "$INITRD"
      -append "console=ttyS0 quiet panic=-1 hopscope_lab_init=$LAB_DIR/guest-init.sh hopscope_lab_job=$results"
      -virtfs "local,path=/,mount_tag=host0,security_model=passthrough,id=host0,multidevs=remap")

if [ "$mode" = shell ]; then
    echo "run.sh: booting the lab (TCG, ~30 s until the cluster is built); exit the shell to stop" >&2
    exec "${qemu[@]}" -serial mon:stdio
fi

start=$(date +%s)
set +e
if [ "$verbose" = 1 ]; then
    timeout -k 5 "$timeout" "${qemu[@]}" -serial stdio </dev/null 2>&1 | tee "$results/console.log" >&2
    qrc=${PIPESTATUS[0]}
else
    timeout -k 5 "$timeout" "${qemu[@]}" -serial stdio </dev/null >"$results/console.log" 2>&1
    qrc=$?
fi
set -e
echo "run.sh: guest ran $(( $(date +%s) - start )) s; results in $results" >&2

[ -f "$results/stdout" ] && cat "$results/stdout"
[ -f "$results/stderr" ] && cat "$results/stderr" >&2
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    echo "run.sh: ERROR: guest timed out after ${timeout}s; console tail:" >&2
    tail -n 30 "$results/console.log" >&2
    exit 124
fi
if [ ! -f "$results/rc" ]; then
    echo "run.sh: ERROR: the guest wrote no rc (qemu exit $qrc); console tail:" >&2
    tail -n 40 "$results/console.log" >&2
    exit 125
fi
exit "$(cat "$results/rc")"
