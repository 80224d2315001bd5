//! The Packets pane's data: the newest captured records (a bounded ring) and, per interface,
//! what the capture counted — ESP and plaintext rates side by side, leaks, failed ICVs, kernel
//! and queue drops, gone. The runtime feeds it; it reads no socket, so tests feed it records.

use crate::capture::HandleCounts;
use crate::capture::analyze::{Decrypt, IfaceCounts, PacketRecord, Rates};
use crate::model::Names;
use crate::view::packet as pv;
use std::collections::VecDeque;

/// Records kept for scrolling back; older ones are let go (counted: `PacketLog::evicted`).
pub const KEEP: usize = 20_000;

pub const HEADERS: [&str; 5] = ["TIME", "IFACE", "DIR", "PACKET", "HOPSCOPE"];

/// One interface's stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stream {
    pub iface: String,
    pub counts: IfaceCounts,
    pub rates: Rates,
    /// libpcap's and our queue's drop counters.
    pub drops: HandleCounts,
    /// The interface went away mid-capture (libpcap's words).
    pub gone: Option<String>,
    /// Taken out of the capture by the user.
    pub stopped: bool,
}

impl Stream {
    pub fn dropped(&self) -> u64 {
        self.drops.kernel_dropped + self.drops.if_dropped + self.drops.queue_dropped
    }
    pub fn active(&self) -> bool {
        self.gone.is_none() && !self.stopped
    }
}

#[derive(Debug, Default)]
pub struct PacketLog {
    records: VecDeque<PacketRecord>,
    /// Sequence number of `records[0]`, which is also how many were let go; rows name records
    /// by sequence number, so a row stays the same packet while older ones are let go.
    first_seq: u64,
    /// Records that arrived while paused (counted, not kept).
    pub missed_paused: u64,
    pub streams: Vec<Stream>,
    pub decrypt: bool,
    /// The BPF filter in force on new interfaces.
    pub bpf: Option<String>,
}

impl PacketLog {
    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    /// Records let go to keep `KEEP`.
    pub fn evicted(&self) -> u64 {
        self.first_seq
    }
    /// Sequence numbers of the records kept, oldest first; the end grows with every record,
    /// so it also tells views when to filter again.
    pub fn seqs(&self) -> std::ops::Range<u64> {
        self.first_seq..self.first_seq + self.records.len() as u64
    }
    pub fn get(&self, seq: u64) -> Option<&PacketRecord> {
        let i = seq.checked_sub(self.first_seq)?;
        self.records.get(usize::try_from(i).ok()?)
    }

    pub fn push(&mut self, rec: PacketRecord) {
        if self.records.len() == KEEP {
            self.records.pop_front();
            self.first_seq += 1;
        }
        self.records.push_back(rec);
    }

    pub fn stream_mut(&mut self, iface: &str) -> &mut Stream {
        let i = match self.streams.iter().position(|s| s.iface == iface) {
            Some(i) => i,
            None => {
                self.streams.push(Stream {
                    iface: iface.to_string(),
                    ..Default::default()
                });
                self.streams.len() - 1
            }
        };
        // Streams are drawn straight from here: the rows (and their filtered cache) do not change.
        &mut self.streams[i]
    }

    pub fn capturing(&self, iface: &str) -> bool {
        self.streams.iter().any(|s| s.iface == iface && s.active())
    }

    /// Interfaces captured on now.
    pub fn active(&self) -> Vec<String> {
        self.streams
            .iter()
            .filter(|s| s.active())
            .map(|s| s.iface.clone())
            .collect()
    }

    /// The interface a flow's packet was captured coming in on, plaintext (a pod's lxc, say).
    pub fn entered_on(&self, f: &crate::trace::path::Flow) -> Option<String> {
        self.records
            .iter()
            .rev()
            .filter(|r| r.dir == crate::decode::packet::Direction::In && !r.decoded.is_esp())
            .find(|r| {
                r.decoded
                    .ip
                    .as_ref()
                    .is_some_and(|ip| ip.src == f.src && ip.dst == f.dst && ip.proto == f.proto)
            })
            .map(|r| r.iface.clone())
    }

    /// Every drop, kernel's and ours, over all interfaces: shown in the header, never hidden.
    pub fn dropped(&self) -> u64 {
        self.streams.iter().map(Stream::dropped).sum()
    }
    pub fn leaks(&self) -> u64 {
        self.streams.iter().map(|s| s.counts.leaks).sum()
    }
}

/// A record's cells, in `HEADERS` order.
pub fn cells(r: &PacketRecord, names: &Names) -> Vec<String> {
    vec![
        pv::hms(r.ts),
        r.iface.clone(),
        r.dir.as_str().to_string(),
        pv::summary(&r.decoded, names),
        pv::annotations(r, names).trim_start().to_string(),
    ]
}

/// Shown in the trouble style: leaks, failed ICVs, malformed frames.
pub fn trouble(r: &PacketRecord) -> bool {
    r.leak.is_some()
        || r.decoded.malformed.is_some()
        || matches!(r.decrypt, Some(Decrypt::AuthFailed { .. }))
}

/// One line per stream for the pane's head: "is traffic here encrypted?" at a glance.
pub fn stream_line(s: &Stream) -> String {
    let state = match (&s.gone, s.stopped) {
        (Some(why), _) => format!("GONE ({why})"),
        (None, true) => "stopped".to_string(),
        (None, false) => "capturing".to_string(),
    };
    let mut t = format!(
        "{:<14} ESP {:>7}/s  plain {:>7}/s  │ {} pkts",
        s.iface,
        super::rows::si(s.rates.esp_pps),
        super::rows::si(s.rates.plaintext_pps),
        s.counts.packets
    );
    for (n, what) in [
        (s.counts.leaks, "LEAKS"),
        (s.counts.auth_failed, "ICV failed"),
        (s.counts.malformed, "malformed"),
    ] {
        if n > 0 {
            t.push_str(&format!("  {what} {n}"));
        }
    }
    if s.counts.decrypted > 0 {
        t.push_str(&format!("  decrypted {}", s.counts.decrypted));
    }
    t.push_str(&format!(
        "  │ drops kernel {} hopscope {}  │ {state}",
        s.drops.kernel_dropped + s.drops.if_dropped,
        s.drops.queue_dropped
    ));
    t
}

/// The detail view of one record: every field, the annotation spelled out.
pub fn detail(r: &PacketRecord, names: &Names) -> Vec<(String, String)> {
    let mut out = vec![
        ("time".to_string(), pv::hms(r.ts)),
        ("interface".into(), r.iface.clone()),
        ("direction".into(), r.dir.as_str().to_string()),
        (
            "length".into(),
            format!("{} (captured {})", r.len, r.caplen),
        ),
        ("packet".into(), pv::summary(&r.decoded, names)),
    ];
    if let Some(sa) = &r.sa {
        out.push(("SA".into(), sa.to_string()));
    }
    match &r.decrypt {
        Some(Decrypt::Ok { inner, .. }) => {
            out.push(("decrypted".into(), pv::summary(inner, names)))
        }
        Some(Decrypt::AuthFailed { tried }) => out.push((
            "decrypt".into(),
            format!("AUTH FAILED: the ICV did not verify with the key of {tried} SA(s)"),
        )),
        Some(Decrypt::NoSa) => out.push(("decrypt".into(), "no SA for this SPI/dst".into())),
        Some(Decrypt::Unsupported { why }) | Some(Decrypt::Malformed { why }) => {
            out.push(("decrypt".into(), why.clone()))
        }
        None => {}
    }
    if let Some(k) = &r.kernel_decrypted {
        out.push((
            "kernel-decrypted".into(),
            format!(
                "the kernel's decryption of ESP spi {:#x} seq {:#x}{}",
                k.esp_spi,
                k.esp_seq,
                if k.exact { "" } else { " (paired by time)" }
            ),
        ));
    }
    if let Some(l) = &r.leak {
        out.push(("LEAK".into(), l.clone()));
    }
    if let Some(m) = &r.decoded.malformed {
        out.push(("malformed".into(), format!("{}: {}", m.layer, m.why)));
    }
    out.push(("".into(), String::new()));
    out.push((
        "t".into(),
        "follow this packet's flow hop by hop (Trace pane)".into(),
    ));
    out
}
