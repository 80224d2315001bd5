//! `hopscope capture`: headless packet streams, as text lines or JSON lines.

use crate::capture::pcapng::{EpbDir, PcapngWriter};
use crate::capture::{JsonPacket, Options, Session, ctrl_c_flag};
use crate::decode::analyze::{Analyzer, Ts};
use crate::decode::packet::Direction;
use crate::model::reveal_secrets;
use crate::output::Escaped;
use crate::source::Target;
use crate::view::packet as pv;
use anyhow::{Context, Result};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The `-w` output: its name for errors, and the writer.
type PcapOut = (String, PcapngWriter<BufWriter<Box<dyn Write>>>);

#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    pub opts: Options,
    pub json: bool,
    pub write: Option<PathBuf>,
    pub show_keys: bool,
    /// Print per-interface ESP / plaintext rates every this often (stderr; JSON: records).
    pub stats_every: Option<Duration>,
    /// Do not print packets (count only; for benchmarks with -w or alone).
    pub quiet: bool,
    /// Lock down (crate::sandbox) once the handles and the output file are open.
    pub sandbox: bool,
    /// Kubernetes names for the packet lines' addresses.
    pub names: std::sync::Arc<crate::model::Names>,
}

pub fn run(target: &Target, a: &RunArgs) -> Result<()> {
    if let Some(f) = &a.opts.filter {
        crate::capture::check_filter(f, crate::capture::LinkType::Ethernet)?;
    }
    let stop = ctrl_c_flag();
    let state =
        crate::source::collect(target).context("reading the node's links and XFRM state")?;
    let mut session = Session::start(target, &state, &a.opts, stop.clone())?;
    let mut an = Analyzer::new(&state, a.opts.decrypt);
    let mut err = Escaped::new(std::io::stderr().lock());

    announce(&mut err, target, &session, &state, a)?;

    // `-w -`: the pcapng stream is the output (as tcpdump -w -); packets are not printed.
    let to_stdout = a.write.as_deref().is_some_and(|p| p.as_os_str() == "-");
    let mut pcapng = open_pcapng(a, &session, to_stdout)?;

    // Everything this run reads from and writes to is open: give up the rest.
    if a.sandbox {
        writeln!(err, "hopscope: {}", crate::sandbox::lock_down()?)?;
    }
    let stdout = std::io::stdout();
    let stamp = crate::output::Stamp::now();
    // Interface names are the kernel's bytes: control characters are escaped in text lines.
    let mut out = Escaped::new(BufWriter::with_capacity(1 << 16, stdout.lock()));
    let start = Instant::now();
    let mut n: u64 = 0;
    let mut last_stats = Instant::now();
    let mut broken_pipe = false;
    let mut reported_gone = 0;

    let mut handle_frame = |f: crate::capture::Frame,
                            an: &mut Analyzer,
                            out: &mut Escaped<BufWriter<std::io::StdoutLock<'_>>>,
                            session: &Session|
     -> Result<bool> {
        let h = &session.handles[f.handle];
        let rec = an.analyze(&h.name, h.link, f.ts, f.len, &f.data);
        if let Some(w) = pcapng.as_mut()
            && !to_pcapng(w, &f, rec.dir, to_stdout)?
        {
            return Ok(false);
        }
        if !a.quiet && !to_stdout {
            let r = if a.json {
                let body = JsonPacket {
                    kind: "packet",
                    rec: &rec,
                };
                let line = stamp.document(crate::output::CAPTURE, &body);
                serde_json::to_writer(out.get_mut(), &line)
                    .map_err(std::io::Error::from)
                    .and_then(|()| writeln!(out))
            } else {
                writeln!(out, "{}", pv::line(&rec, &a.names))
            };
            // Line-buffered whenever the readers are caught up; batched under load.
            let caught_up = session.waiting() == 0;
            if let Err(e) = r.and_then(|()| if caught_up { out.flush() } else { Ok(()) }) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(false);
                }
                return Err(e.into());
            }
        }
        Ok(true)
    };

    loop {
        if stop.load(Ordering::SeqCst) || enough(a, n, start) || session.all_gone() {
            break;
        }
        // `capture | head -1`: the reader is gone; do not wait for a packet to find out.
        if !a.quiet && crate::output::stdout_closed() {
            broken_pipe = true;
            break;
        }
        if let Some(f) = session.next(Duration::from_millis(100)) {
            n += 1;
            if !handle_frame(f, &mut an, &mut out, &session)? {
                broken_pipe = true;
                break;
            }
        }
        report_gone(&mut err, &session, &mut reported_gone)?;
        if let Some(every) = a.stats_every
            && last_stats.elapsed() >= every
        {
            last_stats = Instant::now();
            print_rates(&mut err, &mut out, &mut an, &stamp, a.json && !to_stdout)?;
        }
    }
    // Every interface disappeared (not a signal, a count or a duration): an error once the
    // totals are said, so a script sees the capture did not run its course.
    let all_gone = session.all_gone();
    report_gone(&mut err, &session, &mut reported_gone)?;
    let rest = session.stop();
    if !broken_pipe {
        for f in rest {
            if a.opts.count.is_some_and(|c| n >= c) {
                break;
            }
            n += 1;
            if !handle_frame(f, &mut an, &mut out, &session)? {
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let totals = session.totals(&mut an, Ts::now(), secs);
    if let Some(w) = pcapng.take() {
        close_pcapng(w, to_stdout)?;
    }
    let json_summary = a.json && !broken_pipe && !to_stdout;
    print_summary(&mut err, &mut out, &stamp, &totals, secs, json_summary)?;
    if all_gone {
        let names: Vec<&str> = session.handles.iter().map(|h| h.name.as_str()).collect();
        anyhow::bail!(
            "every interface captured on is gone ({}): the capture stopped after {n} packets",
            names.join(", ")
        );
    }
    Ok(())
}

/// The "capturing on …" line (and, decrypting, which SAs' keys are used) on stderr.
fn announce(
    err: &mut impl Write,
    target: &Target,
    session: &Session,
    state: &crate::model::NodeState,
    a: &RunArgs,
) -> Result<()> {
    let names: Vec<String> = session
        .handles
        .iter()
        .map(|h| format!("{} (link type {})", h.name, h.dlt))
        .collect();
    writeln!(
        err,
        "hopscope: capturing on {}{}{}",
        names.join(", "),
        a.opts
            .filter
            .as_ref()
            .map(|f| format!(", filter {f:?}"))
            .unwrap_or_default(),
        match target {
            Target::Current => String::new(),
            Target::Netns(n) => format!(", netns {n}"),
            Target::Pid(p) => format!(", netns of pid {p}"),
        }
    )?;
    if a.opts.decrypt {
        announce_decryption(err, &state.xfrm_states, a.show_keys)?;
    }
    Ok(())
}

/// "decrypting with the keys of N ESP SAs"; with --show-keys every key each of them decrypts
/// and authenticates with, one SA a line (AEAD, or the cipher's and the HMAC's key).
fn announce_decryption(
    err: &mut impl Write,
    sas: &[crate::model::XfrmState],
    show_keys: bool,
) -> Result<()> {
    let esp: Vec<_> = sas
        .iter()
        .filter(|s| s.proto == crate::model::XfrmProto::Esp)
        .collect();
    writeln!(
        err,
        "hopscope: decrypting with the keys of {} ESP SA{}{}",
        esp.len(),
        if esp.len() == 1 { "" } else { "s" },
        if show_keys {
            ""
        } else {
            " (keys redacted; --show-keys prints them)"
        }
    )?;
    if show_keys {
        for s in &esp {
            // Every key the SA decrypts and authenticates with: AEAD, or cipher + HMAC.
            let keys: Vec<_> = [&s.aead, &s.enc, &s.auth].into_iter().flatten().collect();
            let line = zeroize::Zeroizing::new(reveal_secrets(true, || {
                format!(
                    "  {}->{} spi {:#x}{}: {}",
                    s.src,
                    s.dst,
                    s.spi,
                    s.mark.map(|m| format!(" mark {m}")).unwrap_or_default(),
                    if keys.is_empty() {
                        "? (no key)".to_string()
                    } else {
                        keys.iter()
                            .map(|k| format!("{} {}", k.name, k.key))
                            .collect::<Vec<_>>()
                            .join(" ")
                    }
                )
            }));
            writeln!(err, "{}", *line)?;
        }
    }
    Ok(())
}

/// The `-w` file (or stdout for `-w -`) with one pcapng interface per capture handle.
fn open_pcapng(a: &RunArgs, session: &Session, to_stdout: bool) -> Result<Option<PcapOut>> {
    Ok(match &a.write {
        Some(p) => {
            let sink: Box<dyn Write> = if to_stdout {
                Box::new(std::io::stdout())
            } else {
                Box::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )
            };
            let ifaces: Vec<(String, u16, u32)> = session
                .handles
                .iter()
                .map(|h| (h.name.clone(), h.link.linktype(), a.opts.snaplen as u32))
                .collect();
            let w = PcapngWriter::new(BufWriter::with_capacity(1 << 20, sink), &ifaces)
                .with_context(|| format!("writing {}", p.display()))?;
            Some((p.display().to_string(), w))
        }
        None => None,
    })
}

/// Say once of each interface that disappeared while capturing.
fn report_gone(err: &mut impl Write, session: &Session, reported: &mut usize) -> Result<()> {
    if session.gone().len() > *reported {
        let left = session.handles.len() - session.gone().len();
        for (i, why) in session.gone().iter().skip(*reported) {
            writeln!(
                err,
                "hopscope: {} gone ({why}); {}",
                session.handles[*i].name,
                if left == 0 {
                    "no interface is left to capture on"
                } else {
                    "the other interfaces go on"
                }
            )?;
        }
        *reported = session.gone().len();
    }
    Ok(())
}

/// Per-interface ESP and plaintext rates: a JSON record on stdout, or a line on stderr.
fn print_rates<W: Write>(
    err: &mut impl Write,
    out: &mut Escaped<W>,
    an: &mut Analyzer,
    stamp: &crate::output::Stamp,
    json: bool,
) -> Result<()> {
    let rates: Vec<_> = an.rates_at(Ts::now()).into_iter().collect();
    if json {
        let body = serde_json::json!({"type": "rates", "ts": Ts::now(), "interfaces": rates.iter().map(|(i, r)| serde_json::json!({"iface": i, "esp_pps": r.esp_pps, "plaintext_pps": r.plaintext_pps})).collect::<Vec<_>>()});
        let _ = serde_json::to_writer(
            out.get_mut(),
            &stamp.document(crate::output::CAPTURE, &body),
        );
        let _ = writeln!(out);
        let _ = out.flush();
    } else {
        writeln!(err, "rates: {}", pv::rates_text(&rates))?;
    }
    Ok(())
}

/// One frame into the pcapng output; false when the reader of `-w -` went away.
fn to_pcapng(
    (path, w): &mut PcapOut,
    f: &crate::capture::Frame,
    dir: Direction,
    to_stdout: bool,
) -> Result<bool> {
    let dir = match dir {
        Direction::In => EpbDir::In,
        Direction::Out => EpbDir::Out,
        Direction::Unknown => EpbDir::Unknown,
    };
    let ns = (f.ts.sec as u64) * 1_000_000_000 + u64::from(f.ts.nsec);
    match w.packet(f.handle as u32, ns, f.len, &f.data, dir) {
        Err(e) if to_stdout && e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        r => r.with_context(|| format!("writing {path}")).map(|()| true),
    }
}

/// `-c` packets seen or `--duration` over.
fn enough(a: &RunArgs, n: u64, start: Instant) -> bool {
    a.opts.count.is_some_and(|c| n >= c) || a.opts.duration.is_some_and(|d| start.elapsed() >= d)
}

/// Flush the pcapng output; a reader of `-w -` that went away is not an error.
fn close_pcapng((path, mut w): PcapOut, to_stdout: bool) -> Result<()> {
    let r = w.flush();
    if !(to_stdout
        && r.as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
    {
        r.with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

/// Per-interface totals on stderr, and as a JSON summary record when asked.
fn print_summary<W: Write>(
    err: &mut impl Write,
    out: &mut Escaped<W>,
    stamp: &crate::output::Stamp,
    totals: &[crate::decode::analyze::IfaceTotals],
    secs: f64,
    json: bool,
) -> Result<()> {
    if json {
        let body = serde_json::json!({"type": "summary", "duration_s": secs, "interfaces": totals});
        let _ = serde_json::to_writer(
            out.get_mut(),
            &stamp.document(crate::output::CAPTURE, &body),
        );
        let _ = writeln!(out);
    }
    let _ = out.flush();
    writeln!(err)?;
    for t in totals {
        writeln!(err, "{}", pv::totals_text(t))?;
    }
    Ok(())
}

/// The capture filter given with -f or, tcpdump's habit, as the trailing words.
pub fn one_filter(flag: &Option<String>, words: &[String]) -> anyhow::Result<Option<String>> {
    Ok(match (flag, words.is_empty()) {
        (Some(_), false) => anyhow::bail!(
            "two capture filters: give it either with -f or as the trailing words, not both"
        ),
        (Some(f), true) => Some(f.clone()),
        (None, false) => Some(words.join(" ")),
        (None, true) => None,
    })
}

/// `hopscope capture`: the command line's options as a capture run, with Kubernetes names.
pub fn command(cli: &crate::cli::Cli, a: &crate::cli::CaptureArgs) -> anyhow::Result<()> {
    let filter = one_filter(&a.filter, &a.expression)?;
    if let Some(path) = &a.read {
        return super::capture_file::run_cli(a, path, filter.as_deref());
    }
    let to_stdout = a.write.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if to_stdout && a.print {
        anyhow::bail!("-w - writes the capture to stdout: --print cannot print packets there too");
    }
    let args = RunArgs {
        opts: Options {
            ifaces: a.interfaces.clone(),
            all: a.all,
            filter,
            decrypt: a.decrypt,
            count: a.count,
            duration: a.duration,
            snaplen: if a.snaplen == 0 { 262_144 } else { a.snaplen },
            buffer_bytes: a.buffer_kib.saturating_mul(1024),
            queue: a.queue,
        },
        json: a.json,
        write: a.write.clone(),
        show_keys: a.show_keys,
        stats_every: a.stats,
        // As tcpdump: -w writes the packets instead of printing them, unless --print.
        quiet: a.quiet || (a.write.is_some() && !a.print),
        sandbox: !cli.no_sandbox,
        // Kubernetes names for the packet lines (silent without credentials, bounded wait).
        names: super::finish_names(super::start_names(cli)),
    };
    run(&cli.target.target(), &args)
}

#[cfg(test)]
mod tests {
    use super::announce_decryption;

    const ENC: &str = "00112233445566778899aabbccddeeff";
    const AUTH: &str = "a1a2a3a4a5a6a7a8a9b0b1b2b3b4b5b6b7b8b9c0";

    /// What `capture --decrypt` says on stderr about an SA with a cipher and an HMAC key.
    fn said(show_keys: bool) -> String {
        let spec = format!("0x10@192.0.2.2 aes128-cbc-hmac96:0x{ENC}:0x{AUTH}");
        let sas = crate::keys::from_tcpdump(&spec).unwrap();
        assert!(sas[0].enc.is_some() && sas[0].auth.is_some());
        let mut err = Vec::new();
        announce_decryption(&mut err, &sas, show_keys).unwrap();
        String::from_utf8(err).unwrap().to_lowercase()
    }

    #[test]
    fn show_keys_prints_the_cipher_and_the_hmac_key() {
        let s = said(true);
        assert!(s.contains("keys of 1 esp sa"), "{s}");
        assert!(s.contains(ENC), "the cipher key: {s}");
        assert!(s.contains(AUTH), "the hmac key: {s}");
        assert!(s.contains("hmac(sha1)"), "{s}");
    }

    #[test]
    fn without_show_keys_neither_key_is_said() {
        let s = said(false);
        assert!(s.contains("keys redacted; --show-keys prints them"), "{s}");
        for k in [ENC, AUTH] {
            assert!(!s.contains(&k[..8]), "key bytes on stderr: {s}");
        }
    }
}
