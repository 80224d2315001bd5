//! One synchronous netlink request/dump primitive shared by every collector.
//! It only ever sends GET requests with NLM_F_DUMP (or plain GET): hopscope is read-only.

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};
use netlink_sys::{Socket, SocketAddr};
use std::fmt::Debug;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum NlError {
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel answered the request with an error (EPERM, EOPNOTSUPP, ...).
    #[error("kernel refused the request: {0}")]
    Kernel(io::Error),
}

impl NlError {
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            NlError::Io(e) | NlError::Kernel(e) => e.raw_os_error(),
        }
    }
    pub fn is_permission(&self) -> bool {
        matches!(self.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
    }
}

/// How a dump ended besides its messages: the kernel may flag it inconsistent
/// (NLM_F_DUMP_INTR, the table changed while being dumped) and some messages may not
/// decode. Both are reported to the user, never hidden.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DumpReport {
    pub interrupted: bool,
    pub undecodable: usize,
    pub first_decode_error: Option<String>,
}

impl DumpReport {
    pub fn warnings(&self, what: &str) -> Vec<String> {
        let mut w = Vec::new();
        if self.interrupted {
            w.push(format!(
                "{what}: the kernel flagged the dump as interrupted (it changed while being read); shown as read, may be inconsistent"
            ));
        }
        if self.undecodable > 0 {
            w.push(format!(
                "{what}: {} message(s) could not be decoded and are not shown ({})",
                self.undecodable,
                self.first_decode_error.as_deref().unwrap_or("?")
            ));
        }
        w
    }
}

pub struct NlSocket {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

// Large enough for the kernel's biggest dump skb; avoids truncated reads.
const RECV_BUF: usize = 1 << 20;

impl NlSocket {
    pub fn open(protocol: isize) -> Result<Self, NlError> {
        let mut sock = Socket::new(protocol)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Dumps of 100k routes are large; a bigger receive buffer avoids ENOBUFS.
        let _ = sock.set_rx_buf_sz(8 << 20);
        Ok(NlSocket {
            sock,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Send `req` as a dump request and hand every answer to `on_msg`.
    pub fn dump<M>(&mut self, req: M, on_msg: impl FnMut(M)) -> Result<DumpReport, NlError>
    where
        M: NetlinkSerializable + Family,
    {
        self.request(req, NLM_F_REQUEST | NLM_F_DUMP, on_msg)
    }

    /// Send `req` as a single GET (no dump) and hand the answer(s) to `on_msg`.
    pub fn get<M>(&mut self, req: M, on_msg: impl FnMut(M)) -> Result<DumpReport, NlError>
    where
        M: NetlinkSerializable + Family,
    {
        self.request(req, NLM_F_REQUEST, on_msg)
    }

    fn request<M>(
        &mut self,
        req: M,
        flags: u16,
        mut on_msg: impl FnMut(M),
    ) -> Result<DumpReport, NlError>
    where
        M: NetlinkSerializable + Family,
    {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(req));
        msg.finalize();
        let mut out = vec![0; msg.buffer_len()];
        msg.serialize(&mut out);
        self.sock.send(&out, 0)?;

        let multipart = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut report = DumpReport::default();
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let done = read_batch(
                &self.buf[..n],
                self.seq,
                multipart,
                &mut report,
                &mut on_msg,
            );
            // An XFRM dump carries the keys: the buffer does not keep them once decoded.
            zeroize::Zeroize::zeroize(&mut self.buf[..n]);
            if done? {
                return Ok(report);
            }
        }
    }
}

/// A netlink family's messages, with the fixed header each message type starts with.
/// netlink-packet-xfrm 0.5 slices that header without checking its length (a short message
/// panics: found by the fuzzer), so a message shorter than the kernel's own minimum for its
/// type (`xfrm_msg_min` in net/xfrm/xfrm_user.c) is refused before it is parsed, as the
/// kernel refuses it.
pub trait Family: NetlinkDeserializable + Debug {
    /// The least payload a message of `kind` carries (0: no fixed header, or checked by the
    /// parser itself).
    fn min_payload(_kind: u16) -> usize {
        0
    }
}

impl Family for netlink_packet_route::RouteNetlinkMessage {}

impl Family for netlink_packet_xfrm::XfrmMessage {
    fn min_payload(kind: u16) -> usize {
        use netlink_packet_xfrm::constants::*;
        match kind {
            XFRM_MSG_NEWSA | XFRM_MSG_UPDSA => 224, // xfrm_usersa_info
            XFRM_MSG_DELSA | XFRM_MSG_GETSA => 24,  // xfrm_usersa_id
            XFRM_MSG_NEWPOLICY | XFRM_MSG_UPDPOLICY => 168, // xfrm_userpolicy_info
            XFRM_MSG_DELPOLICY | XFRM_MSG_GETPOLICY => 64, // xfrm_userpolicy_id
            XFRM_MSG_MIGRATE => 64,                 // xfrm_userpolicy_id
            XFRM_MSG_ALLOCSPI => 232,               // xfrm_userspi_info
            XFRM_MSG_ACQUIRE => 280,                // xfrm_user_acquire
            XFRM_MSG_EXPIRE => 232,                 // xfrm_user_expire
            XFRM_MSG_POLEXPIRE => 176,              // xfrm_user_polexpire
            XFRM_MSG_FLUSHSA => 1,                  // xfrm_usersa_flush
            XFRM_MSG_NEWAE | XFRM_MSG_GETAE => 48,  // xfrm_aevent_id
            XFRM_MSG_REPORT => 60,                  // xfrm_user_report
            XFRM_MSG_MAPPING => 64,                 // xfrm_user_mapping
            XFRM_MSG_NEWSADINFO | XFRM_MSG_GETSADINFO => 4, // u32 flags
            XFRM_MSG_NEWSPDINFO | XFRM_MSG_GETSPDINFO => 4, // u32 flags
            XFRM_MSG_SETDEFAULT | XFRM_MSG_GETDEFAULT => 3, // xfrm_userpolicy_default
            _ => 0,
        }
    }
}

/// The messages in one recv()'s worth of netlink bytes, each whole (header included), in
/// order; a length that does not fit the buffer ends the walk as `Err(length)`. The one
/// framing loop of dump answers (`read_batch`) and multicast events (`monitor::decode`).
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Result<&[u8], usize>> {
    let mut off = 0;
    let mut broken = false;
    std::iter::from_fn(move || {
        if broken || off + 16 > buf.len() {
            return None;
        }
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        if len < 16 || off + len > buf.len() {
            broken = true;
            return Some(Err(len));
        }
        let bytes = &buf[off..off + len];
        off += (len + 3) & !3;
        Some(Ok(bytes))
    })
}

/// One whole netlink message (header included), or why it cannot be read.
pub fn deserialize<M: Family>(bytes: &[u8]) -> Result<NetlinkMessage<M>, String> {
    let kind = u16::from_ne_bytes([bytes[4], bytes[5]]);
    let min = M::min_payload(kind);
    if bytes.len() < 16 + min {
        return Err(format!(
            "message type {kind} of {} bytes, shorter than its {min}-byte header",
            bytes.len()
        ));
    }
    NetlinkMessage::<M>::deserialize(bytes).map_err(|e| e.to_string())
}

/// Decode one recv()'s worth of netlink messages answering request `seq`.
/// Returns true when the answer is complete (DONE, an ACK, or a single reply).
/// Messages that do not decode are counted in `report`, never silently dropped.
pub fn read_batch<M>(
    buf: &[u8],
    seq: u32,
    multipart: bool,
    report: &mut DumpReport,
    on_msg: &mut impl FnMut(M),
) -> Result<bool, NlError>
where
    M: Family,
{
    for frame in messages(buf) {
        let bytes = match frame {
            Ok(bytes) => bytes,
            Err(len) => {
                report.undecodable += 1;
                report
                    .first_decode_error
                    .get_or_insert_with(|| format!("bad netlink length {len}"));
                return Ok(false);
            }
        };
        if u32::from_ne_bytes(bytes[8..12].try_into().unwrap()) != seq {
            continue; // a stale answer to an earlier request
        }
        if u16::from_ne_bytes(bytes[6..8].try_into().unwrap()) & NLM_F_DUMP_INTR != 0 {
            report.interrupted = true;
        }
        match deserialize::<M>(bytes) {
            Ok(m) => match m.payload {
                NetlinkPayload::Done(_) => return Ok(true),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        // The kernel sends -errno; anything may be on the socket, and
                        // i32::MIN has no negation.
                        Some(code) => Err(NlError::Kernel(io::Error::from_raw_os_error(
                            code.get().saturating_neg(),
                        ))),
                        None => Ok(true), // an ACK
                    };
                }
                NetlinkPayload::InnerMessage(inner) => {
                    on_msg(inner);
                    if !multipart {
                        return Ok(true);
                    }
                }
                _ => {}
            },
            Err(e) => {
                report.undecodable += 1;
                report.first_decode_error.get_or_insert(e);
                // A DONE we could not decode still ends the dump.
                if u16::from_ne_bytes(bytes[4..6].try_into().unwrap())
                    == netlink_packet_core::NLMSG_DONE
                {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use netlink_packet_core::{DoneMessage, ErrorMessage, NLM_F_MULTIPART, NLMSG_ERROR};
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_packet_route::rule::{RuleAttribute, RuleMessage};

    fn wire(payload: NetlinkPayload<RouteNetlinkMessage>, seq: u32, flags: u16) -> Vec<u8> {
        let mut h = NetlinkHeader::default();
        h.sequence_number = seq;
        h.flags = flags;
        let mut m = NetlinkMessage::new(h, payload);
        m.finalize();
        let mut b = vec![0; m.buffer_len()];
        m.serialize(&mut b);
        b
    }

    /// The `netlink_batch` fuzzer's input: an error message whose code is i32::MIN (no
    /// negation) is a kernel error like any other, not an overflow panic.
    #[test]
    fn an_error_code_without_a_negation_is_an_error_not_a_panic() {
        let bytes = [
            20, 0, 0, 0, 2, 0, 3, 0, 7, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 128, 239, 0, 0, 0, 0, 0, 5,
            0, 67, 29, 76, 175, 0, 0, 20, 0, 0,
        ];
        let mut report = DumpReport::default();
        let got = read_batch::<netlink_packet_xfrm::XfrmMessage>(
            &bytes,
            7,
            true,
            &mut report,
            &mut |_| {},
        );
        assert!(matches!(got, Err(NlError::Kernel(_))), "{got:?}");
    }

    fn rule(prio: u32) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut r = RuleMessage::default();
        r.header.family = netlink_packet_route::AddressFamily::Inet;
        r.attributes.push(RuleAttribute::Priority(prio));
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRule(r))
    }

    /// A raw message of a given type whose body cannot decode as that type.
    fn garbage(ty: u16, seq: u32) -> Vec<u8> {
        let mut b = vec![0u8; 20];
        b[0..4].copy_from_slice(&20u32.to_ne_bytes());
        b[4..6].copy_from_slice(&ty.to_ne_bytes());
        b[8..12].copy_from_slice(&seq.to_ne_bytes());
        b
    }

    fn collect(buf: &[u8]) -> (Result<bool, NlError>, Vec<RouteNetlinkMessage>, DumpReport) {
        let mut got = Vec::new();
        let mut report = DumpReport::default();
        let r = read_batch(buf, 7, true, &mut report, &mut |m| got.push(m));
        (r, got, report)
    }

    #[test]
    fn dump_batch_delivers_messages_and_reports_trouble() {
        let mut buf = wire(rule(1), 7, NLM_F_MULTIPART);
        buf.extend(wire(rule(9), 7, NLM_F_MULTIPART | NLM_F_DUMP_INTR));
        buf.extend(wire(rule(5), 6, NLM_F_MULTIPART)); // stale: other request
        buf.extend(garbage(32, 7)); // RTM_NEWRULE too short to decode
        buf.extend(wire(
            NetlinkPayload::Done(DoneMessage::default()),
            7,
            NLM_F_MULTIPART,
        ));
        let (r, got, report) = collect(&buf);
        assert!(r.unwrap(), "DONE ends the dump");
        assert_eq!(got.len(), 2);
        assert!(report.interrupted);
        assert_eq!(report.undecodable, 1);
        let w = report.warnings("rules");
        assert!(
            w.iter().any(|w| w.contains("interrupted"))
                && w.iter().any(|w| w.contains("1 message(s)"))
        );
    }

    #[test]
    fn dump_batch_without_done_asks_for_more() {
        let (r, got, _) = collect(&wire(rule(1), 7, NLM_F_MULTIPART));
        assert!(!r.unwrap());
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn truncated_batch_is_counted_not_hidden() {
        let mut buf = wire(rule(1), 7, NLM_F_MULTIPART);
        let mut cut = wire(rule(2), 7, NLM_F_MULTIPART);
        cut.truncate(cut.len() - 4);
        buf.extend(cut);
        let (r, got, report) = collect(&buf);
        assert!(!r.unwrap());
        assert_eq!(got.len(), 1);
        assert_eq!(report.undecodable, 1);
        assert!(report.first_decode_error.unwrap().contains("length"));
    }

    #[test]
    fn kernel_error_becomes_an_error() {
        let mut e = ErrorMessage::default();
        e.code = std::num::NonZeroI32::new(-libc::EPERM);
        let buf = wire(NetlinkPayload::Error(e), 7, 0);
        let (r, _, _) = collect(&buf);
        let err = r.unwrap_err();
        assert!(err.is_permission(), "{err}");
        assert_eq!(
            u16::from_ne_bytes(buf[4..6].try_into().unwrap()),
            NLMSG_ERROR
        );
    }

    /// The fuzzers' inputs: an XFRM_MSG_DELPOLICY of 60 payload bytes in a dump answer, and an
    /// XFRM_MSG_EXPIRE of 48 in a notification batch (netlink-packet-xfrm sliced past their
    /// end and panicked).
    const SHORT_DELPOLICY_BATCH: &[u8] = &[
        0x4c, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0xe5, 0x16, 0x00,
        0x00, 0x02, 0x08, 0x80, 0xfe, 0x01, 0x00, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00, 0x7f, 0x40,
        0x00, 0x01, 0x08, 0x00, 0x02, 0x00, 0x7f, 0x00, 0x00, 0x01, 0x07, 0x00, 0x03, 0x00, 0x6c,
        0x6f, 0x00, 0x00, 0x08, 0x00, 0x08, 0x00, 0x80, 0x00, 0x00, 0x00, 0x04, 0x00, 0x06, 0x00,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x22, 0x28, 0x15, 0x00, 0x22, 0x28, 0x15,
        0x00, 0x50, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0xe5, 0x16, 0x00,
        0x00, 0x02, 0x18, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00, 0x0a, 0x00,
        0x01, 0x01, 0x00, 0x08, 0x00, 0x80, 0x00, 0x00, 0x00, 0x05, 0x00, 0x0b, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x48, 0x57, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0xe5,
        0x16, 0x00, 0x00, 0x0a, 0x40, 0xc0, 0x00, 0x03, 0x00, 0x00, 0x00, 0x14, 0x00, 0x01, 0x00,
        0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x0f, 0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x25, 0x28,
        0x15, 0x00, 0x25, 0x28, 0x15, 0x00, 0x08, 0x00, 0x08, 0x00, 0xc0, 0x00, 0x00, 0x00,
    ];
    pub(crate) const SHORT_EXPIRE_NOTIFICATIONS: &[u8] = &[
        0x40, 0x00, 0x00, 0x00, 0x18, 0x00, 0x02, 0x00, 0x07, 0x00, 0xff, 0xff, 0x00, 0x00, 0xe5,
        0x16, 0x00, 0x02, 0x02, 0x10, 0x00, 0x00, 0xc8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00,
        0x02, 0x00, 0x07, 0x00, 0x2d, 0x2d, 0x2d, 0x2d, 0x2d, 0x2d, 0xff, 0xff, 0x00, 0x00, 0xe5,
        0x00, 0x3c, 0x00, 0x00, 0x00, 0x18, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0xe5, 0x16,
        0x00, 0x00, 0x02, 0x10, 0x00, 0x00, 0xfe, 0x03, 0x00, 0x01, 0x10, 0x00, 0x01, 0x00, 0x0a,
        0x09, 0x00, 0x00, 0x08, 0x00, 0x05, 0x00, 0x0a, 0x5e, 0x5e, 0x5e, 0x0a, 0x08, 0x00, 0x00,
        0x0c, 0x00, 0x08, 0x00, 0x08, 0x00, 0x02, 0x00, 0x78, 0x05, 0x00, 0x01, 0x2b, 0x00, 0x00,
        0x08, 0x00, 0x04, 0x00, 0x03, 0x00, 0x80, 0x02, 0x08, 0x00, 0x04, 0x00, 0x03, 0x00, 0x00,
        0x00, 0x00,
    ];

    #[test]
    fn xfrm_messages_shorter_than_their_header_are_counted_not_parsed() {
        use netlink_packet_xfrm::XfrmMessage;
        let mut report = DumpReport::default();
        let _ = read_batch::<XfrmMessage>(SHORT_DELPOLICY_BATCH, 7, true, &mut report, &mut |_| {});
        assert!(report.undecodable >= 1, "{report:?}");
        assert!(
            report
                .first_decode_error
                .as_deref()
                .unwrap_or("")
                .contains("shorter than"),
            "{report:?}"
        );
        // Every message type the crate knows, one byte short of the kernel's minimum, and
        // empty: refused, never a panic.
        for kind in 0x10u16..=0x28 {
            let min = XfrmMessage::min_payload(kind);
            for payload in [0, min.saturating_sub(1)] {
                let mut m = vec![0u8; 16 + payload];
                m[0..4].copy_from_slice(&((16 + payload) as u32).to_ne_bytes());
                m[4..6].copy_from_slice(&kind.to_ne_bytes());
                let mut report = DumpReport::default();
                let _ = read_batch::<XfrmMessage>(&m, 0, true, &mut report, &mut |_| {});
                if min > 0 {
                    assert_eq!(report.undecodable, 1, "type {kind:#x}, {payload} bytes");
                }
            }
        }
    }
}
