#!/bin/bash
# benches/record.sh — does `hopscope record` keep up where `hopscope capture -w` does, at what
# CPU, next to `tcpdump -w` on the same flood? And how fast is offline decryption (`capture -r`)
# next to tshark on the same pcap?
#
#   benches/record.sh [--rates "50000 100000 200000"] [--secs S] [--bin PATH] [--flood PATH]
#
# 1. A veth pair (benches/lib.sh); examples/flood.rs sends 106-byte UDP frames at each rate for
#    S seconds (default 5) into vb, dropped by iptables raw in B after the taps. At each rate,
#    one after the other on the same flood: `tcpdump -i vb -w FILE.pcap`, `capture -q -i vb -w
#    FILE.pcapng` and `record -q -i vb -o FILE.hsrec --netns B`. Per capturer: frames captured,
#    drops, CPU seconds (utime+stime of the process); then the ratios record/tcpdump and
#    record/capture CPU. The binaries are release builds (cargo build --release).
# 2. The lab's ESP frames (demo/seed.hsrec, worker's eth0; $HOPSCOPE_ESP_PCAP) repeated to ~100k
#    packets as pcap;
#    `capture -r -E …` and `tshark -o esp_sa…` decrypt it (output to /dev/null); wall seconds of
#    each and the ratio tshark/hopscope.
# Needs root, iproute2, iptables, tcpdump, tshark.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh
RATES="50000 100000 200000"
SECS=5
BIN="" FLOOD=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rates) RATES=$2; shift 2;;
        --secs) SECS=$2; shift 2;;
        --bin) BIN=$2; shift 2;;
        --flood) FLOOD=$2; shift 2;;
        *) echo "record.sh: unknown argument $1" >&2; exit 2;;
    esac
done
if [ -z "$BIN" ] || [ -z "$FLOOD" ]; then
    cargo build --release -q --bin hopscope --example flood
fi
T=${CARGO_TARGET_DIR:-target}/release
BIN=${BIN:-$T/hopscope}
FLOOD=${FLOOD:-$T/examples/flood}
W=$(mktemp -d)
A=hsrec-a-$$ B=hsrec-b-$$
trap 'veth_pair_del $A $B; rm -rf "$W"' EXIT
veth_pair "$A" "$B"
ip netns exec "$B" iptables -t raw -A PREROUTING -i vb -j DROP
MAC=$(ip -n "$B" -o link show vb | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/')

# cpu PID: utime+stime in seconds.
cpu() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$1/stat"; }

# one NAME CMD...: run CMD (in B) during a flood; prints "captured dropped cpu_s".
one() {
    local name=$1; shift
    ip netns exec "$B" "$@" 2> "$W/$name.err" &
    local pid=$!
    sleep 1.5
    ip netns exec "$A" "$FLOOD" --iface va --dst-mac "$MAC" --dst-ip 192.0.2.2 --dport 9 \
        --len 64 --rate "$rate" --secs "$SECS" > "$W/flood.$name"
    sleep 1
    local c; c=$(cpu "$pid")
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true
    echo "$c"
}

echo "record vs tcpdump -w and capture -w: ${SECS}s of 106-byte UDP frames per rate on a veth"
echo "(each capturer has its own flood, one after the other: frames are out of that run's sent)"
printf "%10s  %16s %8s %8s  %16s %8s %8s  %16s %8s %8s  %s\n" rate tcp-frames/sent tcp-drop tcp-cpu cap-frames/sent cap-drop cap-cpu rec-frames/sent rec-drop rec-cpu "cpu ratio rec/tcpdump rec/cap"
for rate in $RATES; do
    tcpu=$(one tcp tcpdump -Z root -n -i vb -B 4096 -w "$W/t.pcap")
    tframes=$(grep -Eo '^[0-9]+ packets captured' "$W/tcp.err" | grep -Eo '[0-9]+' || echo "?")
    tdrop=$(grep -Eo '^[0-9]+ packets dropped by (kernel|interface)' "$W/tcp.err" | awk '{s+=$1} END {print s+0}')
    ccpu=$(one cap "$BIN" capture -q -i vb -w "$W/c.pcapng")
    cframes=$(grep -Eo '[0-9]+ packets captured' "$W/cap.err" | grep -Eo '[0-9]+' || echo "?")
    cdrop=$(grep -Eo '[0-9]+ dropped by (kernel|interface|hopscope)' "$W/cap.err" | awk '{s+=$1} END {print s+0}')
    rcpu=$(one rec "$BIN" --no-kube record -q -i vb --netns "$B" -o "$W/r.hsrec" --limit 4096)
    rline=$(grep -E 'written to' "$W/rec.err" || true)
    rframes=$(echo "$rline" | grep -Eo '[0-9]+ frames' | grep -Eo '[0-9]+' || echo "?")
    rdrop=$(echo "$rline" | grep -Eo '[0-9]+ dropped' | grep -Eo '[0-9]+' || echo "?")
    ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/max(float(sys.argv[2]),0.01):.2f}')" "$1" "$2"; }
    sent() { grep -Eo '^sent [0-9]+' "$W/flood.$1" | grep -Eo '[0-9]+' || echo "?"; }
    printf "%10s  %16s %8s %8s  %16s %8s %8s  %16s %8s %8s  %s %s\n" "$rate" "$tframes/$(sent tcp)" "$tdrop" "$tcpu" \
        "$cframes/$(sent cap)" "$cdrop" "$ccpu" "$rframes/$(sent rec)" "$rdrop" "$rcpu" "$(ratio "$rcpu" "$tcpu")" "$(ratio "$rcpu" "$ccpu")"
done

echo
echo "offline ESP decryption: the lab's ESP frames repeated, hopscope capture -r vs tshark"
KEY3=0xd528e76e15ded4e1b417ea56f6c4633b7942b344
if [ ! -s "${HOPSCOPE_ESP_PCAP:-}" ]; then
    echo "(set HOPSCOPE_ESP_PCAP to the lab's ESP pcapng: HOPSCOPE_KEEP_PCAP=DIR cargo test --test record_offline writes DIR/lab.pcapng)"
    exit 0
fi
big=$W/big.pcap
python3 - "$HOPSCOPE_ESP_PCAP" "$big" <<'PY'
import sys
# pcapng → pcap: read EPBs (block type 6), write classic pcap records, repeated to ~100k.
d = open(sys.argv[1], 'rb').read()
pkts, i = [], 0
while i + 12 <= len(d):
    t, ln = int.from_bytes(d[i:i+4], 'little'), int.from_bytes(d[i+4:i+8], 'little')
    if t == 6:
        hi, lo = int.from_bytes(d[i+12:i+16], 'little'), int.from_bytes(d[i+16:i+20], 'little')
        cap, orig = int.from_bytes(d[i+20:i+24], 'little'), int.from_bytes(d[i+24:i+28], 'little')
        pkts.append((((hi << 32) | lo), orig, d[i+28:i+28+cap]))
    i += ln
out = open(sys.argv[2], 'wb')
out.write(bytes.fromhex('d4c3b2a1020004000000000000000000ffff000001000000'))
n = 0
while n < 100000:
    for ns, orig, data in pkts:
        us = ns // 1000
        out.write((us // 1000000).to_bytes(4, 'little') + (us % 1000000).to_bytes(4, 'little'))
        out.write(len(data).to_bytes(4, 'little') + orig.to_bytes(4, 'little') + data)
        n += 1
PY
n=$(tshark -r "$big" -T fields -e frame.number 2>/dev/null | wc -l)
sa() { echo "uat:esp_sa:\"IPv4\",\"*\",\"$1\",\"0x00000003\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"$KEY3\",\"NULL\",\"\""; }
# Wall and CPU seconds (user+sys) of each, best of 3: CPU is what a busy machine does not skew.
python3 - "$n" "$W/hs.err" -- "$BIN" capture -r "$big" -E "0x3@10.0.0.40 aes128-gcm:$KEY3,0x3@10.0.1.138 aes128-gcm:$KEY3" \
    -- tshark -n -r "$big" -o esp.enable_encryption_decode:TRUE -o "$(sa 10.0.0.40)" -o "$(sa 10.0.1.138)" <<'PY'
import os, resource, subprocess, sys, time
n, err = sys.argv[1], sys.argv[2]
i = sys.argv.index('--', 4)
hs, ts = sys.argv[4:i], sys.argv[i + 1:]
def run(cmd, stderr):
    best = None
    for _ in range(3):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.monotonic()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=stderr, check=True)
        w = time.monotonic() - w0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        best = (w, c) if best is None or c < best[1] else best
    return best
with open(err, 'w') as e:
    hw, hc = run(hs, e)
tw, tc = run(ts, subprocess.DEVNULL)
print(f"{n} packets: hopscope {hw:.2f} s wall {hc:.2f} s cpu, tshark {tw:.2f} s wall {tc:.2f} s cpu; "
      f"ratio tshark/hopscope cpu {tc / hc:.1f}, wall {tw / hw:.1f}")
PY
grep -E 'decrypted' "$W/hs.err" | tail -1
