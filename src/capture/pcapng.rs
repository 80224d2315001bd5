//! A minimal pcapng writer: one Section Header Block, one Interface Description Block per
//! captured interface (name, link type, nanosecond timestamps), Enhanced Packet Blocks with the
//! direction in epb_flags. No Decryption Secrets Block is ever written: keys stay out of files.

use std::io::{self, Write};

pub struct PcapngWriter<W: Write> {
    out: W,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend(code.to_le_bytes());
    buf.extend((value.len() as u16).to_le_bytes());
    buf.extend(value);
    buf.extend(std::iter::repeat_n(0u8, pad4(value.len())));
}

fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = (12 + body.len()) as u32;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

/// Packet direction for epb_flags (bits 0-1: 1 inbound, 2 outbound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpbDir {
    Unknown = 0,
    In = 1,
    Out = 2,
}

impl<W: Write> PcapngWriter<W> {
    /// Write the section header and one IDB per `(name, linktype, snaplen)`; interface ids are
    /// their positions in `ifaces`.
    pub fn new(mut out: W, ifaces: &[(String, u16, u32)]) -> io::Result<PcapngWriter<W>> {
        let mut shb = Vec::new();
        shb.extend(0x1A2B_3C4Du32.to_le_bytes());
        shb.extend(1u16.to_le_bytes());
        shb.extend(0u16.to_le_bytes());
        shb.extend((-1i64).to_le_bytes());
        option(&mut shb, 4, b"hopscope capture"); // shb_userappl
        option(&mut shb, 0, &[]);
        block(&mut out, 0x0A0D_0D0A, &shb)?;
        for (name, linktype, snaplen) in ifaces {
            let mut idb = Vec::new();
            idb.extend(linktype.to_le_bytes());
            idb.extend(0u16.to_le_bytes());
            idb.extend(snaplen.to_le_bytes());
            option(&mut idb, 2, name.as_bytes()); // if_name
            option(&mut idb, 9, &[9]); // if_tsresol: 10^-9 s
            option(&mut idb, 0, &[]);
            block(&mut out, 1, &idb)?;
        }
        Ok(PcapngWriter { out })
    }

    pub fn packet(
        &mut self,
        iface: u32,
        ts_ns: u64,
        orig_len: u32,
        data: &[u8],
        dir: EpbDir,
    ) -> io::Result<()> {
        let mut epb = Vec::with_capacity(32 + data.len());
        epb.extend(iface.to_le_bytes());
        epb.extend(((ts_ns >> 32) as u32).to_le_bytes());
        epb.extend((ts_ns as u32).to_le_bytes());
        epb.extend((data.len() as u32).to_le_bytes());
        epb.extend(orig_len.to_le_bytes());
        epb.extend(data);
        epb.extend(std::iter::repeat_n(0u8, pad4(data.len())));
        if dir != EpbDir::Unknown {
            option(&mut epb, 2, &(dir as u32).to_le_bytes()); // epb_flags
            option(&mut epb, 0, &[]);
        }
        block(&mut self.out, 6, &epb)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_well_formed() {
        let ifaces = vec![
            ("eth0".to_string(), 1, 262144),
            ("cilium_host".into(), 1, 262144),
        ];
        let mut w = PcapngWriter::new(Vec::new(), &ifaces).unwrap();
        w.packet(1, 1_700_000_000_123_456_789, 60, &[0xaa; 59], EpbDir::Out)
            .unwrap();
        let b = w.into_inner();
        // Walk the blocks: each starts and ends with the same total length.
        let mut off = 0;
        let mut kinds = vec![];
        while off < b.len() {
            let kind = u32::from_le_bytes(b[off..off + 4].try_into().unwrap());
            let len = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let trailer = u32::from_le_bytes(b[off + len - 4..off + len].try_into().unwrap());
            assert_eq!(trailer as usize, len);
            kinds.push(kind);
            off += len;
        }
        assert_eq!(kinds, vec![0x0A0D0D0A, 1, 1, 6]);
    }
}
