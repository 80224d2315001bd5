//! Frame bytes → a packet summary: link (Ethernet, Linux cooked SLL/SLL2, raw IP) → IPv4/IPv6 →
//! TCP/UDP/ICMP/ICMPv6/ESP (also ESP in UDP 4500)/AH, and VXLAN (UDP 8472, Cilium's, or 4789)
//! down to the frame it carries. Pure, no I/O, never panics: whatever cannot be read ends the
//! decoding with a `Malformed` note beside the fields that could be read.
//!
//! IP and transport headers are sliced by `etherparse` (lax mode, so a truncated capture still
//! yields its outer headers); link headers, ARP, ESP, AH and VXLAN are read here.

use etherparse::{EtherType, Icmpv4Type, Icmpv6Type, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use serde::Serialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;

/// The link-layer header types hopscope reads (libpcap DLT numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkType {
    Ethernet,
    /// DLT_LINUX_SLL (113): `-i any` on most libpcap versions.
    LinuxSll,
    /// DLT_LINUX_SLL2 (276): `-i any` on libpcap ≥ 1.10 when asked for it.
    LinuxSll2,
    /// DLT_RAW (12 or 101) / DLT_IPV4 (228) / DLT_IPV6 (229): tun, xfrm and ipip devices.
    RawIp,
    /// Anything else: shown by length only.
    Other(i32),
}

impl LinkType {
    pub fn from_dlt(dlt: i32) -> LinkType {
        match dlt {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            12 | 14 | 101 | 228 | 229 => LinkType::RawIp,
            d => LinkType::Other(d),
        }
    }
    /// The pcap/pcapng LINKTYPE_ value (DLT_RAW is written as LINKTYPE_RAW 101).
    pub fn linktype(self) -> u16 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::RawIp => 101,
            LinkType::Other(d) => d as u16,
        }
    }
}

/// Which way a packet crossed the interface, when the frame tells (cooked captures) or the
/// caller can tell (source MAC = the interface's own MAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
    Unknown,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Unknown => "?",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_mac: Option<Mac>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_mac: Option<Mac>,
    pub ethertype: u16,
    /// The kernel's packet type in cooked captures (0 host, 1 broadcast, 2 multicast,
    /// 3 other host, 4 outgoing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkttype: Option<u16>,
    /// SLL2 only: the interface index the packet was seen on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next().ok_or_else(|| format!("bad MAC {s:?}"))?;
            *b = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC {s:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("bad MAC {s:?}"));
        }
        Ok(Mac(out))
    }
}

/// The IP layer as read from its header (lengths are the header's, not the captured bytes').
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport protocol number (after IPv6 extension headers).
    pub proto: u8,
    pub ttl: u8,
    /// Total length of the IP packet by its header (IPv4 total length; IPv6 40 + payload length).
    pub total_len: u32,
    /// Length of what follows the IP header(s), by the header.
    pub payload_len: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fragment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "proto", rename_all = "snake_case")]
pub enum Transport {
    Icmp {
        #[serde(rename = "icmp_type")]
        ty: u8,
        code: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u16>,
        /// ICMP message length (header included), as tcpdump's "length".
        len: u32,
    },
    Icmp6 {
        #[serde(rename = "icmp_type")]
        ty: u8,
        code: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u16>,
        len: u32,
    },
    Tcp {
        sport: u16,
        dport: u16,
        flags: TcpFlags,
        seq: u32,
        ack: u32,
        win: u16,
        /// Payload bytes by the IP header's length.
        len: u32,
    },
    Udp {
        sport: u16,
        dport: u16,
        len: u32,
    },
    Esp(EspHeader),
    /// AH (RFC 4302): integrity only. Shown, not verified.
    Ah {
        spi: u32,
        seq: u32,
        /// The protocol AH protects (4/41 in tunnel mode, else the transport protocol).
        next_header: u8,
        /// AH header length in bytes (ICV included).
        ah_len: u32,
    },
    /// VXLAN (RFC 7348) in UDP: the network identifier and the Ethernet frame it carries.
    Vxlan {
        sport: u16,
        dport: u16,
        vni: u32,
        inner: Box<Decoded>,
    },
    Arp {
        op: u16,
        sender: Option<Ipv4Addr>,
        target: Option<Ipv4Addr>,
        /// The sender's hardware address (what a reply says the address "is-at").
        #[serde(skip_serializing_if = "Option::is_none")]
        sender_mac: Option<Mac>,
    },
    /// An IP protocol or ethertype we do not decode further.
    Other {
        #[serde(skip_serializing_if = "Option::is_none")]
        ip_proto: Option<u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ethertype: Option<u16>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

impl fmt::Display for TcpFlags {
    /// tcpdump's notation: `[S]`, `[S.]`, `[P.]`, `[F.]`, `[.]`, `[R]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        for (bit, c) in [
            (Self::FIN, 'F'),
            (Self::SYN, 'S'),
            (Self::RST, 'R'),
            (Self::PSH, 'P'),
            (Self::URG, 'U'),
            (Self::ECE, 'E'),
            (Self::CWR, 'W'),
        ] {
            if self.0 & bit != 0 {
                s.push(c);
            }
        }
        if self.0 & Self::ACK != 0 {
            s.push('.');
        }
        if s.is_empty() {
            s.push_str("none");
        }
        write!(f, "[{s}]")
    }
}

/// The clear part of an ESP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct EspHeader {
    pub spi: u32,
    pub seq: u32,
    /// ESP length as tcpdump prints it: the IP payload length (SPI .. ICV).
    pub len: u32,
    /// ESP in UDP (RFC 3948, NAT traversal): the UDP ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_encap: Option<(u16, u16)>,
}

/// Where decoding stopped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Malformed {
    /// The layer that could not be read ("ethernet", "ipv4", "tcp", "esp", ...).
    pub layer: &'static str,
    pub why: String,
}

/// What identifies a packet wherever one is matched: against an XFRM selector (the leak
/// check), against a predicted hop (following a trace), as the flow a packet row starts a trace
/// for. One type, so the four places agree on what "the same packet" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport protocol number.
    pub proto: u8,
    /// TCP/UDP (source, destination) ports.
    pub ports: Option<(u16, u16)>,
    /// The SPI of an ESP packet.
    pub spi: Option<u32>,
}

impl PacketKey {
    /// The key of an IP header alone: no ports, no SPI.
    pub fn of_ip(ip: &IpInfo) -> PacketKey {
        PacketKey {
            src: ip.src,
            dst: ip.dst,
            proto: ip.proto,
            ports: None,
            spi: None,
        }
    }

    /// The reply's key: addresses and ports swapped.
    pub fn reversed(self) -> PacketKey {
        PacketKey {
            src: self.dst,
            dst: self.src,
            ports: self.ports.map(|(s, d)| (d, s)),
            ..self
        }
    }
}

/// Everything read from one frame. Fields are filled from the outside in; `malformed` says
/// where reading stopped. `esp` is the byte range of the ESP packet (SPI to end) within the
/// frame, for decryption; `ip` the range of the (outermost) IP packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decoded {
    pub link: Option<LinkInfo>,
    pub ip: Option<IpInfo>,
    pub transport: Option<Transport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed: Option<Malformed>,
    #[serde(skip)]
    pub ip_range: Option<Range<usize>>,
    #[serde(skip)]
    pub esp_range: Option<Range<usize>>,
    /// How many tunnels (VXLAN) this packet is inside: bounded against crafted input.
    #[serde(skip)]
    depth: u8,
}

impl Decoded {
    fn empty() -> Decoded {
        Decoded {
            link: None,
            ip: None,
            transport: None,
            malformed: None,
            ip_range: None,
            esp_range: None,
            depth: 0,
        }
    }
    fn stop(mut self, layer: &'static str, why: impl Into<String>) -> Decoded {
        self.malformed = Some(Malformed {
            layer,
            why: why.into(),
        });
        self
    }
    /// The ESP header of this packet, or of the one a VXLAN tunnel in it carries.
    pub fn esp(&self) -> Option<&EspHeader> {
        match &self.transport {
            Some(Transport::Esp(e)) => Some(e),
            Some(Transport::Vxlan { inner, .. }) => inner.esp(),
            _ => None,
        }
    }
    /// The IP header that carries the ESP (the outer one, or the one inside VXLAN).
    pub fn esp_ip(&self) -> Option<&IpInfo> {
        match &self.transport {
            Some(Transport::Esp(_)) => self.ip.as_ref(),
            Some(Transport::Vxlan { inner, .. }) => inner.esp_ip(),
            _ => None,
        }
    }
    pub fn is_esp(&self) -> bool {
        self.esp().is_some()
    }
    /// TCP or UDP ports (source, destination) of the outermost transport header.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.transport {
            Some(Transport::Tcp { sport, dport, .. })
            | Some(Transport::Udp { sport, dport, .. }) => Some((sport, dport)),
            _ => None,
        }
    }
    /// The packet's key, by its outermost IP header (None without one); the SPI is that of
    /// the ESP it carries, inside VXLAN too.
    pub fn key(&self) -> Option<PacketKey> {
        Some(PacketKey {
            ports: self.ports(),
            spi: self.esp().map(|e| e.spi),
            ..PacketKey::of_ip(self.ip.as_ref()?)
        })
    }
    /// Direction the frame itself tells: cooked captures carry the kernel's packet type.
    pub fn direction_hint(&self) -> Direction {
        match self.link.as_ref().and_then(|l| l.pkttype) {
            Some(4) => Direction::Out,
            Some(0..=3) => Direction::In,
            _ => Direction::Unknown,
        }
    }
}

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
pub const IPPROTO_ESP: u8 = 50;
pub const IPPROTO_AH: u8 = 51;
pub const NAT_T_PORT: u16 = 4500;
/// VXLAN's IANA port and Cilium's (the Linux default before IANA assigned one).
pub const VXLAN_PORTS: [u16; 2] = [4789, 8472];
/// Tunnels in tunnels: how many VXLAN layers are decoded before giving up (fuzzed input).
const MAX_VXLAN_DEPTH: usize = 4;

/// Decode one captured frame of link type `link`.
pub fn decode(link: LinkType, frame: &[u8]) -> Decoded {
    let d = Decoded::empty();
    match link {
        LinkType::Ethernet => decode_ethernet(d, frame),
        LinkType::LinuxSll => decode_sll(d, frame),
        LinkType::LinuxSll2 => decode_sll2(d, frame),
        LinkType::RawIp => match frame.first().map(|b| b >> 4) {
            Some(4) => decode_l3(d, ETH_P_IPV4, frame, 0),
            Some(6) => decode_l3(d, ETH_P_IPV6, frame, 0),
            Some(v) => d.stop("ip", format!("IP version {v}")),
            None => d.stop("ip", "empty frame"),
        },
        LinkType::Other(dlt) => d.stop("link", format!("link type {dlt} is not decoded")),
    }
}

/// Decode a bare IP packet (e.g. the inner packet of tunnel-mode ESP).
pub fn decode_ip(packet: &[u8]) -> Decoded {
    decode(LinkType::RawIp, packet)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    Mac(m)
}

fn decode_ethernet(mut d: Decoded, f: &[u8]) -> Decoded {
    if f.len() < 14 {
        return d.stop(
            "ethernet",
            format!("{} bytes, an Ethernet header needs 14", f.len()),
        );
    }
    let mut ethertype = be16(f, 12);
    let mut off = 14;
    // VLAN tags (802.1Q / QinQ): skip them, keep the inner ethertype.
    while matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD) {
        if f.len() < off + 4 {
            d.link = Some(LinkInfo {
                src_mac: Some(mac_at(f, 6)),
                dst_mac: Some(mac_at(f, 0)),
                ethertype,
                pkttype: None,
                ifindex: None,
            });
            return d.stop("vlan", "truncated VLAN tag");
        }
        ethertype = be16(f, off + 2);
        off += 4;
    }
    d.link = Some(LinkInfo {
        src_mac: Some(mac_at(f, 6)),
        dst_mac: Some(mac_at(f, 0)),
        ethertype,
        pkttype: None,
        ifindex: None,
    });
    decode_l3(d, ethertype, f, off)
}

/// SLL: pkttype(2) arphrd(2) addrlen(2) addr(8) protocol(2) = 16 bytes.
fn decode_sll(mut d: Decoded, f: &[u8]) -> Decoded {
    if f.len() < 16 {
        return d.stop(
            "linux_sll",
            format!("{} bytes, an SLL header needs 16", f.len()),
        );
    }
    let addr_len = usize::from(be16(f, 4)).min(8);
    let src_mac = (addr_len == 6).then(|| mac_at(f, 6));
    let proto = be16(f, 14);
    d.link = Some(LinkInfo {
        src_mac,
        dst_mac: None,
        ethertype: proto,
        pkttype: Some(be16(f, 0)),
        ifindex: None,
    });
    decode_l3(d, proto, f, 16)
}

/// SLL2: protocol(2) reserved(2) ifindex(4) arphrd(2) pkttype(1) addrlen(1) addr(8) = 20 bytes.
fn decode_sll2(mut d: Decoded, f: &[u8]) -> Decoded {
    if f.len() < 20 {
        return d.stop(
            "linux_sll2",
            format!("{} bytes, an SLL2 header needs 20", f.len()),
        );
    }
    let proto = be16(f, 0);
    let src_mac = (f[11] == 6).then(|| mac_at(f, 12));
    d.link = Some(LinkInfo {
        src_mac,
        dst_mac: None,
        ethertype: proto,
        pkttype: Some(u16::from(f[10])),
        ifindex: Some(be32(f, 4)),
    });
    decode_l3(d, proto, f, 20)
}

fn decode_l3(mut d: Decoded, ethertype: u16, f: &[u8], off: usize) -> Decoded {
    let payload = &f[off.min(f.len())..];
    match ethertype {
        ETH_P_ARP => decode_arp(d, payload),
        ETH_P_IPV4 | ETH_P_IPV6 => {
            let pkt = LaxSlicedPacket::from_ether_type(EtherType(ethertype), payload);
            d = read_ip(d, &pkt, f, off);
            if d.ip.is_none() && d.malformed.is_none() {
                let why = match &pkt.stop_err {
                    Some((e, _)) => e.to_string(),
                    None => "no IP header".into(),
                };
                let layer = if ethertype == ETH_P_IPV4 {
                    "ipv4"
                } else {
                    "ipv6"
                };
                return d.stop(layer, why);
            }
            d
        }
        other => {
            d.transport = Some(Transport::Other {
                ip_proto: None,
                ethertype: Some(other),
            });
            d
        }
    }
}

fn decode_arp(mut d: Decoded, p: &[u8]) -> Decoded {
    if p.len() < 8 {
        return d.stop("arp", format!("{} bytes, an ARP header needs 8", p.len()));
    }
    let (hlen, plen) = (usize::from(p[4]), usize::from(p[5]));
    let op = be16(p, 6);
    let ip_at = |at: usize| {
        (plen == 4 && p.len() >= at + 4)
            .then(|| Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]))
    };
    let sender = ip_at(8 + hlen);
    let target = ip_at(8 + 2 * hlen + plen);
    let sender_mac = (hlen == 6 && p.len() >= 14).then(|| {
        let mut m = [0u8; 6];
        m.copy_from_slice(&p[8..14]);
        Mac(m)
    });
    d.transport = Some(Transport::Arp {
        op,
        sender,
        target,
        sender_mac,
    });
    if plen == 4 && (sender.is_none() || target.is_none()) {
        return d.stop("arp", "truncated ARP addresses");
    }
    d
}

fn layer_name(l: etherparse::err::Layer) -> &'static str {
    use etherparse::err::Layer as L;
    match l {
        L::Ipv4Header | L::Ipv4Packet => "ipv4",
        L::Ipv6Header | L::Ipv6Packet | L::Ipv6ExtHeader => "ipv6",
        L::IpHeader => "ip",
        L::TcpHeader => "tcp",
        L::UdpHeader => "udp",
        L::Icmpv4 | L::Icmpv4Timestamp | L::Icmpv4TimestampReply => "icmp",
        L::Icmpv6 => "icmp6",
        _ => "ip",
    }
}

/// The IP layer and what it carries: the header, then (unless fragmented) AH, ESP, or the
/// transport header etherparse sliced.
fn read_ip(mut d: Decoded, pkt: &LaxSlicedPacket<'_>, f: &[u8], off: usize) -> Decoded {
    let Some(IpLayer {
        ip,
        payload,
        fragmented,
        ah,
    }) = ip_layer(pkt)
    else {
        return d;
    };
    let payload_start = offset_in(f, payload).unwrap_or(f.len());
    let ip_end = (off + ip.total_len as usize)
        .min(f.len())
        .max(payload_start);
    d.ip_range = Some(off..ip_end);
    let proto = ip.proto;
    let payload_len = ip.payload_len;
    d.ip = Some(ip);

    if fragmented {
        d.transport = Some(Transport::Other {
            ip_proto: Some(proto),
            ethertype: None,
        });
        return d;
    }
    if let Some(ah) = ah {
        d.transport = Some(ah);
        return d;
    }
    match proto {
        IPPROTO_AH => read_ah(d, payload),
        IPPROTO_ESP => read_esp(d, payload, payload_len, payload_start),
        _ => read_transport(d, pkt, f, proto, payload_len),
    }
}

/// An IP header as read, and what follows it.
struct IpLayer<'a> {
    ip: IpInfo,
    payload: &'a [u8],
    fragmented: bool,
    /// AH, which etherparse reads as an IP extension header: it is the transport shown.
    ah: Option<Transport>,
}

fn ip_layer<'a>(pkt: &LaxSlicedPacket<'a>) -> Option<IpLayer<'a>> {
    let ah_of = |a: &etherparse::IpAuthHeaderSlice<'_>| Transport::Ah {
        spi: a.spi(),
        seq: a.sequence_number(),
        next_header: a.next_header().0,
        ah_len: a.slice().len() as u32,
    };
    Some(match &pkt.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let hlen = u32::from(h.ihl()) * 4;
            let total = u32::from(h.total_len());
            let frag = v4.is_payload_fragmented();
            IpLayer {
                ip: IpInfo {
                    src: IpAddr::V4(h.source_addr()),
                    dst: IpAddr::V4(h.destination_addr()),
                    proto: v4.payload().ip_number.0,
                    ttl: h.ttl(),
                    total_len: total,
                    payload_len: total.saturating_sub(hlen),
                    fragment: frag,
                },
                payload: v4.payload().payload,
                fragmented: frag,
                ah: v4.extensions().auth.as_ref().map(ah_of),
            }
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let plen = u32::from(h.payload_length());
            let ext = v6.extensions().slice().len() as u32;
            let frag = v6.is_payload_fragmented();
            IpLayer {
                ip: IpInfo {
                    src: IpAddr::V6(h.source_addr()),
                    dst: IpAddr::V6(h.destination_addr()),
                    proto: v6.payload().ip_number.0,
                    ttl: h.hop_limit(),
                    total_len: 40 + plen,
                    payload_len: plen.saturating_sub(ext),
                    fragment: frag,
                },
                payload: v6.payload().payload,
                fragmented: frag,
                ah: v6_auth_header(h.next_header().0, v6.extensions().slice()).map(|a| ah_of(&a)),
            }
        }
        _ => return None,
    })
}

/// ESP is not decoded by etherparse: its clear part is 8 bytes (SPI, sequence number).
fn read_esp(mut d: Decoded, esp: &[u8], payload_len: u32, start: usize) -> Decoded {
    if esp.len() < 8 {
        return d.stop(
            "esp",
            format!("{} bytes captured, the ESP header needs 8", esp.len()),
        );
    }
    d.transport = Some(Transport::Esp(EspHeader {
        spi: be32(esp, 0),
        seq: be32(esp, 4),
        len: payload_len,
        udp_encap: None,
    }));
    d.esp_range = Some(start..(start + esp.len()));
    d
}

/// TCP, UDP (with ESP in UDP and VXLAN inside), ICMP and ICMPv6, as etherparse sliced them.
fn read_transport(
    mut d: Decoded,
    pkt: &LaxSlicedPacket<'_>,
    f: &[u8],
    proto: u8,
    payload_len: u32,
) -> Decoded {
    let t = match &pkt.transport {
        Some(TransportSlice::Tcp(t)) => tcp(t, payload_len),
        Some(TransportSlice::Udp(u)) => return read_udp(d, pkt, u, f, payload_len),
        Some(TransportSlice::Icmpv4(i)) => icmp4(i, payload_len),
        Some(TransportSlice::Icmpv6(i)) => icmp6(i, payload_len),
        _ => {
            if let Some((err, layer)) = &pkt.stop_err {
                return d.stop(layer_name(*layer), err.to_string());
            }
            d.transport = Some(Transport::Other {
                ip_proto: Some(proto),
                ethertype: None,
            });
            return d;
        }
    };
    d.transport = Some(t);
    stopped_early(d, pkt)
}

fn icmp4(i: &etherparse::Icmpv4Slice<'_>, payload_len: u32) -> Transport {
    let (id, seq) = match i.icmp_type() {
        Icmpv4Type::EchoRequest(e) | Icmpv4Type::EchoReply(e) => (Some(e.id), Some(e.seq)),
        _ => (None, None),
    };
    let raw = i.slice();
    Transport::Icmp {
        ty: raw[0],
        code: raw[1],
        id,
        seq,
        len: payload_len,
    }
}

fn icmp6(i: &etherparse::Icmpv6Slice<'_>, payload_len: u32) -> Transport {
    let (id, seq) = match i.icmp_type() {
        Icmpv6Type::EchoRequest(e) | Icmpv6Type::EchoReply(e) => (Some(e.id), Some(e.seq)),
        _ => (None, None),
    };
    let raw = i.slice();
    Transport::Icmp6 {
        ty: raw[0],
        code: raw[1],
        id,
        seq,
        len: payload_len,
    }
}

/// Where etherparse stopped reading after the transport header, noted as malformed.
fn stopped_early(d: Decoded, pkt: &LaxSlicedPacket<'_>) -> Decoded {
    match &pkt.stop_err {
        Some((err, layer)) => d.stop(layer_name(*layer), err.to_string()),
        None => d,
    }
}

fn tcp(t: &etherparse::TcpSlice<'_>, payload_len: u32) -> Transport {
    let mut flags = 0u8;
    for (set, bit) in [
        (t.fin(), TcpFlags::FIN),
        (t.syn(), TcpFlags::SYN),
        (t.rst(), TcpFlags::RST),
        (t.psh(), TcpFlags::PSH),
        (t.ack(), TcpFlags::ACK),
        (t.urg(), TcpFlags::URG),
        (t.ece(), TcpFlags::ECE),
        (t.cwr(), TcpFlags::CWR),
    ] {
        if set {
            flags |= bit;
        }
    }
    Transport::Tcp {
        sport: t.source_port(),
        dport: t.destination_port(),
        flags: TcpFlags(flags),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        win: t.window_size(),
        len: payload_len.saturating_sub(u32::from(t.data_offset()) * 4),
    }
}

/// UDP, or what it carries: ESP on the NAT-T port, a VXLAN frame on a VXLAN port.
fn read_udp(
    mut d: Decoded,
    pkt: &LaxSlicedPacket<'_>,
    u: &etherparse::UdpSlice<'_>,
    f: &[u8],
    payload_len: u32,
) -> Decoded {
    let (sport, dport) = (u.source_port(), u.destination_port());
    let body = u.payload();
    // RFC 3948: ESP in UDP 4500 unless the first 4 bytes are the zero non-ESP marker
    // (IKE) or it is a 1-byte NAT keepalive.
    if (sport == NAT_T_PORT || dport == NAT_T_PORT) && body.len() >= 8 && be32(body, 0) != 0 {
        let start = offset_in(f, body).unwrap_or(f.len());
        d.transport = Some(Transport::Esp(EspHeader {
            spi: be32(body, 0),
            seq: be32(body, 4),
            len: payload_len.saturating_sub(8),
            udp_encap: Some((sport, dport)),
        }));
        d.esp_range = Some(start..start + body.len());
        return d;
    }
    if VXLAN_PORTS.contains(&dport) && body.len() >= 8 && body[0] & 0x08 != 0 {
        let start = offset_in(f, body).unwrap_or(f.len());
        return read_vxlan(d, sport, dport, body, start);
    }
    d.transport = Some(Transport::Udp {
        sport,
        dport,
        len: payload_len.saturating_sub(8),
    });
    stopped_early(d, pkt)
}

/// AH: next header, length in 32-bit words minus 2, reserved, SPI, sequence number, ICV.
fn read_ah(mut d: Decoded, ah: &[u8]) -> Decoded {
    if ah.len() < 12 {
        return d.stop(
            "ah",
            format!("{} bytes captured, the AH header needs 12", ah.len()),
        );
    }
    d.transport = Some(Transport::Ah {
        spi: be32(ah, 4),
        seq: be32(ah, 8),
        next_header: ah[0],
        ah_len: (u32::from(ah[1]) + 2) * 4,
    });
    d
}

/// VXLAN: flags (I bit 0x08), 3 reserved, VNI (24 bits), 1 reserved; then an Ethernet frame.
/// `start` is where `body` begins in the frame, so the inner ranges point into the frame.
fn read_vxlan(mut d: Decoded, sport: u16, dport: u16, body: &[u8], start: usize) -> Decoded {
    if usize::from(d.depth) >= MAX_VXLAN_DEPTH {
        return d.stop(
            "vxlan",
            format!("more than {MAX_VXLAN_DEPTH} nested tunnels"),
        );
    }
    let mut inner = Decoded::empty();
    inner.depth = d.depth + 1;
    let mut inner = decode_ethernet(inner, &body[8..]);
    let shift = |r: Range<usize>| r.start + start + 8..r.end + start + 8;
    // ESP inside the tunnel is decrypted from the frame: its range moves with it.
    d.esp_range = inner.esp_range.clone().map(shift);
    inner.ip_range = inner.ip_range.take().map(shift);
    inner.esp_range = inner.esp_range.take().map(shift);
    d.transport = Some(Transport::Vxlan {
        sport,
        dport,
        vni: be32(body, 4) >> 8,
        inner: Box::new(inner),
    });
    d
}

/// Where `inner` starts within `outer`, if it is a subslice of it.
/// Finds AH in an IPv6 extension chain by walking the raw bytes with bounds checks.
///
/// etherparse 0.21's `Ipv6ExtensionSliceIter` reads a header length it never checked on lax
/// slices (undefined behaviour the fuzzer hit), so the chain is walked here instead.
fn v6_auth_header(first: u8, mut chain: &[u8]) -> Option<etherparse::IpAuthHeaderSlice<'_>> {
    const AH: u8 = 51;
    const FRAGMENT: u8 = 44;
    // Hop-by-hop, routing, destination options, mobility, HIP, shim6: length in 8-octet units.
    const SIZED: [u8; 6] = [0, 43, 60, 135, 139, 140];
    let mut next = first;
    loop {
        match next {
            AH => return etherparse::IpAuthHeaderSlice::from_slice(chain).ok(),
            FRAGMENT => {
                next = *chain.first()?;
                chain = chain.get(8..)?;
            }
            n if SIZED.contains(&n) => {
                let len = (usize::from(*chain.get(1)?) + 1) * 8;
                next = *chain.first()?;
                chain = chain.get(len..)?;
            }
            _ => return None,
        }
    }
}

fn offset_in(outer: &[u8], inner: &[u8]) -> Option<usize> {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    (i >= o && i + inner.len() <= o + outer.len()).then(|| i - o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend(src);
        h.extend(dst);
        h.extend(payload);
        h
    }

    fn eth(src: &str, dst: &str, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = dst.parse::<Mac>().unwrap().0.to_vec();
        f.extend(src.parse::<Mac>().unwrap().0);
        f.extend(ethertype.to_be_bytes());
        f.extend(payload);
        f
    }

    fn icmp_echo(ty: u8, id: u16, seq: u16, data: usize) -> Vec<u8> {
        let mut p = vec![ty, 0, 0, 0];
        p.extend(id.to_be_bytes());
        p.extend(seq.to_be_bytes());
        p.extend(std::iter::repeat_n(0xabu8, data));
        p
    }

    /// The fuzzer's crash: an IPv6 extension chain whose lengths etherparse's iterator trusted.
    #[test]
    fn fuzz_crash_ipv6_extension_chain_is_not_undefined_behaviour() {
        let data = [
            43u8, 96, 255, 255, 255, 98, 47, 0, 41, 0, 250, 255, 43, 255, 183, 184, 184, 184, 0, 0,
            0, 0, 0, 0, 0, 0, 254, 0, 0, 0, 0, 255, 53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 122, 58,
            59, 58, 58,
        ];
        let (sel, frame) = data.split_first().unwrap();
        assert_eq!(sel % 5, 3, "the crash was on the raw-IP link type");
        let d = decode(LinkType::RawIp, frame);
        for r in [&d.ip_range, &d.esp_range].into_iter().flatten() {
            assert!(r.end <= frame.len());
        }
    }

    /// AH behind a hop-by-hop header in IPv6 is still found and shown as the transport.
    #[test]
    fn ipv6_ah_behind_hop_by_hop_is_the_transport() {
        let mut hbh = vec![51u8, 0, 1, 4, 0, 0, 0, 0]; // next AH, 8 octets, PadN
        let mut ah = vec![58u8, 4, 0, 0];
        ah.extend(0x1234_5678u32.to_be_bytes());
        ah.extend(7u32.to_be_bytes());
        ah.extend([0u8; 12]); // ICV
        hbh.append(&mut ah);
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend((hbh.len() as u16).to_be_bytes());
        ip.extend([0u8, 64]); // next hop-by-hop, hop limit
        ip.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ip.extend(hbh);
        let d = decode(LinkType::RawIp, &ip);
        match d.transport {
            Some(Transport::Ah { spi, seq, .. }) => assert_eq!((spi, seq), (0x1234_5678, 7)),
            other => panic!("expected AH, got {other:?}"),
        }
    }

    /// The seed's `tcpdump -pne -i eth0` in the pod: length 98, ICMP echo request id 87 seq 0.
    #[test]
    fn seed_icmp_echo_frame() {
        let ip = ipv4([10, 0, 1, 52], [10, 0, 0, 249], 1, &icmp_echo(8, 87, 0, 56));
        let f = eth("6e:7b:6a:37:31:ab", "4e:0d:10:48:00:05", ETH_P_IPV4, &ip);
        assert_eq!(f.len(), 98);
        let d = decode(LinkType::Ethernet, &f);
        assert_eq!(d.malformed, None);
        let ip = d.ip.as_ref().unwrap();
        assert_eq!(ip.src.to_string(), "10.0.1.52");
        assert_eq!(ip.dst.to_string(), "10.0.0.249");
        assert_eq!(
            d.transport,
            Some(Transport::Icmp {
                ty: 8,
                code: 0,
                id: Some(87),
                seq: Some(0),
                len: 64
            })
        );
        assert_eq!(
            d.link.unwrap().src_mac.unwrap().to_string(),
            "6e:7b:6a:37:31:ab"
        );
    }

    /// The seed's `tcpdump -pne -i eth0 esp` on the worker: length 154, ESP(spi=0x3,seq=0x1a),
    /// length 120.
    #[test]
    fn seed_esp_frame() {
        let mut esp = 3u32.to_be_bytes().to_vec();
        esp.extend(0x1au32.to_be_bytes());
        esp.extend([0u8; 112]);
        let ip = ipv4([10, 0, 1, 138], [10, 0, 0, 40], 50, &esp);
        let f = eth("02:42:ac:12:00:03", "02:42:ac:12:00:04", ETH_P_IPV4, &ip);
        assert_eq!(f.len(), 154);
        let d = decode(LinkType::Ethernet, &f);
        assert_eq!(d.malformed, None);
        assert_eq!(
            d.esp(),
            Some(&EspHeader {
                spi: 3,
                seq: 0x1a,
                len: 120,
                udp_encap: None
            })
        );
        assert_eq!(d.esp_range, Some(34..154));
        assert_eq!(d.ip_range, Some(14..154));
    }

    #[test]
    fn tcp_flags_and_ports() {
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&48858u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&32000u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&1069156627u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = TcpFlags::SYN | TcpFlags::ACK;
        tcp[14..16].copy_from_slice(&64437u16.to_be_bytes());
        tcp.extend([1u8; 10]);
        let ip = ipv4([172, 18, 0, 3], [10, 0, 1, 52], 6, &tcp);
        let d = decode(LinkType::RawIp, &ip);
        match d.transport.unwrap() {
            Transport::Tcp {
                sport,
                dport,
                flags,
                seq,
                win,
                len,
                ..
            } => {
                assert_eq!(
                    (sport, dport, seq, win, len),
                    (48858, 32000, 1069156627, 64437, 10)
                );
                assert_eq!(flags.to_string(), "[S.]");
            }
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn udp_and_nat_t_esp() {
        let mut udp = vec![0u8; 8];
        udp[0..2].copy_from_slice(&4500u16.to_be_bytes());
        udp[2..4].copy_from_slice(&4500u16.to_be_bytes());
        udp[4..6].copy_from_slice(&(8u16 + 40).to_be_bytes());
        let mut body = 7u32.to_be_bytes().to_vec();
        body.extend(9u32.to_be_bytes());
        body.extend([0u8; 32]);
        udp.extend(&body);
        let d = decode(LinkType::RawIp, &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 17, &udp));
        let e = d.esp().unwrap();
        assert_eq!(
            (e.spi, e.seq, e.len, e.udp_encap),
            (7, 9, 40, Some((4500, 4500)))
        );
        // Port 53 is plain UDP.
        udp[2..4].copy_from_slice(&53u16.to_be_bytes());
        udp[0..2].copy_from_slice(&5353u16.to_be_bytes());
        let d = decode(LinkType::RawIp, &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 17, &udp));
        assert_eq!(
            d.transport,
            Some(Transport::Udp {
                sport: 5353,
                dport: 53,
                len: 40
            })
        );
    }

    fn udp(sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
        let mut u = sport.to_be_bytes().to_vec();
        u.extend(dport.to_be_bytes());
        u.extend((8 + body.len() as u16).to_be_bytes());
        u.extend([0, 0]);
        u.extend(body);
        u
    }

    fn vxlan(vni: u32, frame: &[u8]) -> Vec<u8> {
        let mut v = vec![0x08, 0, 0, 0];
        v.extend((vni << 8).to_be_bytes());
        v.extend(frame);
        v
    }

    /// Cilium's tunnel: node IPs, UDP 8472, VNI = source identity, the pod's frame inside.
    #[test]
    fn vxlan_carries_the_pod_frame() {
        let pod = eth(
            "02:00:0a:41:00:01",
            "02:00:0a:41:00:02",
            ETH_P_IPV4,
            &ipv4([10, 65, 0, 1], [10, 65, 0, 2], 1, &icmp_echo(8, 7, 1, 56)),
        );
        let outer = ipv4(
            [192, 168, 65, 1],
            [192, 168, 65, 2],
            17,
            &udp(40000, 8472, &vxlan(2, &pod)),
        );
        let d = decode(LinkType::RawIp, &outer);
        let Some(Transport::Vxlan {
            sport,
            dport,
            vni,
            inner,
        }) = &d.transport
        else {
            panic!("{d:?}")
        };
        assert_eq!((*sport, *dport, *vni), (40000, 8472, 2));
        assert_eq!(inner.ip.as_ref().unwrap().dst.to_string(), "10.65.0.2");
        assert!(matches!(
            inner.transport,
            Some(Transport::Icmp {
                ty: 8,
                id: Some(7),
                ..
            })
        ));
        assert!(d.malformed.is_none() && !d.is_esp());
        // Port 8472 without the VNI flag is plain UDP.
        let mut plain = vxlan(2, &pod);
        plain[0] = 0;
        let d = decode(
            LinkType::RawIp,
            &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 17, &udp(1, 8472, &plain)),
        );
        assert!(matches!(
            d.transport,
            Some(Transport::Udp { dport: 8472, .. })
        ));
    }

    /// ESP inside VXLAN (Cilium before it encrypted the tunnel): found through the tunnel, its
    /// range pointing into the outer frame, matched by the inner IP header.
    #[test]
    fn esp_inside_vxlan_is_found_with_its_range() {
        let mut esp = 3u32.to_be_bytes().to_vec();
        esp.extend(0x1au32.to_be_bytes());
        esp.extend([0x5au8; 40]);
        let pod = eth(
            "02:00:00:00:00:01",
            "02:00:00:00:00:02",
            ETH_P_IPV4,
            &ipv4([10, 0, 1, 138], [10, 0, 0, 40], 50, &esp),
        );
        let outer = eth(
            "02:42:ac:12:00:03",
            "02:42:ac:12:00:04",
            ETH_P_IPV4,
            &ipv4(
                [172, 18, 0, 3],
                [172, 18, 0, 4],
                17,
                &udp(1, 8472, &vxlan(9, &pod)),
            ),
        );
        let d = decode(LinkType::Ethernet, &outer);
        let e = d.esp().expect("ESP through the tunnel");
        assert_eq!((e.spi, e.seq), (3, 0x1a));
        assert_eq!(d.esp_ip().unwrap().dst.to_string(), "10.0.0.40");
        let r = d.esp_range.clone().unwrap();
        assert_eq!(&outer[r], &esp[..]);
    }

    #[test]
    fn nested_tunnels_are_bounded() {
        let mut pkt = ipv4([10, 0, 0, 1], [10, 0, 0, 2], 1, &icmp_echo(8, 1, 1, 8));
        for _ in 0..(MAX_VXLAN_DEPTH + 2) {
            let frame = eth("02:00:00:00:00:01", "02:00:00:00:00:02", ETH_P_IPV4, &pkt);
            pkt = ipv4(
                [1, 1, 1, 1],
                [2, 2, 2, 2],
                17,
                &udp(1, 4789, &vxlan(1, &frame)),
            );
        }
        let mut d = decode(LinkType::RawIp, &pkt);
        let mut depth = 0;
        while let Some(Transport::Vxlan { inner, .. }) = d.transport {
            d = *inner;
            depth += 1;
        }
        assert_eq!(depth, MAX_VXLAN_DEPTH);
        assert_eq!(d.malformed.unwrap().layer, "vxlan");
    }

    #[test]
    fn ah_header_is_shown() {
        // next header UDP, length (6 words - 2) = 4 -> 24 bytes: 12 fixed + 12 ICV (sha256-96).
        let mut ah = vec![17, 4, 0, 0];
        ah.extend(0x7112u32.to_be_bytes());
        ah.extend(5u32.to_be_bytes());
        ah.extend([0xeeu8; 12]);
        ah.extend(udp(40000, 9999, b"hopscope\n"));
        let d = decode(
            LinkType::RawIp,
            &ipv4([192, 168, 66, 1], [192, 168, 66, 2], 51, &ah),
        );
        assert_eq!(
            d.transport,
            Some(Transport::Ah {
                spi: 0x7112,
                seq: 5,
                next_header: 17,
                ah_len: 24
            })
        );
        let d = decode(
            LinkType::RawIp,
            &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 51, &ah[..6]),
        );
        assert_eq!(d.malformed.unwrap().layer, "ah");
    }

    #[test]
    fn ipv6_icmp6_echo() {
        let mut p = vec![0x60, 0, 0, 0];
        let icmp = icmp_echo(128, 5, 6, 16);
        p.extend((icmp.len() as u16).to_be_bytes());
        p.extend([58, 64]);
        p.extend("fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        p.extend("fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        p.extend(icmp);
        let d = decode(LinkType::RawIp, &p);
        assert_eq!(
            d.transport,
            Some(Transport::Icmp6 {
                ty: 128,
                code: 0,
                id: Some(5),
                seq: Some(6),
                len: 24
            })
        );
    }

    #[test]
    fn cooked_sll_and_sll2_direction() {
        let ip = ipv4([10, 0, 1, 52], [10, 0, 0, 249], 1, &icmp_echo(8, 1, 2, 0));
        let mut sll = vec![
            0, 4, 0, 1, 0, 6, 2, 0x42, 0xac, 0x12, 0, 3, 0, 0, 0x08, 0x00,
        ];
        sll.extend(&ip);
        let d = decode(LinkType::LinuxSll, &sll);
        assert_eq!(d.direction_hint(), Direction::Out);
        assert_eq!(d.ip.unwrap().dst.to_string(), "10.0.0.249");
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 7, 0, 1, 0, 6];
        sll2.extend([2, 0x42, 0xac, 0x12, 0, 4, 0, 0]);
        sll2.extend(&ip);
        let d = decode(LinkType::LinuxSll2, &sll2);
        assert_eq!(d.direction_hint(), Direction::In);
        assert_eq!(d.link.as_ref().unwrap().ifindex, Some(7));
        assert_eq!(d.malformed, None);
    }

    #[test]
    fn truncated_frames_keep_what_was_read() {
        let mut esp = 3u32.to_be_bytes().to_vec();
        esp.extend(5u32.to_be_bytes());
        esp.extend([0u8; 112]);
        let ip = ipv4([10, 0, 1, 138], [10, 0, 0, 40], 50, &esp);
        let f = eth("02:42:ac:12:00:03", "02:42:ac:12:00:04", ETH_P_IPV4, &ip);
        // Snap length 40: IPv4 header complete, ESP header cut after 6 bytes.
        let d = decode(LinkType::Ethernet, &f[..40]);
        assert_eq!(d.ip.as_ref().unwrap().dst.to_string(), "10.0.0.40");
        assert_eq!(d.malformed.as_ref().unwrap().layer, "esp");
        // Snap length 42: ESP header readable, length still by the IP header.
        let d = decode(LinkType::Ethernet, &f[..42]);
        assert_eq!(d.esp().unwrap().len, 120);
        // Every prefix of every shape decodes without panicking.
        for n in 0..f.len() {
            let _ = decode(LinkType::Ethernet, &f[..n]);
            let _ = decode(LinkType::LinuxSll, &f[..n]);
            let _ = decode(LinkType::LinuxSll2, &f[..n]);
            let _ = decode(LinkType::RawIp, &f[14..14 + n.min(f.len() - 14)]);
        }
        let d = decode(LinkType::Ethernet, &f[..10]);
        assert_eq!(d.malformed.unwrap().layer, "ethernet");
        let d = decode(LinkType::Ethernet, &f[..20]);
        assert_eq!(d.malformed.unwrap().layer, "ipv4");
    }

    #[test]
    fn arp_request() {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend([2, 0x42, 0xac, 0x12, 0, 3, 172, 18, 0, 3]);
        a.extend([0, 0, 0, 0, 0, 0, 172, 18, 0, 1]);
        let f = eth("02:42:ac:12:00:03", "ff:ff:ff:ff:ff:ff", ETH_P_ARP, &a);
        let d = decode(LinkType::Ethernet, &f);
        assert_eq!(
            d.transport,
            Some(Transport::Arp {
                op: 1,
                sender: Some(Ipv4Addr::new(172, 18, 0, 3)),
                target: Some(Ipv4Addr::new(172, 18, 0, 1)),
                sender_mac: Some("02:42:ac:12:00:03".parse().unwrap()),
            })
        );
        // A reply says where the address is, as tcpdump does.
        a[7] = 2;
        let f = eth("02:42:ac:12:00:03", "02:42:ac:12:00:01", ETH_P_ARP, &a);
        assert_eq!(
            crate::view::packet::summary(&decode(LinkType::Ethernet, &f), &Default::default()),
            "ARP, Reply 172.18.0.3 is-at 02:42:ac:12:00:03"
        );
    }
}
