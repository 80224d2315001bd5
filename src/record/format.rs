//! The recording file's bytes (docs/record.md): a header line naming the format and its
//! version, then records, each `length (u32 LE) · CRC-32 of kind+body (u32 LE) · kind (u8) ·
//! body`. A record cut short (the recorder was killed, the disk filled) or damaged fails its
//! length or checksum: the reader keeps every record before it and says where it stopped.

use super::{Meta, RecSample, Stamp};
use crate::model::event::Event;
use crate::model::{Names, Netfilter, NodeState};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// The first bytes of every recording; the number after it is the format version.
pub const MAGIC: &[u8] = b"HOPSCOPE-RECORDING ";
pub const VERSION: u32 = 1;
/// A record larger than this is damage, not data (a frame is at most 256 KiB; a state of
/// 100k routes some tens of MiB).
pub const MAX_RECORD: u32 = 256 << 20;

/// Record kinds. JSON bodies for the node's facts (the schema of `snapshot --json`), binary
/// bodies for frames, which are the bulk.
mod kind {
    pub const META: u8 = 1;
    pub const STATE: u8 = 2;
    pub const NETFILTER: u8 = 3;
    pub const EVENT: u8 = 4;
    pub const SAMPLE: u8 = 5;
    pub const IFACE: u8 = 6;
    pub const FRAME: u8 = 7;
    pub const OPENED: u8 = 8;
    pub const NAMES: u8 = 9;
    pub const END: u8 = 10;
}

/// An interface frames were captured on: `id` is what frame records refer to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iface {
    pub id: u16,
    pub node: u16,
    pub name: String,
    /// pcap LINKTYPE_ value.
    pub linktype: u16,
}

/// Why and when the recording ended, with its totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    pub at: Stamp,
    pub reason: String,
    pub frames: u64,
    /// Frames hopscope or the kernel dropped while recording.
    pub dropped: u64,
    pub bytes: u64,
}

/// One captured frame. Timestamps are the capture's (wall clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRec {
    pub iface: u16,
    pub sec: i64,
    pub nsec: u32,
    /// On-wire length (the data may be shorter: snap length).
    pub len: u32,
    pub data: Vec<u8>,
}

/// The decryption of the frame recorded just before: the ESP trailer's next header and the
/// opened payload (the inner packet), so a replay without keys shows it decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedRec {
    pub next_header: u8,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum Record {
    Meta(Box<Meta>),
    /// A full state of one node: the first dump, or after the kernel overran the monitor.
    State {
        node: u16,
        at: Stamp,
        state: Box<NodeState>,
    },
    Netfilter {
        node: u16,
        at: Stamp,
        netfilter: Box<Netfilter>,
    },
    /// One netlink change as it came.
    Event {
        node: u16,
        at: Stamp,
        event: Box<Event>,
    },
    Sample {
        node: u16,
        at: Stamp,
        sample: Box<RecSample>,
    },
    Iface(Iface),
    Frame(FrameRec),
    Opened(OpenedRec),
    Names {
        at: Stamp,
        names: Box<Names>,
    },
    End(End),
    /// A kind this version does not know (a newer hopscope wrote it): skipped.
    Unknown(u8),
}

#[derive(Serialize, Deserialize)]
struct NodeBody<T> {
    node: u16,
    at: Stamp,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize, Deserialize)]
struct StateBody<'a> {
    state: std::borrow::Cow<'a, NodeState>,
}

/// Write the header line.
pub fn write_header(w: &mut impl Write) -> io::Result<()> {
    w.write_all(MAGIC)?;
    writeln!(w, "{VERSION}")
}

/// The bytes of one record, framed. Keys in states and events are written as the caller's
/// `reveal_secrets` scope says (redacted unless `--show-keys`).
pub fn encode(r: &Record, out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    out.extend([0; 8]);
    let json = |out: &mut Vec<u8>, k: u8, v: &dyn erased::Json| -> io::Result<()> {
        out.push(k);
        v.write(out)
    };
    match r {
        Record::Meta(m) => json(out, kind::META, m.as_ref())?,
        Record::State { node, at, state } => json(
            out,
            kind::STATE,
            &NodeBody {
                node: *node,
                at: *at,
                body: StateBody {
                    state: std::borrow::Cow::Borrowed(state.as_ref()),
                },
            },
        )?,
        Record::Netfilter {
            node,
            at,
            netfilter,
        } => json(
            out,
            kind::NETFILTER,
            &NodeBody {
                node: *node,
                at: *at,
                body: serde_json::json!({ "netfilter": netfilter }),
            },
        )?,
        Record::Event { node, at, event } => json(
            out,
            kind::EVENT,
            &NodeBody {
                node: *node,
                at: *at,
                body: serde_json::json!({ "event": event }),
            },
        )?,
        Record::Sample { node, at, sample } => json(
            out,
            kind::SAMPLE,
            &NodeBody {
                node: *node,
                at: *at,
                body: sample.as_ref(),
            },
        )?,
        Record::Iface(i) => json(out, kind::IFACE, i)?,
        Record::Names { at, names } => json(
            out,
            kind::NAMES,
            &serde_json::json!({ "at": at, "names": names }),
        )?,
        Record::End(e) => json(out, kind::END, e)?,
        Record::Frame(f) => {
            out.push(kind::FRAME);
            out.extend(f.iface.to_le_bytes());
            out.extend(f.sec.to_le_bytes());
            out.extend(f.nsec.to_le_bytes());
            out.extend(f.len.to_le_bytes());
            out.extend(&f.data);
        }
        Record::Unknown(k) => {
            return Err(io::Error::other(format!(
                "record kind {k} cannot be written"
            )));
        }
        Record::Opened(o) => {
            out.push(kind::OPENED);
            out.push(o.next_header);
            out.extend(&o.payload);
        }
    }
    let body_len = (out.len() - 9) as u32;
    let crc = crc32fast::hash(&out[8..]);
    out[0..4].copy_from_slice(&body_len.to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// JSON bodies behind one object-safe face, so `encode` writes them all the same way.
mod erased {
    pub trait Json {
        fn write(&self, out: &mut Vec<u8>) -> std::io::Result<()>;
    }
    impl<T: serde::Serialize> Json for T {
        fn write(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
            serde_json::to_writer(out, self).map_err(std::io::Error::other)
        }
    }
}

/// Why reading stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Byte offset of the first record not read.
    pub offset: u64,
    pub why: String,
}

/// Reads records one by one; a cut-off or damaged tail ends the stream with `cut` set.
pub struct Reader<R> {
    r: R,
    offset: u64,
    buf: Vec<u8>,
    pub cut: Option<Cut>,
}

impl<R: Read> Reader<R> {
    /// Check the header line: the format and a version this build reads.
    pub fn new(mut r: R) -> anyhow::Result<Reader<R>> {
        let mut head = vec![0u8; MAGIC.len()];
        r.read_exact(&mut head)
            .map_err(|_| anyhow::anyhow!("not a hopscope recording (too short)"))?;
        if head != MAGIC {
            anyhow::bail!("not a hopscope recording (it does not start with {MAGIC:?})");
        }
        let mut line = Vec::new();
        let mut b = [0u8];
        while r.read(&mut b)? == 1 && b[0] != b'\n' && line.len() < 16 {
            line.push(b[0]);
        }
        let version: u32 = std::str::from_utf8(&line)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("hopscope recording with an unreadable version"))?;
        if version != VERSION {
            anyhow::bail!(
                "recording format version {version}; this hopscope reads version {VERSION} (docs/record.md)"
            );
        }
        Ok(Reader {
            r,
            offset: (MAGIC.len() + line.len() + 1) as u64,
            buf: Vec::new(),
            cut: None,
        })
    }

    fn stop(&mut self, why: String) -> Option<Record> {
        self.cut = Some(Cut {
            offset: self.offset,
            why,
        });
        None
    }

    /// The next whole, intact record; None at the end or at the first damaged one.
    pub fn next_record(&mut self) -> Option<Record> {
        if self.cut.is_some() {
            return None;
        }
        let mut head = [0u8; 8];
        match read_full(&mut self.r, &mut head) {
            Ok(0) => return None, // a clean end between records
            Ok(8) => {}
            Ok(n) => return self.stop(format!("cut off inside a record header ({n} of 8 bytes)")),
            Err(e) => return self.stop(format!("read error: {e}")),
        }
        let len = u32::from_le_bytes(head[0..4].try_into().unwrap());
        let crc = u32::from_le_bytes(head[4..8].try_into().unwrap());
        if len > MAX_RECORD {
            return self.stop(format!("damaged record (length {len})"));
        }
        // The buffer grows with the bytes that really come: a damaged length near the limit
        // in a 12-byte file must not allocate (and zero) 256 MiB first.
        let want = u64::from(len) + 1;
        self.buf.clear();
        match (&mut self.r).take(want).read_to_end(&mut self.buf) {
            Ok(n) if n as u64 == want => {}
            Ok(n) => {
                return self.stop(format!("cut off inside a record ({n} of {want} bytes)"));
            }
            Err(e) => return self.stop(format!("read error: {e}")),
        }
        if crc32fast::hash(&self.buf) != crc {
            return self.stop("damaged record (checksum)".into());
        }
        match decode(&self.buf) {
            Ok(r) => {
                self.offset += 8 + self.buf.len() as u64;
                Some(r)
            }
            Err(e) => self.stop(format!("unreadable record: {e}")),
        }
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Record;
    fn next(&mut self) -> Option<Record> {
        self.next_record()
    }
}

/// Read until `buf` is full or the input ends; how many bytes came.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[derive(Deserialize)]
struct NetfilterBody {
    netfilter: Box<Netfilter>,
}
#[derive(Deserialize)]
struct EventBody {
    event: Box<Event>,
}
#[derive(Deserialize)]
struct OwnedState {
    state: Box<NodeState>,
}
#[derive(Deserialize)]
struct NamesBody {
    at: Stamp,
    names: Box<Names>,
}

fn decode(b: &[u8]) -> anyhow::Result<Record> {
    let (k, body) = (b[0], &b[1..]);
    let node_body = |body: &[u8]| -> anyhow::Result<(u16, Stamp, serde_json::Value)> {
        let v: NodeBody<serde_json::Value> = serde_json::from_slice(body)?;
        Ok((v.node, v.at, v.body))
    };
    Ok(match k {
        kind::META => Record::Meta(serde_json::from_slice(body)?),
        kind::STATE => {
            let (node, at, v) = node_body(body)?;
            let s: OwnedState = serde_json::from_value(v)?;
            Record::State {
                node,
                at,
                state: s.state,
            }
        }
        kind::NETFILTER => {
            let (node, at, v) = node_body(body)?;
            let n: NetfilterBody = serde_json::from_value(v)?;
            Record::Netfilter {
                node,
                at,
                netfilter: n.netfilter,
            }
        }
        kind::EVENT => {
            let (node, at, v) = node_body(body)?;
            let e: EventBody = serde_json::from_value(v)?;
            Record::Event {
                node,
                at,
                event: e.event,
            }
        }
        kind::SAMPLE => {
            let (node, at, v) = node_body(body)?;
            Record::Sample {
                node,
                at,
                sample: serde_json::from_value(v)?,
            }
        }
        kind::IFACE => Record::Iface(serde_json::from_slice(body)?),
        kind::NAMES => {
            let n: NamesBody = serde_json::from_slice(body)?;
            Record::Names {
                at: n.at,
                names: n.names,
            }
        }
        kind::END => Record::End(serde_json::from_slice(body)?),
        kind::FRAME => {
            anyhow::ensure!(body.len() >= 18, "frame record of {} bytes", body.len());
            Record::Frame(FrameRec {
                iface: u16::from_le_bytes(body[0..2].try_into()?),
                sec: i64::from_le_bytes(body[2..10].try_into()?),
                nsec: u32::from_le_bytes(body[10..14].try_into()?),
                len: u32::from_le_bytes(body[14..18].try_into()?),
                data: body[18..].to_vec(),
            })
        }
        kind::OPENED => {
            anyhow::ensure!(!body.is_empty(), "empty decryption record");
            Record::Opened(OpenedRec {
                next_header: body[0],
                payload: body[1..].to_vec(),
            })
        }
        // A newer hopscope's record kind: skip it rather than refuse the file.
        k => Record::Unknown(k),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record header claiming the largest length, in a file that ends right after it:
    /// reading says it is cut off, and holds no more memory than the bytes that came
    /// (it used to allocate and zero the whole claimed 256 MiB first).
    #[test]
    fn a_huge_claimed_length_allocates_only_what_comes() {
        let mut file = MAGIC.to_vec();
        file.extend(format!("{VERSION}\n").bytes());
        file.extend(MAX_RECORD.to_le_bytes());
        file.extend(0u32.to_le_bytes());
        file.extend([kind::META, b'{']);
        let mut r = Reader::new(file.as_slice()).expect("the header is valid");
        assert!(r.next_record().is_none());
        let cut = r.cut.as_ref().expect("a cut is reported");
        assert!(
            cut.why.contains("cut off inside a record (2 of"),
            "{}",
            cut.why
        );
        assert!(
            r.buf.capacity() < 1 << 20,
            "{} bytes held",
            r.buf.capacity()
        );
    }
}
