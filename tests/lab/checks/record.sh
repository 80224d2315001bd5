#!/bin/bash
# tests/lab/checks/record.sh HOPSCOPE — tests/lab_record.rs: `hopscope record` on the real
# kernel, and what the kernel itself said over the same time. worker and worker2 are recorded
# (eth0) while netshoot (10.0.1.52, worker) pings cni-worker2 (10.0.0.249) 10 times;
# the recording is ended by SIGTERM. A second recorder of worker's eth0 with the capture filter
# `esp` runs over the same pings (esp.hsrec). Kept beside it: ping's own count, `ip -s xfrm state`
# before and after, and a live `snapshot --json` of worker afterwards.
set -u
. "$LAB_DIR/lib.sh"
HOPSCOPE=$(local_bin "$1")
R=$LAB_RESULTS
ip -n worker -s xfrm state > "$R/xs.before"
"$HOPSCOPE" --no-kube record -q -o "$R/lab.hsrec" --netns worker --netns worker2 -i eth0 \
    --duration 120 --limit 4 2> "$R/record.err" &
pid=$!
"$HOPSCOPE" --no-kube record -q -o "$R/esp.hsrec" --netns worker -i eth0 -f esp \
    --duration 120 --limit 4 2> "$R/record-esp.err" &
esp_pid=$!
# Frames before a recorder's "capturing on" line are not in its file: wait for both.
for err in record.err record-esp.err; do
    wait_for "$err: capturing on" 120 has "$R/$err" 'capturing on'
done
ip netns exec netshoot ping -c 10 -i 0.3 -W 2 10.0.0.249 > "$R/ping.out" 2>&1
sleep 2 # the recorder samples counters every second: two samples after the last ping (not visible from outside to wait for)
# The live TUI on worker beside the recording, as a user sees it: its Routes, Rules and
# Policies panes (live-*.screen; tests/lab_record.rs replays the file to the same screens).
export TERM=xterm-256color
S=hs-record-live
t() { tmux -L "$S" -f /dev/null "$@"; }
t new-session -d -x 160 -y 30 "$HOPSCOPE --no-kube --netns worker; sleep 600"
# drawn NAME HEAD: the pane's screen, saved, has HEAD's header on line 4 and a row under it.
drawn() {
    t capture-pane -p > "$R/live-$1.screen" 2>/dev/null
    sed -n 4p "$R/live-$1.screen" | grep -q "^$2 " && sed -n 5p "$R/live-$1.screen" | grep -q .
}
for pane in 2:TABLE:routes 3:PRIO:rules 5:DIR:policies; do
    IFS=: read -r key head name <<< "$pane"
    t send-keys "$key"
    # Saved once the pane's table is drawn (polled, not slept): line 4 is its header.
    wait_for "the live $name pane" 120 drawn "$name" "$head"
done
t kill-server
kill -TERM "$pid" "$esp_pid"
wait "$pid"
echo $? > "$R/record.rc"
wait "$esp_pid"
echo $? > "$R/record-esp.rc"
ip -n worker -s xfrm state > "$R/xs.after"
"$HOPSCOPE" --no-kube snapshot --json --netns worker > "$R/live.worker.json" 2> "$R/live.err"
ls -l "$R"
cat "$R/record.err" "$R/record-esp.err" "$R/ping.out"
