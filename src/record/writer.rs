//! `hopscope record`: follow one or more live nodes and write what they do into a recording.
//! Every netlink change and counter sample goes in as the monitor delivered it; frames as the
//! capture delivered them, each ESP frame followed by what decrypting it gave (so a replay
//! without keys shows it decrypted). Keys are written only with `--show-keys`. The file stays
//! readable whatever ends the recording: records are whole or detected as cut (format.rs).

use super::format::{self, End, FrameRec, Iface, OpenedRec, Record};
use super::{Meta, RecSample, Stamp};
use crate::capture::analyze::Analyzer;
use crate::capture::{self, Frame, Handle, Session};
use crate::model::NodeState;
use crate::model::event::Event;
use crate::source::Target;
use crate::source::monitor::{self, Monitor};
use anyhow::{Context, Result};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What to record, from the command line.
#[derive(Debug, Clone)]
pub struct Plan {
    pub out: PathBuf,
    pub targets: Vec<Target>,
    /// How many of `targets`, at their end, are pods found behind the nodes' lxc veths:
    /// recorded for their state (the doctor's pod-MTU check), not captured on, no iptables.
    pub pods: usize,
    pub interfaces: Vec<String>,
    pub filter: Option<String>,
    pub duration: Option<Duration>,
    pub show_keys: bool,
    pub limit_bytes: u64,
    pub interval: Duration,
    pub snaplen: i32,
    pub note: Option<String>,
    /// Print the progress line (stderr).
    pub progress: bool,
    pub kube: crate::kube::KubeArgs,
}

/// The file being written: framed records, a byte count against the limit.
pub struct Writer {
    out: BufWriter<std::fs::File>,
    buf: Vec<u8>,
    pub written: u64,
    limit: u64,
    show_keys: bool,
}

/// Room kept under the limit for the end record.
const END_ROOM: u64 = 4096;

#[derive(Debug, PartialEq, Eq)]
pub enum Wrote {
    Ok,
    /// The record would pass the size limit: not written.
    Full,
}

impl Writer {
    pub fn create(path: &Path, meta: &Meta) -> Result<Writer> {
        let f = std::fs::File::create(path).with_context(|| format!("{}", path.display()))?;
        let mut w = Writer {
            out: BufWriter::with_capacity(1 << 20, f),
            buf: Vec::with_capacity(1 << 16),
            written: 0,
            limit: meta.limit_bytes.max(END_ROOM * 4),
            show_keys: meta.show_keys,
        };
        let mut head = Vec::new();
        format::write_header(&mut head)?;
        w.out.write_all(&head)?;
        w.written = head.len() as u64;
        w.write(&Record::Meta(Box::new(meta.clone())))?;
        Ok(w)
    }

    /// Write one record unless it would pass the limit. Keys are revealed only with
    /// `--show-keys`.
    pub fn write(&mut self, r: &Record) -> std::io::Result<Wrote> {
        crate::model::reveal_secrets(self.show_keys, || format::encode(r, &mut self.buf))?;
        let n = self.buf.len() as u64;
        if !matches!(r, Record::End(_)) && self.written + n + END_ROOM > self.limit {
            return Ok(Wrote::Full);
        }
        self.out.write_all(&self.buf)?;
        self.written += n;
        Ok(Wrote::Ok)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// One node being recorded.
struct Node {
    monitor: Monitor,
    state: NodeState,
    analyzer: Option<Analyzer>,
    session: Option<Session>,
    /// Recording interface id per session handle.
    iface_ids: Vec<u16>,
    /// A pod's netns beside its node: no capture.
    pod: bool,
}

/// Counts for the progress line and the end record.
#[derive(Debug, Default)]
struct Totals {
    changes: u64,
    samples: u64,
    frames: u64,
    decrypted: u64,
    /// Progress lines asked for (one a second).
    ticks: u64,
}

/// Record until the duration, the limit, a signal or a write error ends it. Returns the
/// signal number if one ended it.
pub fn run(plan: &Plan) -> Result<i32> {
    let signal = Arc::new(AtomicUsize::new(0));
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        signal_hook::flag::register_usize(sig, signal.clone(), sig as usize)
            .context("installing signal handlers")?;
    }
    let stop_capture = Arc::new(AtomicBool::new(false));
    let mon_opts = monitor::Options {
        interval: plan.interval,
        ..Default::default()
    };
    let mut nodes = Vec::new();
    let first_pod = plan.targets.len().saturating_sub(plan.pods);
    for (i, t) in plan.targets.iter().enumerate() {
        let monitor = Monitor::start(t, &mon_opts)?;
        nodes.push(Node {
            monitor,
            state: NodeState::default(),
            analyzer: None,
            session: None,
            iface_ids: vec![],
            pod: i >= first_pod,
        });
    }
    let meta = Meta {
        hopscope: env!("CARGO_PKG_VERSION").to_string(),
        started_unix_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64,
        host: crate::source::hostname(),
        nodes: nodes.iter().map(|n| n.monitor.info.label()).collect(),
        interfaces: plan.interfaces.clone(),
        filter: plan.filter.clone(),
        show_keys: plan.show_keys,
        limit_bytes: plan.limit_bytes,
        interval_ms: plan.interval.as_millis() as u64,
        note: plan.note.clone(),
    };
    let mut w = Writer::create(&plan.out, &meta)?;
    let start = Instant::now();
    let stamp = || start.elapsed().as_nanos() as Stamp;
    for (i, t) in plan.targets.iter().enumerate().take(first_pod) {
        // Without iptables tools the recording still goes on (a trace says what it assumed).
        let netfilter = crate::source::collect_netfilter(t).unwrap_or_default();
        w.write(&Record::Netfilter {
            node: i as u16,
            at: 0,
            netfilter: Box::new(netfilter),
        })?;
    }
    let names = crate::kube::names::NamesWatch::start(&plan.kube);
    let mut names_gen = 0;
    let mut totals = Totals::default();
    let mut next_iface: u16 = 0;
    let mut last_progress = Instant::now();
    let mut announced = plan.interfaces.is_empty();
    let cap_opts = capture::Options {
        filter: plan.filter.clone(),
        snaplen: plan.snaplen,
        ..Default::default()
    };
    let limit_mib = plan.limit_bytes as f64 / f64::from(1 << 20);
    if plan.progress {
        eprintln!(
            "hopscope: recording {} to {} (stops at {limit_mib:.0} MiB{}; keys {})",
            meta.nodes.join(", "),
            plan.out.display(),
            plan.duration
                .map(|d| format!(" or after {:.0} s", d.as_secs_f64()))
                .unwrap_or_default(),
            if plan.show_keys {
                "WRITTEN (--show-keys)"
            } else {
                "not written"
            }
        );
    }
    let reason: String = 'rec: loop {
        match signal.load(Ordering::SeqCst) {
            0 => {}
            s => break format!("stopped by {}", signal_name(s as i32)),
        }
        if plan.duration.is_some_and(|d| start.elapsed() >= d) {
            break "duration reached".into();
        }
        let mut busy = false;
        for (i, n) in nodes.iter_mut().enumerate() {
            for ev in n.monitor.drain(4096) {
                busy = true;
                let at = stamp();
                let r = match ev {
                    Event::Resync(st) => Record::State {
                        node: i as u16,
                        at,
                        state: st,
                    },
                    Event::Sample(s) => Record::Sample {
                        node: i as u16,
                        at,
                        sample: Box::new(RecSample::of(s)),
                    },
                    e => Record::Event {
                        node: i as u16,
                        at,
                        event: Box::new(e),
                    },
                };
                if let Some(why) = write_checked(&mut w, &r)? {
                    break 'rec why;
                }
                match &r {
                    Record::Sample { .. } => totals.samples += 1,
                    _ => totals.changes += 1,
                }
                if let Err(why) = n.fold(
                    r,
                    i as u16,
                    plan,
                    &cap_opts,
                    &stop_capture,
                    &mut w,
                    &mut next_iface,
                ) {
                    break 'rec why;
                }
            }
            let Some(session) = n.session.as_mut() else {
                continue;
            };
            let mut taken = 0;
            while let Some(f) = session.try_next() {
                busy = true;
                let h = &session.handles[f.handle];
                if let Some(why) =
                    write_frame(&mut n.analyzer, &n.iface_ids, h, f, &mut w, &mut totals)?
                {
                    break 'rec why;
                }
                taken += 1;
                if taken == 4096 {
                    break;
                }
            }
        }
        if !announced && nodes.iter().all(|n| n.pod || n.session.is_some()) {
            announced = true;
            announce_captures(&nodes, &meta);
        }
        if names.generation() != names_gen {
            names_gen = names.generation();
            let r = Record::Names {
                at: stamp(),
                names: Box::new((*names.names()).clone()),
            };
            if let Some(why) = write_checked(&mut w, &r)? {
                break 'rec why;
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            // A killed recorder loses at most the last second.
            if let Some(why) = flush_checked(&mut w)? {
                break 'rec why;
            }
            if plan.progress {
                progress(&w, &mut totals, dropped(&nodes), start.elapsed(), limit_mib);
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    stop_capture.store(true, Ordering::SeqCst);
    // Ended by a signal or the duration: the frames the kernel and the queues already hold are
    // written before the end record (as capture does), unless writing is what failed.
    if reason.starts_with("stopped by") || reason == "duration reached" {
        'drain: for n in nodes.iter_mut() {
            let Some(session) = n.session.as_mut() else {
                continue;
            };
            for f in session.stop() {
                let h = &session.handles[f.handle];
                if write_frame(&mut n.analyzer, &n.iface_ids, h, f, &mut w, &mut totals)?.is_some()
                {
                    break 'drain;
                }
            }
        }
    }
    let end = End {
        at: stamp(),
        reason: reason.clone(),
        frames: totals.frames,
        dropped: dropped(&nodes),
        bytes: w.written,
    };
    let lost = end.dropped;
    let ended = w.write(&Record::End(end)).and_then(|_| w.flush());
    if plan.progress {
        progress(&w, &mut totals, dropped(&nodes), start.elapsed(), limit_mib);
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
    match ended {
        Ok(()) => eprintln!(
            "hopscope: {reason}; {} written to {} ({} changes, {} samples, {} frames, {} decrypted, {lost} dropped)",
            human_bytes(w.written),
            plan.out.display(),
            totals.changes,
            totals.samples,
            totals.frames,
            totals.decrypted
        ),
        Err(e) => eprintln!(
            "hopscope: {reason}; the end record could not be written ({e}): the file holds what was written before, readable up to its last whole record"
        ),
    }
    Ok(match signal.load(Ordering::SeqCst) {
        0 => 0,
        s => s as i32,
    })
}

/// One captured frame into the recording (and, decrypting, what it opened to); `Some(why)`
/// when the recording must end.
fn write_frame(
    analyzer: &mut Option<Analyzer>,
    iface_ids: &[u16],
    h: &Handle,
    f: Frame,
    w: &mut Writer,
    totals: &mut Totals,
) -> Result<Option<String>> {
    let r = Record::Frame(FrameRec {
        iface: iface_ids[f.handle],
        sec: f.ts.sec,
        nsec: f.ts.nsec,
        len: f.len,
        data: f.data,
    });
    if let Some(why) = write_checked(w, &r)? {
        return Ok(Some(why));
    }
    totals.frames += 1;
    let Record::Frame(fr) = r else { unreachable!() };
    if let Some(an) = analyzer.as_mut() {
        an.analyze(&h.name, h.link, f.ts, fr.len, &fr.data);
        if let Some(o) = an.take_opened() {
            let r = Record::Opened(OpenedRec {
                next_header: o.next_header,
                payload: o.payload,
            });
            if let Some(why) = write_checked(w, &r)? {
                return Ok(Some(why));
            }
            totals.decrypted += 1;
        }
    }
    Ok(None)
}

/// Write a record; `Some(reason)` when the recording must end (limit reached, disk full).
fn write_checked(w: &mut Writer, r: &Record) -> Result<Option<String>> {
    match w.write(r) {
        Ok(Wrote::Ok) => Ok(None),
        Ok(Wrote::Full) => Ok(Some(format!(
            "size limit reached ({})",
            human_bytes(w.limit)
        ))),
        Err(e) => write_failed(w, e),
    }
}

fn flush_checked(w: &mut Writer) -> Result<Option<String>> {
    match w.out.flush() {
        Ok(()) => Ok(None),
        Err(e) => write_failed(w, e),
    }
}

/// A full disk ends the recording (what was written stays readable); other errors fail it.
fn write_failed(w: &Writer, e: std::io::Error) -> Result<Option<String>> {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        return Ok(Some(format!(
            "disk full after {}: stopped; everything up to the last whole record is kept",
            human_bytes(w.written)
        )));
    }
    Err(e).context("writing the recording")
}

impl Node {
    /// Fold a written record into the node's state; the first state opens the capture.
    #[allow(clippy::too_many_arguments)]
    fn fold(
        &mut self,
        r: Record,
        node: u16,
        plan: &Plan,
        cap_opts: &capture::Options,
        stop: &Arc<AtomicBool>,
        w: &mut Writer,
        next_iface: &mut u16,
    ) -> std::result::Result<(), String> {
        let (ev, first) = match r {
            Record::State { state, .. } => (Event::Resync(state), self.analyzer.is_none()),
            Record::Event { event, .. } => (*event, false),
            Record::Sample { .. } => return Ok(()),
            _ => return Ok(()),
        };
        let applied = self.state.apply(ev);
        if let Some(an) = self.analyzer.as_mut() {
            if applied.structure {
                an.reload(&self.state);
            }
        } else {
            self.analyzer = Some(Analyzer::new(&self.state, true));
        }
        if first && !plan.interfaces.is_empty() && !self.pod {
            let mut s = Session::empty(&self.monitor.target, cap_opts, stop.clone())
                .map_err(|e| format!("capture: {e:#}"))?;
            for name in &plan.interfaces {
                // -i names interfaces of every node: one a node lacks is not captured there.
                if self.state.link_by_name(name).is_none() {
                    continue;
                }
                let h = s
                    .add(name)
                    .map_err(|e| format!("capture on {name}: {e:#}"))?;
                if h < self.iface_ids.len() {
                    continue; // given twice: captured once
                }
                let id = *next_iface;
                *next_iface += 1;
                self.iface_ids.resize(h + 1, 0);
                self.iface_ids[h] = id;
                let r = Record::Iface(Iface {
                    id,
                    node,
                    name: name.clone(),
                    linktype: s.handles[h].link.linktype(),
                });
                w.write(&r)
                    .map_err(|e| format!("writing the recording: {e}"))?;
            }
            self.session = Some(s);
        }
        Ok(())
    }
}

/// Once every node's captures are open, say on what (as tcpdump's "listening on", also with
/// -q): frames before this line are not in the file, so a script waits for it.
fn announce_captures(nodes: &[Node], meta: &Meta) {
    let on: Vec<String> = nodes
        .iter()
        .zip(&meta.nodes)
        .flat_map(|(n, label)| {
            let handles = n.session.iter().flat_map(|s| s.handles.iter());
            handles.map(move |h| format!("{} ({label})", h.name))
        })
        .collect();
    eprintln!(
        "hopscope: capturing on {}{}",
        if on.is_empty() {
            "no interface (none of -i exists on these nodes)".to_string()
        } else {
            on.join(", ")
        },
        meta.filter
            .as_ref()
            .map(|f| format!(", filter {f:?}"))
            .unwrap_or_default()
    );
}

fn dropped(nodes: &[Node]) -> u64 {
    nodes
        .iter()
        .filter_map(|n| n.session.as_ref())
        .flat_map(|s| s.handles.iter())
        .map(|h| {
            let c = h.counts();
            c.kernel_dropped + c.if_dropped + c.queue_dropped
        })
        .sum::<u64>()
        + nodes.iter().map(|n| n.monitor.dropped()).sum::<u64>()
}

fn progress(w: &Writer, t: &mut Totals, dropped: u64, elapsed: Duration, limit_mib: f64) {
    // On a terminal the line is redrawn in place; into a file or pipe, one line per 10 s.
    let tty = std::io::stderr().is_terminal();
    t.ticks += 1;
    if !tty && t.ticks % 10 != 1 {
        return;
    }
    eprint!(
        "{}recording {:>4}s · {} of {limit_mib:.0} MiB · {} changes · {} samples · {} frames ({} decrypted, {dropped} dropped)",
        if tty { "\r\x1b[K" } else { "" },
        elapsed.as_secs(),
        human_bytes(w.written),
        t.changes,
        t.samples,
        t.frames,
        t.decrypted
    );
    if !tty {
        eprintln!();
    }
}

pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
