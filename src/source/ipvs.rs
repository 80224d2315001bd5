//! IPVS virtual services and their real servers, read over generic netlink (family "IPVS",
//! the netns of the calling thread): kube-proxy's IPVS mode does its DNAT there, not in
//! iptables. Only GET dumps are sent (IPVS_CMD_GET_SERVICE, then IPVS_CMD_GET_DEST for each
//! service): read-only. netlink-packet-generic frames the messages and resolves nothing else;
//! no published crate parses IPVS's own attributes (include/uapi/linux/ip_vs.h), so this
//! module does. A service or destination that does not parse is counted and said, never a
//! panic and never dropped silently.

use super::netlink::{Family, NlSocket};
use crate::model::{IpvsReal, IpvsService};
use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, Nla, NlaBuffer, NlasIterator, ParseableParametrized,
};
use netlink_packet_generic::constants::{
    CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_CMD_GETFAMILY, CTRL_CMD_NEWFAMILY,
    GENL_ID_CTRL,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPVS_GENL_VERSION.
const VERSION: u8 = 1;
// Commands (enum IPVS_CMD_*).
const CMD_NEW_SERVICE: u8 = 1;
const CMD_GET_SERVICE: u8 = 4;
const CMD_NEW_DEST: u8 = 5;
const CMD_GET_DEST: u8 = 8;
// Top-level attributes (IPVS_CMD_ATTR_*): each holds a nested set.
const ATTR_SERVICE: u16 = 1;
const ATTR_DEST: u16 = 2;
// Service attributes (IPVS_SVC_ATTR_*).
const SVC_AF: u16 = 1;
const SVC_PROTOCOL: u16 = 2;
const SVC_ADDR: u16 = 3;
const SVC_PORT: u16 = 4;
const SVC_FWMARK: u16 = 5;
const SVC_SCHED_NAME: u16 = 6;
// Destination attributes (IPVS_DEST_ATTR_*).
const DEST_ADDR: u16 = 1;
const DEST_PORT: u16 = 2;
const DEST_FWD_METHOD: u16 = 3;
const DEST_WEIGHT: u16 = 4;
const DEST_ACTIVE_CONNS: u16 = 7;
const DEST_INACT_CONNS: u16 = 8;
const DEST_ADDR_FAMILY: u16 = 11;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// What names a virtual service to the kernel (ip_vs_genl_parse_service without a full
/// entry): its family and either its fwmark or its protocol, address and port, as the kernel
/// sent them (the address is a 16-byte nf_inet_addr, the port big-endian).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceKey {
    af: u16,
    fwmark: Option<u32>,
    proto: u16,
    addr: [u8; 16],
    port: u16,
}

/// One destination as sent; its address family is the service's unless it says its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    family: Option<u16>,
    addr: [u8; 16],
    real: IpvsReal,
}

/// An IPVS generic-netlink message: a request this module sends, or an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsMsg {
    /// Dump every virtual service.
    GetServices,
    /// Dump the real servers of one service.
    GetDests(ServiceKey),
    /// One virtual service, or why it could not be read.
    Service(Result<(ServiceKey, IpvsService), String>),
    /// One real server, or why it could not be read.
    Dest(Result<Dest, String>),
    /// A command this module never asks for.
    Other(u8),
}

impl GenlFamily for IpvsMsg {
    fn family_name() -> &'static str {
        "IPVS"
    }
    fn command(&self) -> u8 {
        match self {
            IpvsMsg::GetServices => CMD_GET_SERVICE,
            IpvsMsg::GetDests(_) => CMD_GET_DEST,
            IpvsMsg::Service(_) => CMD_NEW_SERVICE,
            IpvsMsg::Dest(_) => CMD_NEW_DEST,
            IpvsMsg::Other(c) => *c,
        }
    }
    fn version(&self) -> u8 {
        VERSION
    }
}

/// A nested attribute (a set of attributes inside one).
struct Nested(u16, Vec<DefaultNla>);

impl Nla for Nested {
    fn value_len(&self) -> usize {
        self.1.as_slice().buffer_len()
    }
    fn kind(&self) -> u16 {
        self.0
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        self.1.as_slice().emit(buffer)
    }
}

impl IpvsMsg {
    /// The request's attributes: GET_DEST names its service, GET_SERVICE has none.
    fn attrs(&self) -> Vec<Nested> {
        let IpvsMsg::GetDests(k) = self else {
            return vec![];
        };
        let mut svc = vec![DefaultNla::new(SVC_AF, k.af.to_ne_bytes().to_vec())];
        match k.fwmark {
            Some(m) => svc.push(DefaultNla::new(SVC_FWMARK, m.to_ne_bytes().to_vec())),
            None => svc.extend([
                DefaultNla::new(SVC_PROTOCOL, k.proto.to_ne_bytes().to_vec()),
                DefaultNla::new(SVC_ADDR, k.addr.to_vec()),
                DefaultNla::new(SVC_PORT, k.port.to_be_bytes().to_vec()),
            ]),
        }
        vec![Nested(ATTR_SERVICE, svc)]
    }
}

impl Emitable for IpvsMsg {
    fn buffer_len(&self) -> usize {
        self.attrs().as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs().as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMsg {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(match header.cmd {
            CMD_NEW_SERVICE => IpvsMsg::Service(nested(buf, ATTR_SERVICE).and_then(service)),
            CMD_NEW_DEST => IpvsMsg::Dest(nested(buf, ATTR_DEST).and_then(dest)),
            c => IpvsMsg::Other(c),
        })
    }
}

/// The kernel states message sizes itself: the generic header is the least a message has.
impl Family for GenlMessage<IpvsMsg> {
    fn min_payload(_kind: u16) -> usize {
        4
    }
}

/// nlctrl's family lookup, asked and answered here: netlink-packet-generic's parser of
/// nlctrl answers panics on a truncated policy attribute (found by fuzzing `netlink_batch`),
/// and only the family id is needed, which `attrs` reads with its bounds checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FamilyLookup {
    /// CTRL_CMD_GETFAMILY for this family name.
    Ask(&'static str),
    /// The answer's family id, or why it could not be read.
    Answer(Result<u16, String>),
}

impl GenlFamily for FamilyLookup {
    fn family_name() -> &'static str {
        "nlctrl"
    }
    fn family_id(&self) -> u16 {
        GENL_ID_CTRL
    }
    fn command(&self) -> u8 {
        match self {
            FamilyLookup::Ask(_) => CTRL_CMD_GETFAMILY,
            FamilyLookup::Answer(_) => CTRL_CMD_NEWFAMILY,
        }
    }
    fn version(&self) -> u8 {
        2
    }
}

impl FamilyLookup {
    fn attrs(&self) -> Vec<DefaultNla> {
        match self {
            FamilyLookup::Ask(name) => {
                let mut v = name.as_bytes().to_vec();
                v.push(0); // a C string
                vec![DefaultNla::new(CTRL_ATTR_FAMILY_NAME, v)]
            }
            FamilyLookup::Answer(_) => vec![],
        }
    }
}

impl Emitable for FamilyLookup {
    fn buffer_len(&self) -> usize {
        self.attrs().as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs().as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for FamilyLookup {
    fn parse_with_param(buf: &[u8], _header: GenlHeader) -> Result<Self, DecodeError> {
        let id = nested(buf, CTRL_ATTR_FAMILY_ID).and_then(|v| u16_ne(v, "family id"));
        Ok(FamilyLookup::Answer(id))
    }
}

impl Family for GenlMessage<FamilyLookup> {
    fn min_payload(_kind: u16) -> usize {
        4
    }
}

/// The attributes of a buffer as (kind, value); the first malformed one is the error.
pub(super) fn attrs(buf: &[u8]) -> Result<Vec<(u16, &[u8])>, String> {
    NlasIterator::new(buf)
        .map(|a| {
            a.map(|a: NlaBuffer<&[u8]>| {
                // new_checked: 4 <= length <= the buffer's length.
                let (kind, len) = (a.kind(), usize::from(a.length()));
                (kind, &a.into_inner()[4..len])
            })
            .map_err(|e| format!("malformed attribute: {e}"))
        })
        .collect()
}

/// The value of the (first) attribute `kind` of a message.
fn nested(buf: &[u8], kind: u16) -> Result<&[u8], String> {
    attrs(buf)?
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v)
        .ok_or_else(|| format!("no attribute {kind}"))
}

pub(super) fn fixed<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N], String> {
    v.try_into()
        .map_err(|_| format!("{what}: {} bytes, expected {N}", v.len()))
}

fn u16_ne(v: &[u8], what: &str) -> Result<u16, String> {
    fixed::<2>(v, what).map(u16::from_ne_bytes)
}

fn u32_ne(v: &[u8], what: &str) -> Result<u32, String> {
    fixed::<4>(v, what).map(u32::from_ne_bytes)
}

/// The first 4 (IPv4) or all 16 bytes of an nf_inet_addr.
fn addr(af: u16, raw: &[u8; 16]) -> Result<IpAddr, String> {
    match af {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(*raw))),
        f => Err(format!("address family {f}")),
    }
}

/// An address attribute: the kernel sends the whole 16-byte union; 4 bytes are accepted.
fn raw_addr(v: &[u8]) -> Result<[u8; 16], String> {
    let mut raw = [0; 16];
    match v.len() {
        4 | 16 => raw[..v.len()].copy_from_slice(v),
        n => return Err(format!("address of {n} bytes")),
    }
    Ok(raw)
}

fn service(buf: &[u8]) -> Result<(ServiceKey, IpvsService), String> {
    let mut af = None;
    let (mut proto, mut raw, mut port, mut fwmark, mut sched) = (None, None, None, None, None);
    for (k, v) in attrs(buf)? {
        match k {
            SVC_AF => af = Some(u16_ne(v, "service family")?),
            SVC_PROTOCOL => proto = Some(u16_ne(v, "service protocol")?),
            SVC_ADDR => raw = Some(raw_addr(v)?),
            SVC_PORT => port = Some(fixed::<2>(v, "service port").map(u16::from_be_bytes)?),
            SVC_FWMARK => fwmark = Some(u32_ne(v, "service fwmark")?),
            SVC_SCHED_NAME => {
                sched = Some(
                    String::from_utf8_lossy(v)
                        .trim_end_matches('\0')
                        .to_string(),
                )
            }
            _ => {}
        }
    }
    let af = af.ok_or("service without an address family")?;
    let key = match fwmark {
        Some(m) => ServiceKey {
            af,
            fwmark: Some(m),
            proto: 0,
            addr: [0; 16],
            port: 0,
        },
        None => ServiceKey {
            af,
            fwmark: None,
            proto: proto.ok_or("service without a protocol")?,
            addr: raw.ok_or("service without an address")?,
            port: port.ok_or("service without a port")?,
        },
    };
    let svc = IpvsService {
        proto: match fwmark {
            Some(_) => "fwmark".into(),
            None => crate::model::kernel_names::ip_proto(key.proto as u8),
        },
        addr: addr(af, &key.addr)?,
        port: key.port,
        fwmark,
        scheduler: sched.unwrap_or_default(),
        reals: vec![],
    };
    Ok((key, svc))
}

/// ipvsadm's names of the forwarding methods (IP_VS_CONN_F_FWD_MASK).
fn forward_name(m: u32) -> String {
    match m & 7 {
        0 => "Masq".into(),
        1 => "Local".into(),
        2 => "Tunnel".into(),
        3 => "Route".into(),
        4 => "Bypass".into(),
        n => format!("method {n}"),
    }
}

fn dest(buf: &[u8]) -> Result<Dest, String> {
    let (mut raw, mut family, mut port) = (None, None, None);
    let mut real = IpvsReal {
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: 0,
        forward: String::new(),
        weight: 0,
        active: 0,
        inactive: 0,
    };
    for (k, v) in attrs(buf)? {
        match k {
            DEST_ADDR => raw = Some(raw_addr(v)?),
            DEST_PORT => port = Some(fixed::<2>(v, "real server port").map(u16::from_be_bytes)?),
            DEST_FWD_METHOD => real.forward = forward_name(u32_ne(v, "forwarding method")?),
            DEST_WEIGHT => real.weight = u32_ne(v, "weight")?,
            DEST_ACTIVE_CONNS => real.active = u32_ne(v, "active connections")?.into(),
            DEST_INACT_CONNS => real.inactive = u32_ne(v, "inactive connections")?.into(),
            DEST_ADDR_FAMILY => family = Some(u16_ne(v, "real server family")?),
            _ => {}
        }
    }
    real.port = port.ok_or("real server without a port")?;
    Ok(Dest {
        family,
        addr: raw.ok_or("real server without an address")?,
        real,
    })
}

/// The virtual services of this netns and what could not be read of them.
#[derive(Debug, Default)]
pub struct Read {
    pub services: Vec<IpvsService>,
    pub warnings: Vec<String>,
}

fn request(msg: IpvsMsg, family: u16) -> GenlMessage<IpvsMsg> {
    let mut m = GenlMessage::from_payload(msg);
    m.set_resolved_family_id(family);
    m
}

/// Ok(None) when the kernel has no IPVS (the family is not registered: ip_vs not loaded),
/// which is not an error: most nodes do not use it.
pub fn read() -> Result<Option<Read>, String> {
    let mut sock = NlSocket::open(netlink_sys::protocols::NETLINK_GENERIC)
        .map_err(|e| format!("generic netlink socket: {e}"))?;
    let ask = GenlMessage::from_payload(FamilyLookup::Ask(IpvsMsg::family_name()));
    let mut family = None;
    let mut unread = Vec::new();
    let found = sock.get(ask, |m: GenlMessage<FamilyLookup>| match m.payload {
        FamilyLookup::Answer(Ok(id)) => family = family.or(Some(id)),
        FamilyLookup::Answer(Err(e)) => unread.push(e),
        FamilyLookup::Ask(_) => {}
    });
    match found {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(format!("looking up the IPVS netlink family: {e}")),
        Ok(report) if family.is_none() => {
            let mut why = report.warnings("nlctrl");
            why.extend(unread);
            let sep = if why.is_empty() { "" } else { ": " };
            return Err(format!(
                "the IPVS netlink family's id was not in the answer{sep}{}",
                why.join("; ")
            ));
        }
        Ok(_) => {}
    }
    let family = family.unwrap_or_default();
    let mut out = Read::default();
    let mut keyed = Vec::new();
    let mut malformed = Vec::new();
    let report = sock
        .dump(request(IpvsMsg::GetServices, family), |m| {
            if let IpvsMsg::Service(s) = m.payload {
                match s {
                    Ok(s) => keyed.push(s),
                    Err(e) => malformed.push(format!("a virtual service: {e}")),
                }
            }
        })
        .map_err(|e| format!("dumping IPVS services: {e}"))?;
    out.warnings.extend(report.warnings("IPVS services"));
    for (key, mut svc) in keyed {
        let af = key.af;
        let report = sock.dump(request(IpvsMsg::GetDests(key), family), |m| {
            if let IpvsMsg::Dest(d) = m.payload {
                match d.and_then(|d| {
                    let mut real = d.real;
                    real.addr = addr(d.family.unwrap_or(af), &d.addr)?;
                    Ok(real)
                }) {
                    Ok(real) => svc.reals.push(real),
                    Err(e) => malformed.push(format!("a real server of {}: {e}", svc.name())),
                }
            }
        });
        match report {
            Ok(r) => out
                .warnings
                .extend(r.warnings(&format!("IPVS real servers of {}", svc.name()))),
            Err(e) => out
                .warnings
                .push(format!("IPVS real servers of {} not read: {e}", svc.name())),
        }
        out.services.push(svc);
    }
    out.warnings.extend(
        malformed
            .into_iter()
            .map(|m| format!("IPVS: malformed, not evaluated: {m}")),
    );
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};

    fn nla(kind: u16, v: &[u8]) -> Vec<u8> {
        let mut b = ((4 + v.len()) as u16).to_ne_bytes().to_vec();
        b.extend(kind.to_ne_bytes());
        b.extend(v);
        b.resize(b.len().div_ceil(4) * 4, 0);
        b
    }

    /// A whole netlink message of the IPVS family (id 0x22) with command `cmd`.
    fn wire(cmd: u8, attrs: &[u8]) -> Vec<u8> {
        let mut b = ((16 + 4 + attrs.len()) as u32).to_ne_bytes().to_vec();
        b.extend(0x22u16.to_ne_bytes());
        b.extend(2u16.to_ne_bytes()); // NLM_F_MULTI
        b.extend(7u32.to_ne_bytes());
        b.extend(0u32.to_ne_bytes());
        b.extend([cmd, VERSION, 0, 0]);
        b.extend(attrs);
        b
    }

    fn v4(a: [u8; 4]) -> Vec<u8> {
        let mut v = a.to_vec();
        v.resize(16, 0);
        v
    }

    fn service_bytes() -> Vec<u8> {
        let inner = [
            nla(SVC_AF, &AF_INET.to_ne_bytes()),
            nla(SVC_PROTOCOL, &6u16.to_ne_bytes()),
            nla(SVC_ADDR, &v4([10, 96, 0, 50])),
            nla(SVC_PORT, &80u16.to_be_bytes()),
            nla(SVC_SCHED_NAME, b"rr\0"),
        ]
        .concat();
        wire(CMD_NEW_SERVICE, &nla(ATTR_SERVICE, &inner))
    }

    fn parse(bytes: &[u8]) -> Result<IpvsMsg, String> {
        super::super::netlink::deserialize::<GenlMessage<IpvsMsg>>(bytes).map(|m| match m.payload {
            NetlinkPayload::InnerMessage(g) => g.payload,
            other => panic!("{other:?}"),
        })
    }

    /// The `netlink_batch` fuzzer's input that made netlink-packet-generic's nlctrl parser
    /// panic (a policy attribute shorter than its header): read as a family lookup, it is an
    /// answer without a readable id or a malformed message, never a panic.
    #[test]
    fn a_truncated_nlctrl_answer_does_not_panic() {
        let bytes: &[u8] = &[
            76, 0, 0, 0, 34, 0, 2, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 7, 0, 8, 0, 0, 127, 3, 0,
            0, 0, 1, 2, 0, 1, 128, 2, 0, 0, 0, 6, 0, 0, 41, 180, 179, 75, 119, 147, 0, 3, 0, 10,
            96, 0, 50, 255, 255, 255, 255, 255, 255, 255, 0, 43, 96, 0, 0, 6, 0, 4, 0, 0, 80, 0, 0,
            7, 0, 6, 0, 114, 114, 0, 0, 84, 0, 0, 0, 34, 0, 2, 0, 7, 0, 0, 0, 0, 1, 8, 0, 241, 255,
            2, 16, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
            255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
            255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
            255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 63, 0,
        ];
        let mut report = super::super::netlink::DumpReport::default();
        let mut ids = vec![];
        let _ = super::super::netlink::read_batch::<GenlMessage<FamilyLookup>>(
            bytes,
            7,
            true,
            &mut report,
            &mut |m| ids.push(m.payload),
        );
        assert!(
            ids.iter()
                .all(|m| !matches!(m, FamilyLookup::Answer(Ok(_)))),
            "{ids:?}"
        );
    }

    /// nlctrl's answer to the lookup, as the kernel sends it: the family id is read.
    #[test]
    fn the_family_lookup_answer_gives_the_id() {
        let attrs = [
            nla(CTRL_ATTR_FAMILY_ID, &0x22u16.to_ne_bytes()),
            nla(CTRL_ATTR_FAMILY_NAME, b"IPVS\0"),
        ]
        .concat();
        let mut b = wire(CTRL_CMD_NEWFAMILY, &attrs);
        b[4..6].copy_from_slice(&GENL_ID_CTRL.to_ne_bytes());
        b[17] = 2; // nlctrl's version
        let m = super::super::netlink::deserialize::<GenlMessage<FamilyLookup>>(&b).unwrap();
        let NetlinkPayload::InnerMessage(g) = m.payload else {
            panic!("{m:?}")
        };
        assert_eq!(g.payload, FamilyLookup::Answer(Ok(0x22)));
    }

    #[test]
    fn a_service_as_the_kernel_sends_it() {
        let IpvsMsg::Service(Ok((key, svc))) = parse(&service_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (svc.proto.as_str(), svc.addr.to_string(), svc.port),
            ("tcp", "10.96.0.50".into(), 80)
        );
        assert_eq!(svc.scheduler, "rr");
        assert_eq!((key.af, key.proto, key.port, key.fwmark), (2, 6, 80, None));
    }

    #[test]
    fn a_real_server_as_the_kernel_sends_it() {
        let inner = [
            nla(DEST_ADDR, &v4([10, 0, 1, 103])),
            nla(DEST_PORT, &8080u16.to_be_bytes()),
            nla(DEST_FWD_METHOD, &0u32.to_ne_bytes()),
            nla(DEST_WEIGHT, &3u32.to_ne_bytes()),
            nla(DEST_ACTIVE_CONNS, &2u32.to_ne_bytes()),
            nla(DEST_INACT_CONNS, &5u32.to_ne_bytes()),
            nla(DEST_ADDR_FAMILY, &AF_INET.to_ne_bytes()),
        ]
        .concat();
        let IpvsMsg::Dest(Ok(d)) = parse(&wire(CMD_NEW_DEST, &nla(ATTR_DEST, &inner))).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            addr(d.family.unwrap(), &d.addr).unwrap().to_string(),
            "10.0.1.103"
        );
        assert_eq!(
            (d.real.port, d.real.forward.as_str(), d.real.weight),
            (8080, "Masq", 3)
        );
        assert_eq!((d.real.active, d.real.inactive), (2, 5));
    }

    /// The GET_DEST request names the service with the key the kernel sent, byte for byte,
    /// and is a request for a dump of the IPVS family (a GET: nothing is changed).
    #[test]
    fn the_dest_request_names_its_service() {
        let IpvsMsg::Service(Ok((key, _))) = parse(&service_bytes()).unwrap() else {
            panic!()
        };
        let mut m = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(request(IpvsMsg::GetDests(key), 0x22)),
        );
        m.finalize();
        let mut b = vec![0; m.buffer_len()];
        m.serialize(&mut b);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 0x22);
        assert_eq!((b[16], b[17]), (CMD_GET_DEST, VERSION));
        let svc = nested(&b[20..], ATTR_SERVICE).unwrap();
        let got: Vec<(u16, Vec<u8>)> = attrs(svc)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (SVC_AF, AF_INET.to_ne_bytes().to_vec()),
                (SVC_PROTOCOL, 6u16.to_ne_bytes().to_vec()),
                (SVC_ADDR, v4([10, 96, 0, 50])),
                (SVC_PORT, 80u16.to_be_bytes().to_vec()),
            ]
        );
    }

    /// Truncated and lying messages are malformed services, never a panic: every prefix
    /// of a real message, and one whose address attribute has the wrong size.
    #[test]
    fn malformed_messages_are_said_not_panicked_on() {
        let good = service_bytes();
        for n in 20..good.len() {
            let mut b = good[..n].to_vec();
            b[..4].copy_from_slice(&(n as u32).to_ne_bytes());
            if let Ok(IpvsMsg::Service(s)) = parse(&b) {
                assert!(s.is_err(), "{n} bytes parsed as a whole service: {s:?}");
            }
        }
        let inner = [
            nla(SVC_AF, &AF_INET.to_ne_bytes()),
            nla(SVC_PROTOCOL, &6u16.to_ne_bytes()),
            nla(SVC_ADDR, &[10, 96, 0]),
            nla(SVC_PORT, &80u16.to_be_bytes()),
        ]
        .concat();
        let IpvsMsg::Service(Err(e)) =
            parse(&wire(CMD_NEW_SERVICE, &nla(ATTR_SERVICE, &inner))).unwrap()
        else {
            panic!()
        };
        assert!(e.contains("address of 3 bytes"), "{e}");
        // A dest of family 7: said, not guessed.
        assert!(addr(7, &[0; 16]).unwrap_err().contains("family 7"));
    }

    #[test]
    fn fwmark_services_are_named_by_their_mark() {
        let inner = [
            nla(SVC_AF, &AF_INET.to_ne_bytes()),
            nla(SVC_FWMARK, &0x10u32.to_ne_bytes()),
            nla(SVC_SCHED_NAME, b"wrr\0"),
        ]
        .concat();
        let IpvsMsg::Service(Ok((key, svc))) =
            parse(&wire(CMD_NEW_SERVICE, &nla(ATTR_SERVICE, &inner))).unwrap()
        else {
            panic!()
        };
        assert_eq!((svc.fwmark, key.fwmark), (Some(0x10), Some(0x10)));
        assert_eq!(IpvsMsg::GetDests(key).attrs()[0].1.len(), 2);
    }
}
