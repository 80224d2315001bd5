#!/usr/bin/env python3
"""Writes the fuzz seed corpora (fuzz/corpus/<target>/) from real inputs: the lab recording in
demo/ (frames, ESP packets, records) and the netlink answers of this kernel for a scratch netns
(links, addresses, routes, rules, XFRM policies). The host kernel has no ESP, so the one XFRM
state seed is built by hand in the kernel's layout. Run as root: `python3 fuzz/seeds.py`."""
import os, socket, struct, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def records(path):
    d = open(path, "rb").read()
    head = d[: d.index(b"\n") + 1]
    i, recs = len(head), []
    while i + 8 <= len(d):
        n, _ = struct.unpack_from("<II", d, i)
        recs.append(d[i : i + 8 + n + 1])
        i += 8 + n + 1
    return head, recs


head, recs = records(os.path.join(ROOT, "demo", "seed.hsrec"))
frames = [r[9:] for r in recs if r[8] == 7]  # FRAME: iface u16, sec i64, nsec u32, len u32, data
datas = [f[18:] for f in frames]
esp = [x for x in datas if len(x) > 34 and x[12:14] == b"\x08\x00" and x[23] == 50]
plain = [x for x in datas if x not in esp]

# packet: selector 0 = Ethernet (the lab's interfaces), 3 = raw IP.
for n, x in enumerate(esp[:4] + plain[:6]):
    out("packet", f"lab-eth-{n}", b"\x00" + x)
    out("packet", f"lab-rawip-{n}", b"\x03" + x[14:])

# esp: the ESP header and payload of lab packets, under each cipher shape.
for n, x in enumerate(esp[:3]):
    ihl = (x[14] & 15) * 4
    for sel in (0, 3, 4):
        out("esp", f"lab-{n}-shape{sel}", bytes([sel]) + x[14 + ihl :])

# pcap_file: the lab frames as a classic pcap and as pcapng (selector 0 = text, 1 = JSON).
pcap = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)
for x in datas[:12]:
    pcap += struct.pack("<IIII", 1700000000, 5, len(x), len(x)) + x
out("pcap_file", "lab-nano.pcap", b"\x00" + pcap)
out("pcap_file", "lab-nano-json.pcap", b"\x01" + pcap)


def block(kind, body):
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n)


ng = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
ng += block(1, struct.pack("<HHI", 1, 0, 262144) + struct.pack("<HHB3x", 9, 1, 9) + b"\0" * 4)
for x in datas[:12]:
    ng += block(6, struct.pack("<IIIII", 0, 0, 5, len(x), len(x)) + x)
out("pcap_file", "lab.pcapng", b"\x00" + ng)

# recording: the start of the lab recording as a file (selector 1) and as checksummed bodies
# (selector 0: u16 length, body), the mode that reaches the record decoders.
kinds = {}
picked = []
for r in recs:
    if kinds.get(r[8], 0) < 2:
        kinds[r[8]] = kinds.get(r[8], 0) + 1
        picked.append(r)
out("recording", "lab-head", b"\x01" + head + b"".join(recs[:8]))
out("recording", "lab-kinds-raw", b"\x01" + head + b"".join(picked))
bodies = b"".join(struct.pack("<H", len(r) - 8) + r[8:] for r in picked if len(r) - 8 < 65536)
out("recording", "lab-kinds-bodies", b"\x00" + bodies)

# netlink: dump answers of a scratch netns, one recv() each.
NS = "hopscope-fuzz-seeds"
sh = lambda *a: subprocess.run(["ip", "-n", NS, *a], check=True)
subprocess.run(["ip", "netns", "add", NS], check=True)
try:
    sh("link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b")
    sh("link", "set", "veth-a", "up")
    sh("link", "set", "lo", "up")
    sh("addr", "add", "10.0.1.1/24", "dev", "veth-a")
    sh("addr", "add", "fd00::1/64", "dev", "veth-a")
    sh("route", "add", "10.9.0.0/16", "via", "10.0.1.2", "dev", "veth-a")
    sh("route", "add", "10.8.0.0/16", "dev", "veth-a", "table", "200", "mtu", "1400")
    sh("rule", "add", "fwmark", "0xe00/0xf00", "lookup", "200", "pref", "1")
    sh("xfrm", "policy", "add", "src", "10.0.1.0/24", "dst", "10.9.0.0/16", "dir", "out",
       "mark", "0x3e00", "mask", "0xff00", "tmpl", "src", "10.0.1.1", "dst", "10.0.1.2",
       "proto", "esp", "reqid", "1", "mode", "tunnel")
    fd = os.open(f"/run/netns/{NS}", os.O_RDONLY)
    import ctypes  # os.setns is Python 3.12+
    if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        sys.exit("setns failed")

    def dump(proto, kind, body):
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto)
        s.bind((0, 0))
        s.send(struct.pack("<IHHII", 16 + len(body), kind, 0x301, 7, 0) + body)
        batches = []
        while True:
            b = s.recv(65536)
            batches.append(b)
            t = struct.unpack_from("<H", b, 4)[0]
            if t in (2, 3) or not struct.unpack_from("<H", b, 6)[0] & 2:
                break
            if any(struct.unpack_from("<H", b, o + 4)[0] == 3 for o in offsets(b)):
                break
        return batches

    def offsets(b):
        o = 0
        while o + 16 <= len(b):
            yield o
            o += (struct.unpack_from("<I", b, o)[0] + 3) & ~3 or len(b)

    rt = [("links", 18, struct.pack("<BxHiII", 0, 0, 0, 0, 0)),
          ("addrs", 22, struct.pack("<BBBBi", 0, 0, 0, 0, 0)),
          ("routes4", 26, struct.pack("<BBBBBBBBI", 2, 0, 0, 0, 0, 0, 0, 0, 0)),
          ("routes6", 26, struct.pack("<BBBBBBBBI", 10, 0, 0, 0, 0, 0, 0, 0, 0)),
          ("rules", 34, struct.pack("<BBBBBBBBI", 2, 0, 0, 0, 0, 0, 0, 0, 0))]
    for name, kind, body in rt:
        for n, b in enumerate(dump(socket.NETLINK_ROUTE, kind, body)):
            # netlink_batch selector: seq 7 (<<2), multipart (1), rtnetlink (bit 1 clear)
            out("netlink_batch", f"{name}-{n}", bytes([7 << 2 | 1]) + b)
            for m, o in enumerate(offsets(b)):
                ln = struct.unpack_from("<I", b, o)[0]
                if struct.unpack_from("<H", b, o + 4)[0] > 3 and m < 4:
                    out("monitor", f"{name}-{n}-{m}", b"\x00" + b[o : o + ln])
    for n, b in enumerate(dump(socket.NETLINK_XFRM, 21, b"")):  # XFRM_MSG_GETPOLICY
        out("netlink_batch", f"xfrm-policies-{n}", bytes([7 << 2 | 3]) + b)
        for m, o in enumerate(offsets(b)):
            ln = struct.unpack_from("<I", b, o)[0]
            if struct.unpack_from("<H", b, o + 4)[0] > 3:
                out("monitor", f"xfrm-policies-{n}-{m}", b"\x01" + b[o : o + ln])
finally:
    subprocess.run(["ip", "netns", "del", NS])

# An XFRM SA as the kernel sends it (XFRM_MSG_NEWSA, rfc4106 AEAD), in xfrm_usersa_info's layout.
sel = struct.pack("<16s16sHHHHHBBB3xiI", socket.inet_aton("10.0.1.0"), socket.inet_aton("10.9.0.0"),
                  0, 0, 0, 0, 2, 24, 16, 0, 0, 0)
xid = struct.pack("<16sIB3x", socket.inet_aton("10.0.1.2"), socket.htonl(0x3), 50)
info = sel + xid + struct.pack("<16s", socket.inet_aton("10.0.1.1")) + struct.pack("<8Q", *[2**64 - 1] * 4, 0, 0, 0, 0)
info += struct.pack("<4Q", 0, 0, 0, 0) + struct.pack("<III", 0, 0, 0) + struct.pack("<IIHBBB7x", 0, 1, 2, 1, 0, 0)
assert len(info) == 224, len(info)
key = bytes(range(1, 21))
aead = struct.pack("<64sII", b"rfc4106(gcm(aes))", 160, 128) + key
attr = struct.pack("<HH", 4 + len(aead), 18) + aead
attr += b"\0" * (-len(attr) % 4)
msg = struct.pack("<IHHII", 16 + len(info) + len(attr), 16, 2, 7, 0) + info + attr
out("netlink_batch", "xfrm-sa", bytes([7 << 2 | 3]) + msg + struct.pack("<IHHIIi", 20, 3, 2, 7, 0, 0))
out("monitor", "xfrm-sa", b"\x01" + msg)
# IPVS over generic netlink (family id 0x22 here; the kernel assigns it): a virtual service
# tcp 10.96.0.50:80 rr, a real server 10.0.1.103:80 Masq weight 1, then DONE. Selector: bit 7
# (generic), seq 7 (<<2), multipart (1), IPVS (bit 1 clear).
def nla(kind, v):
    b = struct.pack("<HH", 4 + len(v), kind) + v
    return b + b"\0" * (-len(b) % 4)
def genl(cmd, attrs):
    return struct.pack("<IHHII", 20 + len(attrs), 0x22, 2, 7, 0) + bytes([cmd, 1, 0, 0]) + attrs
v4 = lambda a: socket.inet_aton(a) + b"\0" * 12
svc = genl(1, nla(1, nla(1, struct.pack("<H", 2)) + nla(2, struct.pack("<H", 6)) + nla(3, v4("10.96.0.50"))
                   + nla(4, struct.pack(">H", 80)) + nla(6, b"rr\0")))
dst = genl(5, nla(2, nla(1, v4("10.0.1.103")) + nla(2, struct.pack(">H", 80)) + nla(3, struct.pack("<I", 0))
                   + nla(4, struct.pack("<I", 1)) + nla(7, struct.pack("<I", 0)) + nla(8, struct.pack("<I", 2))))
done = struct.pack("<IHHIIi", 20, 3, 2, 7, 0, 0)
out("netlink_batch", "ipvs-service-dest", bytes([0x80 | 7 << 2 | 1]) + svc + dst + done)
print("seeds written", file=sys.stderr)
