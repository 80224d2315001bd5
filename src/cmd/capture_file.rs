//! `hopscope capture -r FILE`: a pcap or pcapng file decoded and, with keys, decrypted the way a
//! live capture is (the same analyzer), printed as text or JSON lines. A truncated file is
//! read up to its cut and said.

use crate::capture::analyze::{Analyzer, Ts};
use crate::capture::{JsonPacket, LinkType};
use crate::keys;
use crate::model::{NodeState, XfrmState};
use crate::view::packet as pv;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// What `capture -r` prints: the totals, for tests and the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    pub packets: u64,
    pub esp: u64,
    pub decrypted: u64,
    pub malformed: u64,
}

/// Decode (and with `sas`, decrypt) every frame of `path` into `out`.
pub fn run(
    path: &Path,
    sas: &[XfrmState],
    filter: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<Totals> {
    let mut cap = pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano)
        .with_context(|| format!("{}: not a pcap or pcapng file", path.display()))?;
    if let Some(f) = filter {
        cap.filter(f, true)
            .with_context(|| format!("capture filter {f:?}"))?;
    }
    let link = LinkType::from_dlt(cap.get_datalink().0);
    let state = NodeState {
        xfrm_states: sas.to_vec(),
        ..Default::default()
    };
    let mut an = Analyzer::new(&state, !sas.is_empty());
    let iface = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut totals = Totals::default();
    loop {
        let p = match cap.next_packet() {
            Ok(p) => p,
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                eprintln!(
                    "hopscope: {}: cut off or damaged after {} packets ({e}); everything before is shown",
                    path.display(),
                    totals.packets
                );
                break;
            }
        };
        let ts = Ts {
            sec: p.header.ts.tv_sec,
            nsec: p.header.ts.tv_usec as u32, // nanoseconds: opened with Precision::Nano
        };
        let rec = an.analyze(&iface, link, ts, p.header.len, p.data);
        totals.packets += 1;
        totals.esp += u64::from(rec.decoded.is_esp());
        totals.decrypted += u64::from(matches!(
            rec.decrypt,
            Some(crate::capture::analyze::Decrypt::Ok { .. })
        ));
        totals.malformed += u64::from(rec.decoded.malformed.is_some());
        let r = if json {
            serde_json::to_writer(
                &mut *out,
                &JsonPacket {
                    kind: "packet",
                    rec: &rec,
                },
            )
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
        } else {
            writeln!(out, "{}", pv::line(&rec, &crate::model::Names::default()))
        };
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            r => r?,
        }
    }
    Ok(totals)
}

/// `capture -r FILE` with keys from `--keys`, `-E`, `--esp-sa`; `--wireshark-keys` writes
/// them for Wireshark.
pub fn run_cli(a: &crate::cli::CaptureArgs, path: &Path, filter: Option<&str>) -> Result<()> {
    let mut sas = Vec::new();
    if let Some(k) = &a.keys {
        sas.extend(keys::from_snapshot(k)?);
    }
    for e in &a.esp_secrets {
        sas.extend(keys::from_tcpdump(e)?);
    }
    if let Some(f) = &a.esp_sa {
        sas.extend(keys::from_esp_sa(f)?);
    }
    if let Some(out) = &a.wireshark_keys {
        anyhow::ensure!(
            !sas.is_empty(),
            "--wireshark-keys: no keys given (--keys, -E, --esp-sa)"
        );
        std::fs::write(out, keys::to_esp_sa(&sas)).with_context(|| format!("{}", out.display()))?;
        eprintln!(
            "hopscope: {} SA keys written to {} (Wireshark: Preferences › Protocols › ESP › ESP SAs; a secret: mind where it goes)",
            sas.len(),
            out.display()
        );
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let t = run(path, &sas, filter, a.json, &mut out)?;
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r?,
    }
    eprintln!(
        "hopscope: {}: {} packets, {} ESP, {} decrypted with {} SA{}, {} malformed",
        path.display(),
        t.packets,
        t.esp,
        t.decrypted,
        sas.len(),
        if sas.len() == 1 { "" } else { "s" },
        t.malformed
    );
    Ok(())
}
