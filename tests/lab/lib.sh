# tests/lab/lib.sh — helpers for scripts that run inside the lab guest (source it).
# Everything writes into $LAB_RESULTS (the results dir on the shared fs) unless told otherwise.

# wait_for WHAT SECONDS CMD...: run CMD until it succeeds (every 0.1 s), for at most SECONDS; if
# it never does, say on stderr what was waited for and for how long, and fail. CMD failing with
# status 2 says it never will (e.g. the process to wait for exited): fail at once. Scripts wait
# for a condition this way, never for a fixed time: a slow or busy machine only takes longer.
wait_for() {
    local what=$1 end=$((SECONDS + $2)) limit=$2 rc
    shift 2
    while true; do
        "$@" && return 0
        rc=$?
        if ((rc == 2)); then
            echo "wait_for: $what will not happen (gave up at once)" >&2
            return 1
        fi
        if ((SECONDS >= end)); then
            echo "wait_for: gave up after ${limit} s waiting for $what" >&2
            return 1
        fi
        sleep 0.1 # the poll interval
    done
}

# has FILE TEXT: FILE holds TEXT (a fixed string; no complaint while FILE does not exist yet).
has() { grep -qsF -- "$2" "$1" && return 0; return 1; }

# lines_at_least FILE TEXT N: at least N lines of FILE hold TEXT (a fixed string).
lines_at_least() { [ "$(grep -csF -- "$2" "$1")" -ge "$3" ] && return 0; return 1; }

# started NAME: the hopscope capture whose pid is in /tmp/hs.NAME.pid and whose stderr is
# $LAB_RESULTS/NAME.err said "capturing on"; gives up at once (fails the wait) if it exited.
started() {
    has "$LAB_RESULTS/$1.err" 'capturing on' && return 0
    kill -0 "$(cat "/tmp/hs.$1.pid")" 2>/dev/null || return 2
    return 1
}

# echoes_sent NETNS: how many ICMP echo requests NETNS has sent (/proc/net/snmp's OutEchos).
# echoes_above NETNS N: more than N.
echoes_sent() {
    ip netns exec "$1" awk '/^Icmp:/ { if (!c) { for (i = 1; i <= NF; i++) if ($i == "OutEchos") c = i } else { print $c; exit } }' /proc/net/snmp
}
echoes_above() { [ "$(echoes_sent "$1")" -gt "$2" ]; }

# listens NETNS PORT: a TCP socket listens on PORT in NETNS.
listens() { ip netns exec "$1" ss -ltn 2>/dev/null | grep -q ":$2 "; }

# dump_state NETNS FILE: the netns's configuration with no live counters, for before/after
# comparisons (read-only checks): ip -d link/addr, routes of every table and family, rules of
# both families, xfrm state/policy (no -s), iptables-legacy-save, tc qdisc.
dump_state() {
    local ns=$1 out=$2
    {
        # `ip -batch` saves process starts (~0.3 s each under TCG); "route show table all"
        # lists both families, the -6 run adds the IPv6 rules. iproute2 6.1's batch mode prints
        # only the first xfrm dump of a batch, hence xfrm policy on its own.
        printf '%s\n' "link show" "addr show" "route show table all" "rule show" "xfrm state" \
            | ip -d -n "$ns" -batch -
        ip -n "$ns" xfrm policy
        printf '%s\n' "route show table all" "rule show" | ip -6 -n "$ns" -batch -
        echo "### iptables-legacy-save (counters stripped)"
        ip netns exec "$ns" iptables-legacy-save | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[-]/'
        echo "### tc qdisc"
        tc -n "$ns" qdisc show
    } > "$out" 2>&1
}

# capture_start NETNS IFACE NAME [FILTER...]: tcpdump -l into $LAB_RESULTS/NAME.txt, returns once
# tcpdump is listening (slow to start under TCG). capture_stop NAME ends it.
capture_start() {
    local ns=$1 ifc=$2 name=$3; shift 3
    ip netns exec "$ns" tcpdump -l -pnei "$ifc" "$@" > "$LAB_RESULTS/$name.txt" 2> "$LAB_RESULTS/$name.err" &
    echo $! > "/tmp/capture.$name.pid"
    wait_for "tcpdump listening on $ns/$ifc" 120 has "$LAB_RESULTS/$name.err" 'listening on' && return 0
    cat "$LAB_RESULTS/$name.err" >&2
    return 1
}
# capture_stop NAME TEXT N: once N lines of the capture hold TEXT (tcpdump prints a packet only
# when the kernel hands over its block, and drops what is still queued when it stops), end it.
capture_stop() {
    local pid
    pid=$(cat "/tmp/capture.$1.pid")
    wait_for "$3 packets '$2' in capture $1" 60 lines_at_least "$LAB_RESULTS/$1.txt" "$2" "$3"
    kill -INT "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# snap NAME ARGS...: hopscope snapshot ARGS... > $LAB_RESULTS/NAME (stderr to NAME.err).
# $HOPSCOPE is the binary (the tests pass cargo's CARGO_BIN_EXE_hopscope).
snap() {
    local name=$1; shift
    "$HOPSCOPE" snapshot "$@" > "$LAB_RESULTS/$name" 2> "$LAB_RESULTS/$name.err"
    echo "$?" > "$LAB_RESULTS/$name.rc"
}

# trace NAME ARGS...: hopscope trace ARGS... > $LAB_RESULTS/NAME (stderr NAME.err, rc NAME.rc).
trace() {
    local name=$1; shift
    "$HOPSCOPE" trace "$@" > "$LAB_RESULTS/$name" 2> "$LAB_RESULTS/$name.err"
    echo "$?" > "$LAB_RESULTS/$name.rc"
}

# follow_pings NAME N TRACE-ARGS...: `hopscope trace --follow` over the lab's nodes while
# netshoot pings cni-worker2 N times (pings start once the captures are up).
follow_pings() {
    local name=$1 n=$2 pid; shift 2
    trace "$name" 10.0.1.52 10.0.0.249 --netns worker --netns worker2 --netns control-plane \
        --json --follow 12 "$@" &
    pid=$!
    # "following" is said once every capture is open (the handles are activated before it),
    # so the pings can start at once.
    wait_for "the trace to follow" 120 has "$LAB_RESULTS/$name.err" 'following for'
    ip netns exec netshoot ping -c "$n" -i 0.2 -W 1 10.0.0.249 > "$LAB_RESULTS/$name.ping" 2>&1
    wait "$pid"
}

# local_bin PATH: a copy of the binary PATH in the guest's tmpfs, debug info stripped, printed.
# Executing a 200 MB debug build straight from the 9p share costs ~3 s a run under TCG; the
# local copy ~0.5 s. Same code: only the debug sections are dropped (plain copy without strip).
local_bin() {
    local out
    out=/tmp/lab-bin/$(basename "$1")
    mkdir -p /tmp/lab-bin
    if command -v strip >/dev/null; then
        strip --strip-debug -o "$out" "$1"
    else
        cp "$1" "$out"
    fi && echo "$out"
}

# phase NAME: append "NAME <guest uptime>" to $LAB_RESULTS/phases (where a check spends time).
phase() {
    local up _
    read -r up _ < /proc/uptime
    echo "$1 $up" >> "$LAB_RESULTS/phases"
}
