//! What one captured frame means on this node: decoded headers, direction, the SA an ESP packet
//! belongs to (and its decryption), whether a plaintext packet is the kernel's re-injection of a
//! packet it just decrypted, and whether it leaks (plaintext where XFRM says ESP). Pure: a
//! NodeState and frames in, records and counters out; the live capture and tests share it.

use crate::decode::esp::{Opened, Outcome, SaTable};
use crate::decode::packet::{
    self, Decoded, Direction, EspHeader, IpInfo, LinkType, Mac, PacketKey,
};
use crate::model::RouteKind;
use crate::model::event::SaKey;
use crate::model::{
    NodeState, PolicyAction, PolicyDir, Prefix, Selector, SelectorDev, SelectorKey, TemplateLevel,
    XfrmPolicy, XfrmProto,
};
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::IpAddr;

/// Capture time: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Ts {
    pub sec: i64,
    pub nsec: u32,
}

impl Ts {
    /// The wall clock now, as capture timestamps are.
    pub fn now() -> Ts {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Ts {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        }
    }
    pub fn as_secs_f64(self) -> f64 {
        self.sec as f64 + f64::from(self.nsec) / 1e9
    }
    fn nanos(self) -> i128 {
        i128::from(self.sec) * 1_000_000_000 + i128::from(self.nsec)
    }
}

/// What decryption of one ESP packet gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Decrypt {
    /// Verified and decrypted: the inner packet, decoded.
    Ok {
        next_header: u8,
        inner: Box<Decoded>,
    },
    /// The ICV did not verify with the key of any matching SA: never shown as plaintext.
    AuthFailed {
        tried: usize,
    },
    NoSa,
    Unsupported {
        why: String,
    },
    Malformed {
        why: String,
    },
}

/// The kernel decrypted an ESP packet and handed the inner packet back on the same interface:
/// the same packet seen twice, counted once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reinjected {
    pub esp_spi: u32,
    pub esp_seq: u32,
    /// true: our decryption of that ESP packet gave these very bytes; false: paired by time
    /// and SA only (no --decrypt).
    pub exact: bool,
}

/// The SA an ESP packet belongs to: its key in the node's state, which the SAs pane finds it
/// by, and how it reads (`10.0.1.138->10.0.0.40 spi 0x3 mark 0x3e00/0xff00`), which the text
/// and the JSON print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketSa {
    pub key: SaKey,
    label: String,
}

impl PacketSa {
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// Wherever text is wanted, the SA reads as its label.
impl std::ops::Deref for PacketSa {
    type Target = str;
    fn deref(&self) -> &str {
        &self.label
    }
}

impl fmt::Display for PacketSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// As its label: `capture --json` printed the label before the record held the key.
impl Serialize for PacketSa {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label)
    }
}

/// One captured packet, with everything hopscope knows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PacketRecord {
    pub ts: Ts,
    pub iface: String,
    pub dir: Direction,
    /// On-wire length and captured length.
    pub len: u32,
    pub caplen: u32,
    #[serde(flatten)]
    pub decoded: Decoded,
    /// The SA an ESP packet belongs to (by SPI + dst).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sa: Option<PacketSa>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrypt: Option<Decrypt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_decrypted: Option<Reinjected>,
    /// Why this plaintext packet should have been encrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak: Option<String>,
    /// NAT traversal: how this ESP packet's UDP encapsulation differs from its SA's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encap_mismatch: Option<String>,
}

/// Per-interface counters. `esp` + `plaintext` + `kernel_decrypted` + `other` = `packets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IfaceCounts {
    pub packets: u64,
    pub bytes: u64,
    pub esp: u64,
    /// IP packets that are not ESP (and not the kernel's re-injected decryptions).
    pub plaintext: u64,
    pub kernel_decrypted: u64,
    /// ARP and other non-IP frames.
    pub other: u64,
    pub malformed: u64,
    pub leaks: u64,
    pub decrypted: u64,
    pub auth_failed: u64,
    pub no_sa: u64,
}

/// Packets per second over the last whole second, per interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    pub esp_pps: f64,
    pub plaintext_pps: f64,
}

#[derive(Debug, Default)]
struct RateWindow {
    sec: i64,
    esp: u64,
    plain: u64,
    last: Rates,
}

impl RateWindow {
    fn add(&mut self, ts: Ts, esp: bool, plain: bool) {
        self.roll(ts.sec);
        self.esp += u64::from(esp);
        self.plain += u64::from(plain);
    }
    fn roll(&mut self, sec: i64) {
        if sec != self.sec {
            self.last = if sec == self.sec + 1 {
                Rates {
                    esp_pps: self.esp as f64,
                    plaintext_pps: self.plain as f64,
                }
            } else {
                Rates::default()
            };
            (self.sec, self.esp, self.plain) = (sec, 0, 0);
        }
    }
}

/// A recent inbound ESP packet, waiting for the kernel's re-injection of its decryption.
#[derive(Debug)]
struct PendingEsp {
    ts: Ts,
    spi: u32,
    seq: u32,
    inner: Option<Vec<u8>>,
}

/// How long after an inbound ESP packet its decrypted inner packet may show up on the same
/// interface (the kernel does it in the same softirq, microseconds later).
const REINJECT_WINDOW_NS: i128 = 200_000_000;

/// An out policy that wants ESP, reduced to what a leak check needs.
#[derive(Debug, Clone)]
struct OutRule {
    policy: usize,
    egress: Option<String>,
    tmpl_dst: String,
    spi: u32,
}

#[derive(Debug, Clone)]
struct InRule {
    policy: usize,
}

pub struct Analyzer {
    sas: SaTable,
    decrypt: bool,
    macs: BTreeMap<String, Mac>,
    ifnames: BTreeMap<u32, String>,
    policies: Vec<XfrmPolicy>,
    out_rules: Vec<OutRule>,
    in_rules: Vec<InRule>,
    routes: Vec<(Prefix, String)>,
    pending: BTreeMap<String, VecDeque<PendingEsp>>,
    pub counts: BTreeMap<String, IfaceCounts>,
    rates: BTreeMap<String, RateWindow>,
    /// The decryption of the packet analysed last (a recording keeps its headers).
    opened: Option<Opened>,
    /// A decryption a recording handed in for the next packet (`analyze_opened`).
    given: Option<Opened>,
}

fn is_esp_tmpl(p: &XfrmPolicy) -> bool {
    p.action == PolicyAction::Allow && p.templates.iter().any(|t| t.proto == XfrmProto::Esp)
}

impl Analyzer {
    pub fn new(state: &NodeState, decrypt: bool) -> Analyzer {
        let macs = state
            .links
            .iter()
            .filter_map(|l| Some((l.name.clone(), l.mac.as_deref()?.parse().ok()?)))
            .collect();
        let ifnames = state
            .links
            .iter()
            .map(|l| (l.index, l.name.clone()))
            .collect();
        // The main table, longest prefix first: where a packet to an address leaves.
        let mut routes: Vec<(Prefix, String)> = state
            .routes
            .iter()
            .filter(|r| r.table.id == 254 && r.kind == RouteKind::Unicast)
            .filter_map(|r| {
                let dev = r
                    .dev
                    .as_ref()
                    .or_else(|| r.nexthops.first().and_then(|n| n.dev.as_ref()))?;
                let dst = r.dst.unwrap_or_else(|| {
                    let any: IpAddr = match r.family {
                        crate::model::Family::V4 => "0.0.0.0".parse().unwrap(),
                        crate::model::Family::V6 => "::".parse().unwrap(),
                    };
                    Prefix::new(any, 0)
                });
                Some((dst, dev.name.clone()?))
            })
            .collect();
        routes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len));
        let mut a = Analyzer {
            sas: SaTable::from_states(&state.xfrm_states),
            decrypt,
            macs,
            ifnames,
            policies: state.xfrm_policies.clone(),
            out_rules: vec![],
            in_rules: vec![],
            routes,
            pending: BTreeMap::new(),
            counts: BTreeMap::new(),
            rates: BTreeMap::new(),
            opened: None,
            given: None,
        };
        for (i, p) in a.policies.iter().enumerate() {
            if !is_esp_tmpl(p) {
                continue;
            }
            match p.dir {
                PolicyDir::Out => {
                    let t = p
                        .templates
                        .iter()
                        .find(|t| t.proto == XfrmProto::Esp)
                        .unwrap();
                    let egress = t.dst.parse::<IpAddr>().ok().and_then(|d| a.route_dev(&d));
                    a.out_rules.push(OutRule {
                        policy: i,
                        egress,
                        tmpl_dst: t.dst.clone(),
                        spi: t.spi,
                    });
                }
                // Only a required template says "must arrive encrypted"; `level use`
                // (optional) lets plaintext through on purpose.
                PolicyDir::In | PolicyDir::Fwd
                    if p.templates
                        .iter()
                        .any(|t| t.proto == XfrmProto::Esp && t.level != TemplateLevel::Use) =>
                {
                    a.in_rules.push(InRule { policy: i });
                }
                _ => {}
            }
        }
        a
    }

    /// Decrypt ESP from now on (or stop); the TUI's toggle.
    pub fn set_decrypt(&mut self, on: bool) {
        self.decrypt = on;
    }

    pub fn decrypting(&self) -> bool {
        self.decrypt
    }

    /// The node changed (SAs rekeyed, policies or routes edited): judge packets by the new
    /// state from now on, keeping the counters and rates so far.
    pub fn reload(&mut self, state: &NodeState) {
        let mut fresh = Analyzer::new(state, self.decrypt);
        fresh.counts = std::mem::take(&mut self.counts);
        fresh.rates = std::mem::take(&mut self.rates);
        fresh.pending = std::mem::take(&mut self.pending);
        *self = fresh;
    }

    /// The interface the main table sends `dst` out of.
    fn route_dev(&self, dst: &IpAddr) -> Option<String> {
        self.routes
            .iter()
            .find(|(p, _)| p.contains(dst))
            .map(|(_, d)| d.clone())
    }

    /// The SA of the table's entry `i`, as a packet record holds it.
    fn packet_sa(&self, i: usize) -> PacketSa {
        let e = &self.sas.entries[i];
        PacketSa {
            key: e.key.clone(),
            label: e.label(),
        }
    }

    pub fn rates(&self, iface: &str) -> Rates {
        self.rates.get(iface).map(|r| r.last).unwrap_or_default()
    }

    /// Rates as of `now` (a quiet second counts as zero).
    pub fn rates_at(&mut self, now: Ts) -> BTreeMap<String, Rates> {
        self.rates
            .iter_mut()
            .map(|(k, w)| {
                w.roll(now.sec);
                (k.clone(), w.last)
            })
            .collect()
    }

    /// What the last packet's decryption opened (None when it was not decrypted).
    pub fn take_opened(&mut self) -> Option<Opened> {
        self.opened.take()
    }

    /// Analyse a packet whose ESP was decrypted elsewhere (a recording made without keys
    /// keeps the opened inner headers): `opened` stands for what the keys would have given.
    pub fn analyze_opened(
        &mut self,
        iface: &str,
        link: LinkType,
        ts: Ts,
        len: u32,
        frame: &[u8],
        opened: Option<Opened>,
    ) -> PacketRecord {
        let decrypt = self.decrypt;
        self.decrypt |= opened.is_some();
        self.given = opened;
        let rec = self.analyze(iface, link, ts, len, frame);
        self.decrypt = decrypt;
        rec
    }

    pub fn analyze(
        &mut self,
        iface: &str,
        link: LinkType,
        ts: Ts,
        len: u32,
        frame: &[u8],
    ) -> PacketRecord {
        let given = self.given.take();
        self.opened = None;
        let decoded = packet::decode(link, frame);
        let iface = self.real_iface(&decoded, iface);
        let dir = self.direction(&decoded, &iface);
        let rec = PacketRecord {
            ts,
            iface,
            dir,
            len,
            caplen: frame.len() as u32,
            decoded,
            sa: None,
            decrypt: None,
            kernel_decrypted: None,
            leak: None,
            encap_mismatch: None,
        };
        self.count_frame(&rec);
        // ESP is matched by the IP header that carries it (inside VXLAN for Cilium's tunnels).
        let esp = rec.decoded.esp().copied();
        if let (Some(esp), Some(ip)) = (esp, rec.decoded.esp_ip().cloned()) {
            return self.esp_packet(rec, &esp, &ip, frame, given);
        }
        match rec.decoded.ip.clone() {
            Some(ip) => self.plaintext_packet(rec, &ip, frame),
            None => {
                self.counts.get_mut(&rec.iface).unwrap().other += 1;
                self.rates
                    .entry(rec.iface.clone())
                    .or_default()
                    .add(ts, false, false);
                rec
            }
        }
    }

    /// The interface the frame was seen on: `-i any` (SLL2) names the real one.
    fn real_iface(&self, decoded: &Decoded, iface: &str) -> String {
        decoded
            .link
            .as_ref()
            .and_then(|l| l.ifindex)
            .and_then(|i| self.ifnames.get(&i).cloned())
            .unwrap_or_else(|| iface.to_string())
    }

    /// In or out: what the frame says, else whether it comes from the interface's own MAC.
    fn direction(&self, decoded: &Decoded, iface: &str) -> Direction {
        match decoded.direction_hint() {
            Direction::Unknown => match (
                decoded.link.as_ref().and_then(|l| l.src_mac),
                self.macs.get(iface),
            ) {
                (Some(src), Some(own)) if src == *own => Direction::Out,
                (Some(_), Some(_)) => Direction::In,
                _ => Direction::Unknown,
            },
            d => d,
        }
    }

    fn count_frame(&mut self, rec: &PacketRecord) {
        let c = self.counts.entry(rec.iface.clone()).or_default();
        c.packets += 1;
        c.bytes += u64::from(rec.len);
        c.malformed += u64::from(rec.decoded.malformed.is_some());
    }

    /// An ESP packet: its SA, its decryption when asked for, and (inbound) a place among the
    /// packets whose decryption the kernel may hand back.
    fn esp_packet(
        &mut self,
        mut rec: PacketRecord,
        esp: &EspHeader,
        ip: &IpInfo,
        frame: &[u8],
        given: Option<Opened>,
    ) -> PacketRecord {
        let sa = self.sas.lookup(esp.spi, ip.src, ip.dst);
        rec.sa = sa.map(|i| self.packet_sa(i));
        rec.encap_mismatch = sa.and_then(|i| self.sas.entries[i].encap_mismatch(esp.udp_encap));
        let mut inner_bytes = None;
        if self.decrypt {
            let d;
            (d, inner_bytes) = self.decrypt_esp(&mut rec, esp, ip, frame, given);
            let c = self.counts.get_mut(&rec.iface).unwrap();
            match &d {
                Decrypt::Ok { .. } => c.decrypted += 1,
                Decrypt::AuthFailed { .. } => c.auth_failed += 1,
                Decrypt::NoSa => c.no_sa += 1,
                _ => {}
            }
            rec.decrypt = Some(d);
        } else if rec.sa.is_none() {
            self.counts.get_mut(&rec.iface).unwrap().no_sa += 1;
        }
        // An inbound ESP packet for one of our inbound SAs: its decryption may come back.
        if rec.dir != Direction::Out {
            let q = self.pending.entry(rec.iface.clone()).or_default();
            q.push_back(PendingEsp {
                ts: rec.ts,
                spi: esp.spi,
                seq: esp.seq,
                inner: inner_bytes,
            });
            if q.len() > 4096 {
                q.pop_front();
            }
        }
        self.counts.get_mut(&rec.iface).unwrap().esp += 1;
        self.rates
            .entry(rec.iface.clone())
            .or_default()
            .add(rec.ts, true, false);
        rec
    }

    /// Decrypt an ESP packet (or take the decryption a recording kept): what it gave, and the
    /// inner IP packet's bytes in tunnel mode (what the kernel's re-injection will carry).
    fn decrypt_esp(
        &mut self,
        rec: &mut PacketRecord,
        esp: &EspHeader,
        ip: &IpInfo,
        frame: &[u8],
        given: Option<Opened>,
    ) -> (Decrypt, Option<Vec<u8>>) {
        let range = rec.decoded.esp_range.clone().unwrap_or(0..0);
        // The ESP packet runs to the end of the IP payload, not of the frame (padding).
        let end = range.start + esp.len as usize;
        let bytes = frame.get(range.start..end.min(frame.len())).unwrap_or(&[]);
        if end > frame.len() {
            let why = format!(
                "captured {} of {} ESP bytes (snap length)",
                bytes.len(),
                esp.len
            );
            return (Decrypt::Malformed { why }, None);
        }
        let outcome = match given {
            Some(opened) => match self.sas.lookup(esp.spi, ip.src, ip.dst) {
                Some(sa) => Outcome::Opened { sa, opened },
                None => Outcome::NoSa,
            },
            None => self.sas.open(esp.spi, ip.src, ip.dst, bytes),
        };
        match outcome {
            Outcome::Opened { sa, opened } => {
                rec.sa = Some(self.packet_sa(sa));
                let tunnel = matches!(opened.next_header, 4 | 41);
                let inner = if tunnel {
                    packet::decode_ip(&opened.payload)
                } else {
                    transport_only(&rec.decoded, opened.next_header, &opened.payload)
                };
                let inner_bytes = tunnel.then(|| opened.payload.clone());
                let next_header = opened.next_header;
                self.opened = Some(opened);
                let inner = Box::new(inner);
                (Decrypt::Ok { next_header, inner }, inner_bytes)
            }
            Outcome::AuthFailed { sa, tried } => {
                rec.sa = Some(self.packet_sa(sa));
                (Decrypt::AuthFailed { tried }, None)
            }
            Outcome::NoSa => (Decrypt::NoSa, None),
            Outcome::Unsupported { why, .. } => (Decrypt::Unsupported { why }, None),
            Outcome::Malformed { error, .. } => {
                let why = error.to_string();
                (Decrypt::Malformed { why }, None)
            }
        }
    }

    /// A plaintext IP packet: the kernel's re-injection of an ESP packet it just decrypted,
    /// else traffic that may leak.
    fn plaintext_packet(
        &mut self,
        mut rec: PacketRecord,
        ip: &IpInfo,
        frame: &[u8],
    ) -> PacketRecord {
        let (iface, ts) = (rec.iface.clone(), rec.ts);
        if rec.dir != Direction::Out {
            let ip_bytes = rec
                .decoded
                .ip_range
                .clone()
                .and_then(|r| frame.get(r))
                .unwrap_or(&[]);
            if let Some(r) = self.take_pending(&iface, ts, ip_bytes, ip) {
                rec.kernel_decrypted = Some(r);
                self.counts.get_mut(&iface).unwrap().kernel_decrypted += 1;
                self.rates.entry(iface).or_default().add(ts, false, false);
                return rec;
            }
        }
        rec.leak = self.leak(&rec, rec.dir);
        let c = self.counts.get_mut(&iface).unwrap();
        c.plaintext += 1;
        c.leaks += u64::from(rec.leak.is_some());
        self.rates.entry(iface).or_default().add(ts, false, true);
        rec
    }

    fn take_pending(
        &mut self,
        iface: &str,
        ts: Ts,
        ip_bytes: &[u8],
        ip: &IpInfo,
    ) -> Option<Reinjected> {
        let q = self.pending.get_mut(iface)?;
        while q
            .front()
            .is_some_and(|p| ts.nanos() - p.ts.nanos() > REINJECT_WINDOW_NS)
        {
            q.pop_front();
        }
        // Exact: our decryption of a pending ESP packet is this very IP packet.
        if let Some(i) = q
            .iter()
            .position(|p| p.inner.as_deref().is_some_and(|b| b == ip_bytes))
        {
            let p = q.remove(i)?;
            return Some(Reinjected {
                esp_spi: p.spi,
                esp_seq: p.seq,
                exact: true,
            });
        }
        // Without the plaintext: the oldest pending ESP not decrypted by us, when an inbound
        // policy covers this packet (it is what that ESP would carry).
        let covered = self.policies.iter().any(|p| {
            matches!(p.dir, PolicyDir::In | PolicyDir::Fwd)
                && is_esp_tmpl(p)
                && selector_matches(&p.selector, &PacketKey::of_ip(ip))
        });
        if !covered {
            return None;
        }
        let i = q.iter().position(|p| p.inner.is_none())?;
        let p = q.remove(i)?;
        Some(Reinjected {
            esp_spi: p.spi,
            esp_seq: p.seq,
            exact: false,
        })
    }

    /// Plaintext where this node's XFRM policies say ESP.
    fn leak(&self, rec: &PacketRecord, dir: Direction) -> Option<String> {
        let key = rec.decoded.key()?;
        let iface = rec.iface.as_str();
        // 1. Leaving through the interface an out policy's ESP would leave through.
        if dir != Direction::In {
            for r in &self.out_rules {
                let p = &self.policies[r.policy];
                if r.egress.as_deref() == Some(iface) && selector_matches(&p.selector, &key) {
                    return Some(format!(
                        "out policy {} -> {}{} wants ESP spi {:#x} to {}",
                        p.selector.src,
                        p.selector.dst,
                        mark_str(p),
                        r.spi,
                        r.tmpl_dst
                    ));
                }
            }
        }
        for r in &self.in_rules {
            let p = &self.policies[r.policy];
            // 2. Arriving in plaintext from the side its source lies on, where an in/fwd policy
            //    requires ESP.
            if dir != Direction::Out
                && self.route_dev(&key.src).as_deref() == Some(iface)
                && selector_matches(&p.selector, &key)
            {
                return Some(format!(
                    "{} policy {} -> {}{} requires ESP, arrived in plaintext",
                    p.dir,
                    p.selector.src,
                    p.selector.dst,
                    mark_str(p)
                ));
            }
            // 3. Leaving in plaintext although this node requires the reverse flow encrypted,
            //    and no out policy covers it (e.g. the out policy is missing).
            if dir != Direction::In
                && self.route_dev(&key.dst).as_deref() == Some(iface)
                && selector_matches(&p.selector, &key.reversed())
            {
                return Some(format!(
                    "replies must arrive encrypted ({} policy {} -> {}{}), but no out policy encrypts this",
                    p.dir,
                    p.selector.src,
                    p.selector.dst,
                    mark_str(p)
                ));
            }
        }
        None
    }
}

fn mark_str(p: &XfrmPolicy) -> String {
    p.mark.map(|m| format!(" mark {m}")).unwrap_or_default()
}

/// Does an XFRM selector cover this captured packet? A capture sees neither the mark nor the
/// device of the flow lookup, so only addresses, protocol and ports are compared.
pub fn selector_matches(sel: &Selector, k: &PacketKey) -> bool {
    let key = SelectorKey {
        src: k.src,
        dst: k.dst,
        proto: k.proto,
        sport: k.ports.map(|p| p.0),
        dport: k.ports.map(|p| p.1),
    };
    sel.matches(&key, SelectorDev::Unknown)
}

/// Transport-mode ESP: the payload is the transport header itself, under the outer IP.
fn transport_only(outer: &Decoded, next_header: u8, payload: &[u8]) -> Decoded {
    let Some(ip) = &outer.ip else {
        return packet::decode_ip(payload);
    };
    // Rebuild a minimal IPv4/IPv6 header around the payload so the decoder reads it.
    let mut pkt = Vec::with_capacity(payload.len() + 40);
    match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + payload.len()).min(65535) as u16;
            pkt.extend([0x45, 0]);
            pkt.extend(total.to_be_bytes());
            pkt.extend([0, 0, 0, 0, ip.ttl]);
            pkt.push(next_header);
            pkt.extend([0, 0]);
            pkt.extend(s.octets());
            pkt.extend(d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pkt.extend([0x60, 0, 0, 0]);
            pkt.extend((payload.len().min(65535) as u16).to_be_bytes());
            pkt.extend([next_header, ip.ttl]);
            pkt.extend(s.octets());
            pkt.extend(d.octets());
        }
        _ => return packet::decode_ip(payload),
    }
    pkt.extend(payload);
    packet::decode_ip(&pkt)
}

/// Per-interface totals as tcpdump prints them at the end, plus what hopscope adds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IfaceTotals {
    pub iface: String,
    /// Packets hopscope processed (printed / written).
    pub captured: u64,
    /// Packets the kernel passed to the capture filter (pcap stats "received").
    pub received_by_filter: u64,
    /// Dropped by the kernel: the capture buffer was full (pcap stats "dropped").
    pub dropped_by_kernel: u64,
    /// Dropped by the interface/driver (pcap stats "if_dropped").
    pub dropped_by_interface: u64,
    /// Dropped by hopscope: its queue from the reader to the decoder was full.
    pub dropped_by_hopscope: u64,
    #[serde(flatten)]
    pub counts: IfaceCounts,
    pub esp_pps: f64,
    pub plaintext_pps: f64,
    /// The interface vanished mid-capture (with libpcap's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gone: Option<String>,
}
