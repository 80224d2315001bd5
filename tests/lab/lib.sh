# tests/lab/lib.sh — helpers for scripts that run inside the lab guest (source it).
# Everything writes into $LAB_RESULTS (the results dir on the shared fs) unless told otherwise.

# dump_state NETNS FILE: the netns's configuration with no live counters, for before/after
# comparisons (read-only checks). IPv6 and every table included.
dump_state() {
    local ns=$1 out=$2
    {
        for c in "-d link" "addr" "route show table all" "-6 route show table all" "rule" "-6 rule" \
                 "xfrm state" "xfrm policy"; do
            echo "### ip $c"
            # shellcheck disable=SC2086
            ip -n "$ns" $c
        done
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
