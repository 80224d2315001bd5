# tests/lab/variants/layouts.sh — the IPsec layouts of issue 14, each as its own netns pair
# beside the seed cluster (no shared link, address or mark with it, so they coexist in one boot).
# Sourced by cluster.sh; read by tests/lab/checks/layouts.sh and tests/lab_layouts.rs.
#
#   layouts-cilium   Cilium's node-ID layout, dual stack, during a key rotation, with the
#                    fail-closed catch-all. ly-ca (node ID 1 on the other side) and ly-cb (2):
#                    underlay 192.168.61.1/.2 and fd61::1/::2 on veth "eth0"; "pod" addresses
#                    10.61.1.1 / 10.61.2.1 and fd61:1::1 / fd61:2::1 on lo. Out SAs/policies
#                    mark 0x<ID>3e00/0xffffff00 (SPI 3) and 0x<ID>4e00/0xffffff00 (SPI 4, the
#                    rotation's second key), in SAs per source node 0x<ID>0d00/0xffff0f00 with
#                    output-mark 0xd00/0xffffff00; mangle marks stand in for bpf_lxc/bpf_host.
#                    Catch-all on ly-ca: `dir out action block mark 0xe00/0xf00`; traffic to
#                    10.61.9.0/24 is encrypt-marked (node ID 9) but has no per-node policy.
#   layouts-xfrmi    strongSwan-style route-based site-to-site: ly-xa/ly-xb, underlay
#                    192.168.62.1/.2, xfrm interface ipsec0 (if_id 42) on each, SAs and policies
#                    with if_id 42 (0.0.0.0/0 both ways), sites 10.62.1.0/24 / 10.62.2.0/24 routed
#                    into ipsec0 from table 220 (rule pref 220); cbc(aes) + hmac(sha256) 128.
#   layouts-natt     NAT traversal: ly-na (192.168.63.1) behind ly-nat (MASQUERADE from
#                    192.168.63.254 to 192.168.64.254) talks to ly-nb (192.168.64.2) with ESP in
#                    UDP 4500 (encap espinudp), rfc4106; a UDP_ENCAP socket on 4500 on both ends
#                    (what an IKE daemon holds open).
#   layouts-transport  ly-ta/ly-tb, 192.168.66.1/.2: transport-mode ESP cbc(aes) + hmac(sha1)
#                    96 for ICMP, transport-mode AH hmac(sha256) 128 for UDP.
#   layouts-vxlan    Cilium's tunnelling: ly-va/ly-vb, underlay 192.168.65.1/.2, cilium_vxlan
#                    (VNI 2, UDP 8472) with overlay 10.65.0.1/.2; the VXLAN packets between the
#                    node IPs are encrypted (ESP tunnel mode, rfc4106, SPI 5).
#   layouts-vti      VTI (ip_vti), marks via the device: ly-ia/ly-ib, underlay 192.168.67.1/.2,
#                    vti0 with okey 0x10 from ly-ia to ly-ib and 0x20 back (A's okey = B's ikey),
#                    SAs and policies marked with them, sites 10.67.1.1 / 10.67.2.1 on lo routed
#                    into vti0 from table 220; disable_policy on vti0 as strongSwan sets it.
#   layouts-vti-policy  the VTI pair again (ly-ja/ly-jb, 192.168.69.1/.2, sites 10.69.1.1 /
#                    10.69.2.1, okey 0x30 from ly-ja, 0x40 back) with disable_policy left off on
#                    vti0: the decrypted packets meet their policy check again, with mark 0 and
#                    no transform on record (the VTI scrubs them). The check script later adds
#                    an unmarked in policy on ly-jb that requires ESP (XfrmInTmplMismatch), and
#                    disable_xfrm on ly-ja's vti0 (its lookup skipped: tx carrier errors).
#   layouts-natt-mismatch  ESP in UDP with the port wrong on one side: ly-ma → ly-mb
#                    (192.168.68.1/.2); ly-ma's out SA sends to UDP 4501 while ly-mb's IKE socket
#                    (and its in SA) use 4500: the ESP reaches a closed UDP port (Udp NoPorts).

LY_MODULES="esp6 authenc echainiv ah4 xfrm_interface vxlan ip6table_mangle ip_vti"
LY_KEY_GCM=0x4a6f8b3c2d1e0f9a8b7c6d5e4f3a2b1c0d0e0f10
LY_KEY_CBC=0x00112233445566778899aabbccddeeff
LY_KEY_SHA256=0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
LY_KEY_SHA1=0x0123456789abcdef0123456789abcdef01234567

ly_modules() {
    [ -n "${LY_MODULES_LOADED:-}" ] && return 0
    lab-modprobe -a $LY_MODULES || { echo "layouts: modprobe $LY_MODULES failed" >&2; return 1; }
    LY_MODULES_LOADED=1
}

# ly_pair A B NET: netns A and B joined by a veth (eth0 on both), 192.168.NET.1/.2.
ly_pair() {
    local a=$1 b=$2 net=$3
    ip netns add "$a" && ip netns add "$b"
    ip link add eth0 netns "$a" type veth peer name eth0 netns "$b"
    ip -n "$a" -batch - <<EOF
link set lo up
link set eth0 address 02:00:c0:a8:$(printf %02x "$net"):01 up
addr add 192.168.$net.1/24 dev eth0
EOF
    ip -n "$b" -batch - <<EOF
link set lo up
link set eth0 address 02:00:c0:a8:$(printf %02x "$net"):02 up
addr add 192.168.$net.2/24 dev eth0
EOF
}

# ly_cilium_node NS ME PEER PEERID: one side of layouts-cilium (ME/PEER = 1 or 2; PEERID = this
# node's ID for the other: in its out marks and in its in SAs from it).
ly_cilium_node() {
    local ns=$1 me=$2 peer=$3 peerid=$4 spi fam u_me u_peer p_me p_peer
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.eth0.accept_dad=0
    {
        echo "addr add 10.61.$me.1/32 dev lo"
        echo "addr add fd61:$me::1/128 dev lo"
        echo "addr add fd61::$me/64 dev eth0 nodad"
        echo "route add 10.61.$peer.0/24 via 192.168.61.$peer dev eth0 src 10.61.$me.1"
        echo "route add fd61:$peer::/64 via fd61::$peer dev eth0 src fd61:$me::1"
        # no per-node policy for this one: the catch-all's business
        [ "$me" = 1 ] && echo "route add 10.61.9.0/24 via 192.168.61.$peer dev eth0 src 10.61.$me.1"
        for fam in 4 6; do
            if [ $fam = 4 ]; then
                u_me=192.168.61.$me u_peer=192.168.61.$peer p_me=10.61.$me.0/24 p_peer=10.61.$peer.0/24
            else
                u_me=fd61::$me u_peer=fd61::$peer p_me=fd61:$me::/64 p_peer=fd61:$peer::/64
            fi
            # rotation: SPI 4 (the new key) and SPI 3; traffic is marked for SPI 3
            for spi in 4 3; do
                printf 'xfrm state add src %s dst %s proto esp spi %s reqid 1 mode tunnel replay-window 0 mark 0x%04x%se00 mask 0xffffff00 output-mark 0xe00 mask 0xf00 aead rfc4106(gcm(aes)) %s 128\n' \
                    "$u_me" "$u_peer" "$spi" "$peerid" "$spi" "$LY_KEY_GCM"
                printf 'xfrm state add src %s dst %s proto esp spi %s reqid 1 mode tunnel replay-window 0 mark 0x%04x0d00 mask 0xffff0f00 output-mark 0xd00 mask 0xffffff00 aead rfc4106(gcm(aes)) %s 128\n' \
                    "$u_peer" "$u_me" "$spi" "$peerid" "$LY_KEY_GCM"
                printf 'xfrm policy add src %s dst %s dir out priority 0 mark 0x%04x%se00 mask 0xffffff00 tmpl src %s dst %s proto esp spi %s reqid 1 mode tunnel\n' \
                    "$p_me" "$p_peer" "$peerid" "$spi" "$u_me" "$u_peer" "$spi"
            done
            echo "xfrm policy add src $p_peer dst $p_me dir in priority 0 mark 0xd00 mask 0xf00 tmpl src $u_peer dst $u_me proto esp reqid 1 mode tunnel"
            echo "xfrm policy add src $p_peer dst $p_me dir fwd priority 2975 mark 0xd00 mask 0xf00 tmpl src $u_peer dst $u_me proto esp reqid 1 mode tunnel level use"
        done
        if [ "$me" = 1 ]; then
            echo "xfrm policy add src 0.0.0.0/0 dst 0.0.0.0/0 dir out priority 4294967295 action block mark 0xe00 mask 0xf00"
            echo "xfrm policy add src ::/0 dst ::/0 dir out priority 4294967295 action block mark 0xe00 mask 0xf00"
        fi
    } | ip -n "$ns" -batch -
    # bpf_lxc/bpf_host stand-ins: encrypt mark with the peer's node ID on the way out, the
    # decrypt mark with the source node's ID on ESP coming in.
    local t
    for t in iptables-legacy ip6tables-legacy; do
        if [ $t = iptables-legacy ]; then p_peer=10.61.$peer.0/24 u_peer=192.168.61.$peer
        else p_peer=fd61:$peer::/64 u_peer=fd61::$peer; fi
        ip netns exec "$ns" $t -t mangle -A OUTPUT -d "$p_peer" -m comment --comment "hopscope-lab: encrypt for node $peerid, key 3" \
            -j MARK --set-xmark "$(printf '0x%04x3e00' "$peerid")/0xffffff00"
        ip netns exec "$ns" $t -t mangle -A PREROUTING -p esp -s "$u_peer" -m comment --comment "hopscope-lab: decrypt, from node $peerid" \
            -j MARK --set-xmark "$(printf '0x%04x0d00' "$peerid")/0xffff0f00"
    done
    if [ "$me" = 1 ]; then
        ip netns exec "$ns" iptables-legacy -t mangle -A OUTPUT -d 10.61.9.0/24 -m comment --comment "hopscope-lab: encrypt for node 9 (no policy)" \
            -j MARK --set-xmark 0x00093e00/0xffffff00
    fi
}

variant_layouts_cilium() {
    ly_modules || return 1
    ly_pair ly-ca ly-cb 61
    # ly-ca knows ly-cb as node 2, ly-cb knows ly-ca as node 1 (node IDs are node-local)
    ly_cilium_node ly-ca 1 2 2 && ly_cilium_node ly-cb 2 1 1
}

variant_layouts_xfrmi() {
    ly_modules || return 1
    ly_pair ly-xa ly-xb 62
    local ns me peer
    for ns in ly-xa ly-xb; do
        if [ $ns = ly-xa ]; then me=1 peer=2; else me=2 peer=1; fi
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
        ip -n "$ns" -batch - <<EOF
link add ipsec0 type xfrm dev eth0 if_id 42
link set ipsec0 up
addr add 10.62.$me.1/24 dev lo
rule add pref 220 lookup 220
route add 10.62.$peer.0/24 dev ipsec0 src 10.62.$me.1 table 220
xfrm state add src 192.168.62.$me dst 192.168.62.$peer proto esp spi 0x$me$peer$me$peer reqid 7 mode tunnel if_id 42 enc cbc(aes) $LY_KEY_CBC auth-trunc hmac(sha256) $LY_KEY_SHA256 128
xfrm state add src 192.168.62.$peer dst 192.168.62.$me proto esp spi 0x$peer$me$peer$me reqid 7 mode tunnel if_id 42 enc cbc(aes) $LY_KEY_CBC auth-trunc hmac(sha256) $LY_KEY_SHA256 128
xfrm policy add src 0.0.0.0/0 dst 0.0.0.0/0 dir out if_id 42 tmpl src 192.168.62.$me dst 192.168.62.$peer proto esp reqid 7 mode tunnel
xfrm policy add src 0.0.0.0/0 dst 0.0.0.0/0 dir in if_id 42 tmpl src 192.168.62.$peer dst 192.168.62.$me proto esp reqid 7 mode tunnel
xfrm policy add src 0.0.0.0/0 dst 0.0.0.0/0 dir fwd if_id 42 tmpl src 192.168.62.$peer dst 192.168.62.$me proto esp reqid 7 mode tunnel
EOF
    done
}

# ly_encap_socket NS: hold a UDP socket on 4500 with UDP_ENCAP_ESPINUDP, as an IKE daemon does:
# without it the kernel treats ESP in UDP as plain UDP to a closed port.
ly_encap_socket() {
    # perl: in every Debian (perl-base), unlike python3. UDP_ENCAP = 100, ESPINUDP = 2.
    ip netns exec "$1" perl -MSocket -e '
        socket(S, PF_INET, SOCK_DGRAM, 17) or die "socket: $!";
        setsockopt(S, 17, 100, pack("i", 2)) or die "UDP_ENCAP: $!";
        bind(S, pack_sockaddr_in(4500, INADDR_ANY)) or die "bind: $!";
        $| = 1; print "ready\n"; sleep 100000;' > "/tmp/ly-encap-$1" 2>&1 &
    wait_for "the encap socket in $1" 120 has "/tmp/ly-encap-$1" ready && return 0
    echo "layouts: encap socket in $1 did not start: $(cat /tmp/ly-encap-$1)" >&2
    return 1
}

variant_layouts_natt() {
    ly_modules || return 1
    ip netns add ly-na && ip netns add ly-nat && ip netns add ly-nb
    ip link add eth0 netns ly-na type veth peer name inside netns ly-nat
    ip link add eth0 netns ly-nb type veth peer name outside netns ly-nat
    ip -n ly-nat -batch - <<EOF
link set lo up
link set inside up
link set outside up
addr add 192.168.63.254/24 dev inside
addr add 192.168.64.254/24 dev outside
EOF
    ip netns exec ly-nat sysctl -qw net.ipv4.ip_forward=1
    ip netns exec ly-nat iptables-legacy -t nat -A POSTROUTING -o outside -m comment --comment "hopscope-lab: the NAT" -j MASQUERADE
    ip -n ly-na -batch - <<EOF
link set lo up
link set eth0 address 02:00:c0:a8:3f:01 up
addr add 192.168.63.1/24 dev eth0
route add default via 192.168.63.254
xfrm state add src 192.168.63.1 dst 192.168.64.2 proto esp spi 0x6001 reqid 9 mode tunnel encap espinudp 4500 4500 0.0.0.0 aead rfc4106(gcm(aes)) $LY_KEY_GCM 128
xfrm state add src 192.168.64.2 dst 192.168.63.1 proto esp spi 0x6002 reqid 9 mode tunnel encap espinudp 4500 4500 0.0.0.0 aead rfc4106(gcm(aes)) $LY_KEY_GCM 128
xfrm policy add src 192.168.63.1/32 dst 192.168.64.2/32 proto icmp dir out tmpl src 192.168.63.1 dst 192.168.64.2 proto esp reqid 9 mode tunnel
xfrm policy add src 192.168.64.2/32 dst 192.168.63.1/32 proto icmp dir in tmpl src 192.168.64.2 dst 192.168.63.1 proto esp reqid 9 mode tunnel
EOF
    # ly-nb sees ly-na as the NAT's outside address.
    ip -n ly-nb -batch - <<EOF
link set lo up
link set eth0 address 02:00:c0:a8:40:02 up
addr add 192.168.64.2/24 dev eth0
route add 192.168.63.0/24 via 192.168.64.254
xfrm state add src 192.168.64.254 dst 192.168.64.2 proto esp spi 0x6001 reqid 9 mode tunnel encap espinudp 4500 4500 0.0.0.0 aead rfc4106(gcm(aes)) $LY_KEY_GCM 128
xfrm state add src 192.168.64.2 dst 192.168.64.254 proto esp spi 0x6002 reqid 9 mode tunnel encap espinudp 4500 4500 0.0.0.0 aead rfc4106(gcm(aes)) $LY_KEY_GCM 128
xfrm policy add src 192.168.63.1/32 dst 192.168.64.2/32 proto icmp dir in tmpl src 192.168.64.254 dst 192.168.64.2 proto esp reqid 9 mode tunnel
xfrm policy add src 192.168.64.2/32 dst 192.168.63.1/32 proto icmp dir out tmpl src 192.168.64.2 dst 192.168.64.254 proto esp reqid 9 mode tunnel
EOF
    ly_encap_socket ly-na && ly_encap_socket ly-nb
}

variant_layouts_transport() {
    ly_modules || return 1
    ly_pair ly-ta ly-tb 66
    local ns me peer
    for ns in ly-ta ly-tb; do
        if [ $ns = ly-ta ]; then me=1 peer=2; else me=2 peer=1; fi
        ip -n "$ns" -batch - <<EOF
xfrm state add src 192.168.66.$me dst 192.168.66.$peer proto esp spi 0x70$me$peer reqid 11 mode transport enc cbc(aes) $LY_KEY_CBC auth-trunc hmac(sha1) $LY_KEY_SHA1 96
xfrm state add src 192.168.66.$peer dst 192.168.66.$me proto esp spi 0x70$peer$me reqid 11 mode transport enc cbc(aes) $LY_KEY_CBC auth-trunc hmac(sha1) $LY_KEY_SHA1 96
xfrm state add src 192.168.66.$me dst 192.168.66.$peer proto ah spi 0x71$me$peer reqid 12 mode transport auth-trunc hmac(sha256) $LY_KEY_SHA256 128
xfrm state add src 192.168.66.$peer dst 192.168.66.$me proto ah spi 0x71$peer$me reqid 12 mode transport auth-trunc hmac(sha256) $LY_KEY_SHA256 128
xfrm policy add src 192.168.66.$me/32 dst 192.168.66.$peer/32 proto icmp dir out tmpl proto esp reqid 11 mode transport
xfrm policy add src 192.168.66.$peer/32 dst 192.168.66.$me/32 proto icmp dir in tmpl proto esp reqid 11 mode transport
xfrm policy add src 192.168.66.$me/32 dst 192.168.66.$peer/32 proto udp dir out tmpl proto ah reqid 12 mode transport
xfrm policy add src 192.168.66.$peer/32 dst 192.168.66.$me/32 proto udp dir in tmpl proto ah reqid 12 mode transport
EOF
    done
}

variant_layouts_vxlan() {
    ly_modules || return 1
    ly_pair ly-va ly-vb 65
    local ns me peer
    for ns in ly-va ly-vb; do
        if [ $ns = ly-va ]; then me=1 peer=2; else me=2 peer=1; fi
        ip -n "$ns" -batch - <<EOF
link add cilium_vxlan type vxlan id 2 local 192.168.65.$me remote 192.168.65.$peer dstport 8472 dev eth0
link set cilium_vxlan address 02:00:0a:41:00:0$me up
addr add 10.65.0.$me/24 dev cilium_vxlan
xfrm state add src 192.168.65.$me dst 192.168.65.$peer proto esp spi 5 reqid 1 mode tunnel aead rfc4106(gcm(aes)) $LY_KEY_GCM 128
xfrm state add src 192.168.65.$peer dst 192.168.65.$me proto esp spi 5 reqid 1 mode tunnel aead rfc4106(gcm(aes)) $LY_KEY_GCM 128
xfrm policy add src 192.168.65.$me/32 dst 192.168.65.$peer/32 proto udp dport 8472 dir out tmpl src 192.168.65.$me dst 192.168.65.$peer proto esp reqid 1 mode tunnel
xfrm policy add src 192.168.65.$peer/32 dst 192.168.65.$me/32 proto udp dport 8472 dir in tmpl src 192.168.65.$peer dst 192.168.65.$me proto esp reqid 1 mode tunnel
EOF
    done
}

# ly_vti_pair A B NET KEY_A KEY_B DISABLE_POLICY: a strongSwan-style VTI pair on 192.168.NET.x,
# sites 10.NET.{1,2}.1, A's okey KEY_A (= B's ikey) and B's KEY_B.
ly_vti_pair() {
    local a=$1 b=$2 net=$3 ka=$4 kb=$5 nopol=$6 ns me peer okey ikey
    ly_pair "$a" "$b" "$net"
    for ns in "$a" "$b"; do
        if [ "$ns" = "$a" ]; then me=1 peer=2 okey=$ka ikey=$kb; else me=2 peer=1 okey=$kb ikey=$ka; fi
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
        ip -n "$ns" -batch - <<EOF
link add vti0 type vti local 192.168.$net.$me remote 192.168.$net.$peer ikey $ikey okey $okey
link set vti0 up
addr add 10.$net.$me.1/32 dev lo
rule add pref 220 lookup 220
route add 10.$net.$peer.0/24 dev vti0 src 10.$net.$me.1 table 220
xfrm state add src 192.168.$net.$me dst 192.168.$net.$peer proto esp spi 0x$net$me$peer reqid 13 mode tunnel mark $okey aead rfc4106(gcm(aes)) $LY_KEY_GCM 128
xfrm state add src 192.168.$net.$peer dst 192.168.$net.$me proto esp spi 0x$net$peer$me reqid 13 mode tunnel mark $ikey aead rfc4106(gcm(aes)) $LY_KEY_GCM 128
xfrm policy add src 10.$net.$me.0/24 dst 10.$net.$peer.0/24 dir out mark $okey tmpl src 192.168.$net.$me dst 192.168.$net.$peer proto esp reqid 13 mode tunnel
xfrm policy add src 10.$net.$peer.0/24 dst 10.$net.$me.0/24 dir in mark $ikey tmpl src 192.168.$net.$peer dst 192.168.$net.$me proto esp reqid 13 mode tunnel
EOF
        ip netns exec "$ns" sysctl -qw "net.ipv4.conf.vti0.disable_policy=$nopol"
    done
}

variant_layouts_vti() {
    ly_modules || return 1
    ly_vti_pair ly-ia ly-ib 67 0x10 0x20 1
}

variant_layouts_vti_policy() {
    ly_modules || return 1
    ly_vti_pair ly-ja ly-jb 69 0x30 0x40 0
}

variant_layouts_natt_mismatch() {
    ly_modules || return 1
    ly_pair ly-ma ly-mb 68
    local ns me peer dport
    for ns in ly-ma ly-mb; do
        # the one wrong port: ly-ma's out SA sends to 4501
        if [ $ns = ly-ma ]; then me=1 peer=2 dport=4501; else me=2 peer=1 dport=4500; fi
        ip -n "$ns" -batch - <<EOF
xfrm state add src 192.168.68.$me dst 192.168.68.$peer proto esp spi 0x680$me reqid 14 mode tunnel encap espinudp 4500 $dport 0.0.0.0 aead rfc4106(gcm(aes)) $LY_KEY_GCM 128
xfrm state add src 192.168.68.$peer dst 192.168.68.$me proto esp spi 0x680$peer reqid 14 mode tunnel encap espinudp 4500 4500 0.0.0.0 aead rfc4106(gcm(aes)) $LY_KEY_GCM 128
xfrm policy add src 192.168.68.$me/32 dst 192.168.68.$peer/32 proto icmp dir out tmpl src 192.168.68.$me dst 192.168.68.$peer proto esp reqid 14 mode tunnel
xfrm policy add src 192.168.68.$peer/32 dst 192.168.68.$me/32 proto icmp dir in tmpl src 192.168.68.$peer dst 192.168.68.$me proto esp reqid 14 mode tunnel
EOF
    done
    ly_encap_socket ly-ma && ly_encap_socket ly-mb
}
