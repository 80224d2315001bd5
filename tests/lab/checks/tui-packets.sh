#!/bin/bash
# tests/lab/checks/tui-packets.sh HOPSCOPE — guest side of tests/lab/tui_tests.rs: the TUI's
# Packets and Trace panes on worker, driven in tmux as a user would. Runs in the healthy boot
# and in the no-out-policy + wrong-key boot. Writes into $LAB_RESULTS:
#   packets.screen           :capture eth0 + the netshoot pod's lxc, d (decrypt), 5 pings
#                            netshoot (10.0.1.52) -> cni-worker2 (10.0.0.249)
#   packets-filtered.screen  /iface=eth0 request: the pod's requests as they leave on eth0
#   trace.screen             t on the newest of those: the flow's hops, followed during 5 more
#                            pings
#   *.ansi                   the same screens with colours (and the SAs and Links panes), for
#                            docs/screenshots (docs/screenshots/render.py makes PNGs)
#   exit                     EXIT=<hopscope's exit code> after q
set -u
HOPSCOPE=$1
R=$LAB_RESULTS
export TERM=xterm-256color
S=hs-tui-packets
t() { tmux -L "$S" -f /dev/null "$@"; }
# wait_screen PATTERN TRIES: poll the screen every 0.2 s.
wait_screen() {
    local i
    for i in $(seq "$2"); do
        t capture-pane -p 2>/dev/null | grep -q -- "$1" && return 0
        sleep 0.2
    done
    echo "tui-packets.sh: no $1 on screen" >&2
    t capture-pane -p >&2
    return 1
}
t new-session -d -x 220 -y 50 "$HOPSCOPE --netns worker --interval 1; echo EXIT=\$? > $R/exit; sleep 600"
wait_screen 'XFRM SAs' 300 || exit 1
t send-keys ':'
t send-keys -l 'capture eth0 lxcda1dd0af135e'
t send-keys Enter
wait_screen '● capture 2 if' 150 || exit 1
t send-keys d
wait_screen '· decrypt' 50 || exit 1
ip netns exec netshoot ping -c 5 -i 0.3 -W 1 10.0.0.249 > "$R/ping1.txt" 2>&1
sleep 2
t capture-pane -p > "$R/packets.screen"
t capture-pane -p -e > "$R/packets.ansi"   # with colours: docs/screenshots
t send-keys '/'
t send-keys -l 'iface=eth0 request'
t send-keys Enter
sleep 1
t capture-pane -p > "$R/packets-filtered.screen"
t send-keys t
wait_screen 'flow 10.0.1.52' 150 || exit 1
ip netns exec netshoot ping -c 5 -i 0.3 -W 1 10.0.0.249 > "$R/ping2.txt" 2>&1
sleep 2.5
t capture-pane -p > "$R/trace.screen"
t capture-pane -p -e > "$R/trace.ansi"
t send-keys 4
sleep 1.5
t capture-pane -p -e > "$R/sas.ansi"
t send-keys 1
sleep 1.5
t capture-pane -p -e > "$R/links.ansi"
t send-keys q
for i in $(seq 50); do [ -s "$R/exit" ] && break; sleep 0.2; done
t kill-server 2>/dev/null
exit 0
