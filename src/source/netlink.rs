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
        M: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        self.request(req, NLM_F_REQUEST | NLM_F_DUMP, on_msg)
    }

    /// Send `req` as a single GET (no dump) and hand the answer(s) to `on_msg`.
    pub fn get<M>(&mut self, req: M, on_msg: impl FnMut(M)) -> Result<DumpReport, NlError>
    where
        M: NetlinkSerializable + NetlinkDeserializable + Debug,
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
        M: NetlinkSerializable + NetlinkDeserializable + Debug,
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
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(self.buf[off..off + 4].try_into().unwrap()) as usize;
                if len < 16 || off + len > n {
                    report.undecodable += 1;
                    report
                        .first_decode_error
                        .get_or_insert_with(|| format!("bad netlink length {len}"));
                    break;
                }
                let bytes = &self.buf[off..off + len];
                off += (len + 3) & !3;
                let seq = u32::from_ne_bytes(bytes[8..12].try_into().unwrap());
                if seq != self.seq {
                    continue; // a stale answer to an earlier request
                }
                let msg_flags = u16::from_ne_bytes(bytes[6..8].try_into().unwrap());
                if msg_flags & NLM_F_DUMP_INTR != 0 {
                    report.interrupted = true;
                }
                match NetlinkMessage::<M>::deserialize(bytes) {
                    Ok(m) => match m.payload {
                        NetlinkPayload::Done(_) => return Ok(report),
                        NetlinkPayload::Error(e) => match e.code {
                            Some(code) => {
                                return Err(NlError::Kernel(io::Error::from_raw_os_error(
                                    -code.get(),
                                )));
                            }
                            None => return Ok(report), // an ACK
                        },
                        NetlinkPayload::InnerMessage(inner) => {
                            on_msg(inner);
                            if !multipart {
                                return Ok(report);
                            }
                        }
                        NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
                        _ => {}
                    },
                    Err(e) => {
                        report.undecodable += 1;
                        report
                            .first_decode_error
                            .get_or_insert_with(|| e.to_string());
                        // A DONE we could not decode still ends the dump.
                        let ty = u16::from_ne_bytes(bytes[4..6].try_into().unwrap());
                        if ty == netlink_packet_core::NLMSG_DONE {
                            return Ok(report);
                        }
                    }
                }
            }
        }
    }
}
