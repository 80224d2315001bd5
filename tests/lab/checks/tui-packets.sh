#!/bin/bash
# tests/lab/checks/tui-packets.sh HOPSCOPE — guest side of tests/lab/tui_tests.rs: the TUI's
# Packets and Trace panes on worker, driven in tmux as a user would. Runs in the healthy boot
# and in the no-out-policy + wrong-key boot. Writes into $LAB_RESULTS:
#   packets.screen           :capture eth0 + the netshoot pod's lxc, d (decrypt), 5 pings
#                            netshoot (10.0.1.52) -> cni-worker2 (10.0.0.249)
#   packets-filtered.screen  /iface=eth0 echo request 10.0.1.52: the pod's echo requests as they
#                            leave on eth0 (not the ARP requests a neighbour refresh also sends)
#   trace.screen             t on the newest of those: the flow's hops, followed during 5 more
#                            pings
#   *.ansi                   the same screens with colours (and the SAs and Links panes), for
#                            docs/screenshots (docs/screenshots/render.py makes PNGs)
#   exit                     EXIT=<hopscope's exit code> after q
# Every screen is saved once what it must show is there (polled), never after a fixed sleep: a
# slow or busy machine only takes longer.
set -u
# shellcheck disable=SC1091
. "$LAB_DIR/lib.sh"
HOPSCOPE=$1
R=$LAB_RESULTS
export TERM=xterm-256color
S=hs-tui-packets
t() { tmux -L "$S" -f /dev/null "$@"; }
screen() { t capture-pane -p 2>/dev/null; }
# wait_until WHAT SECONDS CMD...: wait_for CMD; if it never succeeds, show the screen too.
wait_until() {
    wait_for "$1 on screen" "$2" "${@:3}" && return 0
    screen >&2
    return 1
}
on_screen() { screen | grep -q -- "$1"; }
wait_screen() { wait_until "$1" "$2" on_screen "$1"; }
# stream_at_least IFACE WORD N: the number after WORD on IFACE's stream line (the Packets pane's
# head) is at least N.
stream_at_least() {
    local n
    n=$(screen | awk -v ifc="$1 " -v w="$2" '
        index($0, ifc) == 1 && /ESP/ && /plain/ {
            if (split($0, a, w) > 1) { split(a[2], b, " "); print b[1] + 0 } else print 0
            exit
        }')
    [ "${n:-0}" -ge "$3" ]
}
# rows_at_least N WORD...: at least N screen lines hold every WORD.
rows_at_least() {
    local n=$1
    shift
    local s
    s=$(screen)
    for w in "$@"; do s=$(printf '%s\n' "$s" | grep -F -- "$w"); done
    [ "$(printf '%s\n' "$s" | grep -c .)" -ge "$n" ]
}
# The eth0 hop of the Trace pane has seen at least N packets (✓ N).
eth0_hop_at_least() {
    local n
    n=$(screen | awk 'index($0, "✓") { for (i = 1; i <= NF; i++) if ($i == "eth0") {
        split($0, a, "✓"); split(a[2], b, " "); print b[1] + 0; exit } }')
    [ "${n:-0}" -ge "$1" ]
}
broken=false
case " ${LAB_VARIANTS:-} " in *" no-out-policy "*) broken=true ;; esac
# What the Packets pane shows once the 5 pings of a round are all in.
pings_in() {
    if $broken; then
        # Requests leave eth0 in plaintext (leaks); worker2's replies fail their ICV.
        stream_at_least eth0 LEAKS 5 && on_screen 'AUTH FAILED'
    else
        # eth0 decrypts every request and reply; the pod's lxc carries them in plaintext.
        stream_at_least eth0 decrypted 10 && stream_at_least lxcda1dd0af135e '│' 10
    fi
}

t new-session -d -x 220 -y 50 "$HOPSCOPE --netns worker --interval 1; echo EXIT=\$? > $R/exit; sleep 600"
wait_screen 'XFRM SAs' 240 || exit 1
t send-keys ':'
t send-keys -l 'capture eth0 lxcda1dd0af135e'
t send-keys Enter
wait_screen '● capture 2 if' 120 || exit 1
t send-keys d
wait_screen '· decrypt' 60 || exit 1
ip netns exec netshoot ping -c 5 -i 0.3 -W 1 10.0.0.249 > "$R/ping1.txt" 2>&1
wait_until 'the 5 pings in the Packets pane' 120 pings_in || exit 1
t capture-pane -p > "$R/packets.screen"
t capture-pane -p -e > "$R/packets.ansi"   # with colours: docs/screenshots
t send-keys '/'
t send-keys -l 'iface=eth0 echo request 10.0.1.52'
t send-keys Enter
wait_screen '/iface=eth0 echo request 10.0.1.52 ✓' 60 || exit 1
wait_until 'the filtered requests' 60 rows_at_least 5 eth0 '10.0.1.52 > 10.0.0.249: ICMP echo request' || exit 1
t capture-pane -p > "$R/packets-filtered.screen"
t send-keys t
wait_screen 'flow 10.0.1.52' 120 || exit 1
ip netns exec netshoot ping -c 5 -i 0.3 -W 1 10.0.0.249 > "$R/ping2.txt" 2>&1
wait_until 'the 5 new requests on the eth0 hop' 120 eth0_hop_at_least 5 || exit 1
$broken || wait_screen 'seen at every observable hop' 60 || exit 1
t capture-pane -p > "$R/trace.screen"
t capture-pane -p -e > "$R/trace.ansi"
t send-keys 4
wait_screen 'PKT/s' 60 || exit 1          # the SAs pane's live column
t capture-pane -p -e > "$R/sas.ansi"
t send-keys 1
wait_screen 'RX B/s' 60 || exit 1         # the Links pane's live column
t capture-pane -p -e > "$R/links.ansi"
t send-keys q
exited() { [ -s "$R/exit" ]; }
wait_for "the TUI to exit after q" 60 exited
t kill-server 2>/dev/null
exit 0
