# benches/lib.sh — sourced by the bench scripts (root, iproute2).

# veth_pair A B: two throwaway netns joined by a veth, A/va 192.0.2.1/24 <-> B/vb 192.0.2.2/24,
# both ends and both loopbacks up.
veth_pair() {
    ip netns add "$1"; ip netns add "$2"
    ip -n "$1" link add va type veth peer name vb netns "$2"
    ip -n "$1" addr add 192.0.2.1/24 dev va; ip -n "$2" addr add 192.0.2.2/24 dev vb
    ip -n "$1" link set va up; ip -n "$2" link set vb up
    ip -n "$1" link set lo up; ip -n "$2" link set lo up
}

# veth_pair_del A B: remove them again (for cleanup traps: never fails).
veth_pair_del() {
    ip netns del "$1" 2>/dev/null || true
    ip netns del "$2" 2>/dev/null || true
}
