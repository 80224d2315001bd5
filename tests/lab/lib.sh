# tests/lab/lib.sh — helpers for scripts that run inside the lab guest (source it).
# Everything writes into $LAB_RESULTS (the results dir on the shared fs) unless told otherwise.

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
    local i
    for i in $(seq 100); do
        grep -q 'listening on' "$LAB_RESULTS/$name.err" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "capture_start: tcpdump on $ns/$ifc did not start" >&2
    cat "$LAB_RESULTS/$name.err" >&2
    return 1
}
capture_stop() {
    local pid
    pid=$(cat "/tmp/capture.$1.pid")
    sleep 0.3            # let the last packets reach the file
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
    local name=$1 n=$2 pid i; shift 2
    trace "$name" 10.0.1.52 10.0.0.249 --netns worker --netns worker2 --netns control-plane \
        --json --follow 12 "$@" &
    pid=$!
    for i in $(seq 100); do
        grep -q '^following' "$LAB_RESULTS/$name.err" 2>/dev/null && break
        sleep 0.1
    done
    # "following" is said once the captures are asked for; under TCG the last of them can take
    # a second or more to open, so wait well inside the 12 s before the pings start.
    sleep 2
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
