//! Live capture: libpcap handles opened inside the target netns, one reader thread per
//! interface, bounded queues to one analyzer (the caller's thread), kernel and queue drops per
//! interface, pcapng output. `decode::analyze` turns frames into records; `view::packet`
//! prints them; `cmd::capture` is the command.

/// The packet analysis lives in `decode` (pure; the TUI's views use it too).
pub use crate::decode::analyze;
mod order;
pub mod pcapng;

use crate::model::NodeState;
use crate::source::{self, Target, netns};
use analyze::{Analyzer, IfaceTotals, PacketRecord, Ts};
use anyhow::{Result, anyhow, bail};
use pcap::{Active, Capture, Linktype, Precision};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::decode::packet::LinkType;

#[derive(Debug, Clone)]
pub struct Options {
    pub ifaces: Vec<String>,
    pub all: bool,
    pub filter: Option<String>,
    pub decrypt: bool,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub snaplen: i32,
    /// Kernel capture buffer per interface, bytes.
    pub buffer_bytes: i32,
    /// Packets queued between each reader and the analyzer.
    pub queue: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ifaces: vec![],
            all: false,
            filter: None,
            decrypt: false,
            count: None,
            duration: None,
            snaplen: 262_144,
            buffer_bytes: 4 << 20,
            queue: 65_536,
        }
    }
}

/// A frame copied out of libpcap's ring.
pub struct Frame {
    pub handle: usize,
    pub ts: Ts,
    pub len: u32,
    pub data: Vec<u8>,
}

/// Frames travel from a reader to the analyzer in batches (what one wake-up of the reader
/// drained, at most `BATCH`): one channel operation per batch, not per frame. The bound of the
/// queue is still counted in frames (`Queue::queued` against `Options::queue`).
enum Msg {
    Frames(Vec<Frame>),
    Gone { handle: usize, why: String },
}

/// Most frames a reader hands over in one message.
const BATCH: usize = 256;

/// Frames between the readers and the analyzer: sent, in the channel, or received but not yet
/// taken by `next`. A reader drops (and counts) a frame when `queued` is at `limit`.
struct Queue {
    queued: AtomicUsize,
    limit: usize,
}

/// Counters a reader thread shares with the analyzer.
#[derive(Default)]
struct HandleStats {
    received: AtomicU64,
    kernel_dropped: AtomicU64,
    if_dropped: AtomicU64,
    queue_dropped: AtomicU64,
}

pub struct Handle {
    pub name: String,
    pub link: LinkType,
    pub dlt: i32,
    cap: Option<Capture<Active>>,
    stats: Arc<HandleStats>,
    /// Stops this reader only (the interface was taken out of the capture).
    stop: Arc<AtomicBool>,
}

/// What one interface's reader has counted so far (kernel and queue drops included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandleCounts {
    pub received: u64,
    pub kernel_dropped: u64,
    pub if_dropped: u64,
    pub queue_dropped: u64,
}

impl Handle {
    pub fn counts(&self) -> HandleCounts {
        let s = &self.stats;
        HandleCounts {
            received: s.received.load(Ordering::Relaxed),
            kernel_dropped: s.kernel_dropped.load(Ordering::Relaxed),
            if_dropped: s.if_dropped.load(Ordering::Relaxed),
            queue_dropped: s.queue_dropped.load(Ordering::Relaxed),
        }
    }
    /// Taken out of the capture with `Session::remove`.
    pub fn removed(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Which interfaces to capture on, checked against the links of the netns.
pub fn resolve_ifaces(state: &NodeState, opts: &Options) -> Result<Vec<String>> {
    let known: Vec<&str> = state.links.iter().map(|l| l.name.as_str()).collect();
    let mut out: Vec<String> = vec![];
    if opts.all {
        for l in &state.links {
            if l.is_up() {
                out.push(l.name.clone());
            }
        }
    }
    for i in &opts.ifaces {
        if i != "any" && !known.contains(&i.as_str()) {
            bail!(
                "no interface {i:?} here; interfaces: {}",
                if known.is_empty() {
                    "(none)".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        if !out.contains(i) {
            out.push(i.clone());
        }
    }
    if out.is_empty() {
        bail!(
            "name interfaces with -i (or --all); interfaces: {}",
            known.join(", ")
        );
    }
    Ok(out)
}

/// Open one pcap handle per interface. Must run inside the target netns.
fn open_here(names: &[String], opts: &Options) -> Result<Vec<Handle>> {
    names
        .iter()
        .map(|name| {
            let mut cap = Capture::from_device(name.as_str())
                .and_then(|c| {
                    c.snaplen(opts.snaplen)
                        .timeout(100)
                        .buffer_size(opts.buffer_bytes)
                        .precision(Precision::Nano)
                        .promisc(false)
                        .open()
                })
                .map_err(|e| {
                    let why = e.to_string();
                    if why.contains("not permitted") || why.contains("ermission denied") {
                        // Say which right is missing and how to get it, not only libpcap's words.
                        anyhow!(
                            "cannot capture on {name}: {why}; capturing needs CAP_NET_RAW: {}",
                            source::caps::how_to_fix(source::caps::CAP_NET_RAW)
                        )
                    } else {
                        anyhow!("cannot capture on {name}: {why}")
                    }
                })?;
            if name == "any" {
                // SLL2 names the interface of every packet and its direction.
                let _ = cap.set_datalink(Linktype(276));
            }
            if let Some(f) = &opts.filter {
                cap.filter(f, true)
                    .map_err(|e| anyhow!("bad capture filter {f:?}: {e}"))?;
            }
            let dlt = cap.get_datalink().0;
            Ok(Handle {
                name: name.clone(),
                link: LinkType::from_dlt(dlt),
                dlt,
                cap: Some(cap),
                stats: Arc::new(HandleStats::default()),
                stop: Arc::new(AtomicBool::new(false)),
            })
        })
        .collect()
}

/// Check a BPF filter without opening an interface (for messages and the TUI's live check).
pub fn check_filter(filter: &str, link: LinkType) -> Result<()> {
    compile_filter(filter, link).map(|_| ())
}

/// `filter` compiled for frames of `link`, to be run on frames already captured (a replay).
pub fn compile_filter(filter: &str, link: LinkType) -> Result<pcap::BpfProgram> {
    let cap =
        Capture::dead(Linktype(i32::from(link.linktype()))).map_err(|e| anyhow!("libpcap: {e}"))?;
    cap.compile(filter, true)
        .map_err(|e| anyhow!("bad capture filter {filter:?}: {e}"))
}

/// A running capture: reader threads feeding one queue.
pub struct Session {
    /// Every interface ever captured on, by handle number (removed ones stay, marked).
    pub handles: Vec<Handle>,
    rx: Receiver<Msg>,
    /// Kept to start readers for interfaces added later.
    tx: SyncSender<Msg>,
    queue: Arc<Queue>,
    /// Frames received, not yet handed out: merged into capture-time order across interfaces.
    pending: order::Order,
    netns: Option<std::fs::File>,
    opts: Options,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    gone: BTreeMap<usize, String>,
}

impl Session {
    /// Open the handles of the interfaces `opts` names (checked against `state`, the node as
    /// the caller read it) in the target's netns and start one reader per interface.
    pub fn start(
        target: &Target,
        state: &NodeState,
        opts: &Options,
        stop: Arc<AtomicBool>,
    ) -> Result<Session> {
        let names = resolve_ifaces(state, opts)?;
        let mut s = Session::empty(target, opts, stop)?;
        let handles = netns::run_in(s.netns.as_ref(), || open_here(&names, opts))??;
        for h in handles {
            s.spawn(h)?;
        }
        Ok(s)
    }

    /// A session with no interface yet (`add` starts them).
    pub fn empty(target: &Target, opts: &Options, stop: Arc<AtomicBool>) -> Result<Session> {
        let opened = netns::open(target)?;
        // Every message holds at least one frame and at most `queue` frames are queued, so the
        // channel never fills before the frame count does.
        let (tx, rx) = sync_channel::<Msg>(opts.queue.max(1));
        Ok(Session {
            handles: vec![],
            rx,
            tx,
            queue: Arc::new(Queue {
                queued: AtomicUsize::new(0),
                limit: opts.queue.max(1),
            }),
            pending: order::Order::default(),
            netns: opened.file,
            opts: opts.clone(),
            stop,
            threads: vec![],
            gone: BTreeMap::new(),
        })
    }

    fn spawn(&mut self, mut h: Handle) -> Result<usize> {
        let i = self.handles.len();
        let cap = h.cap.take().expect("fresh handle");
        let stats = h.stats.clone();
        let tx = self.tx.clone();
        let queue = self.queue.clone();
        let stops = [self.stop.clone(), h.stop.clone()];
        self.threads.push(
            std::thread::Builder::new()
                .name(format!("pcap-{}", h.name))
                .spawn(move || reader(i, cap, tx, queue, stats, stops))?,
        );
        self.handles.push(h);
        Ok(i)
    }

    /// Start capturing on one more interface (one that appeared, or was chosen later).
    /// Returns its handle number; an interface already captured on is not opened twice.
    pub fn add(&mut self, name: &str) -> Result<usize> {
        if let Some(i) = self.active(name) {
            return Ok(i);
        }
        let names = [name.to_string()];
        let opts = self.opts.clone();
        let mut h = netns::run_in(self.netns.as_ref(), || open_here(&names, &opts))??;
        self.spawn(h.remove(0))
    }

    /// The live handle capturing on `name`, if any.
    pub fn active(&self, name: &str) -> Option<usize> {
        self.handles
            .iter()
            .enumerate()
            .position(|(i, h)| h.name == name && !h.removed() && !self.gone.contains_key(&i))
    }

    /// Stop capturing on one interface; its counters stay readable.
    pub fn remove(&mut self, handle: usize) {
        if let Some(h) = self.handles.get(handle) {
            h.stop.store(true, Ordering::SeqCst);
        }
    }

    /// The next frame in capture-time order, if it may go now (it leaves the queue's count).
    fn pop(&mut self) -> Option<Frame> {
        let (handles, gone) = (&self.handles, &self.gone);
        let live = |i: usize| !handles[i].removed() && !gone.contains_key(&i);
        let f = self
            .pending
            .pop(Instant::now(), handles.len(), live, self.queue.limit / 2)?;
        self.queue.queued.fetch_sub(1, Ordering::Relaxed);
        Some(f)
    }

    fn take(&mut self, m: Msg) {
        match m {
            Msg::Frames(v) => {
                let now = Instant::now();
                for f in v {
                    self.pending.push(f, now);
                }
            }
            Msg::Gone { handle, why } => {
                self.gone.insert(handle, why);
            }
        }
    }

    /// The next frame, or None after `timeout` (also when every reader has ended).
    pub fn next(&mut self, timeout: Duration) -> Option<Frame> {
        // Frames waiting: no clock reading, no blocking.
        if let Some(f) = self.try_next() {
            return Some(f);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(f) = self.pop() {
                return Some(f);
            }
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            // A frame held for older ones from other interfaces goes when its hold ends.
            let wait = self.pending.next_release(now).map_or(left, |r| r.min(left));
            match self.rx.recv_timeout(wait) {
                Ok(m) => self.take(m),
                Err(RecvTimeoutError::Timeout) if wait < left => continue,
                Err(RecvTimeoutError::Timeout) => return self.pop(),
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(left);
                    return None;
                }
            }
        }
    }

    /// Frames captured and not yet taken by `next`: 0 when the caller has caught up (the
    /// moment to flush piped output, so lines arrive as they happen, batched under load).
    pub fn waiting(&self) -> usize {
        self.queue.queued.load(Ordering::Relaxed)
    }

    /// The next frame if one is queued (never waits).
    pub fn try_next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.pop() {
                return Some(f);
            }
            let m = self.rx.try_recv().ok()?;
            self.take(m);
        }
    }

    /// A new capture filter: every live interface is opened again with it.
    pub fn set_filter(&mut self, filter: Option<String>) -> Result<()> {
        self.opts.filter = filter;
        let live: Vec<(usize, String)> = (0..self.handles.len())
            .filter(|&i| self.active(&self.handles[i].name) == Some(i))
            .map(|i| (i, self.handles[i].name.clone()))
            .collect();
        for (i, name) in live {
            self.remove(i);
            self.add(&name)?;
        }
        Ok(())
    }

    /// Interfaces that went away since the last call, with libpcap's reason.
    pub fn gone(&self) -> &BTreeMap<usize, String> {
        &self.gone
    }

    pub fn all_gone(&self) -> bool {
        self.gone.len() == self.handles.len()
    }

    /// Stop the readers and collect their final stats; frames still queued are returned.
    pub fn stop(&mut self) -> Vec<Frame> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        while let Ok(m) = self.rx.try_recv() {
            self.take(m);
        }
        self.queue.queued.store(0, Ordering::Relaxed);
        self.pending.drain()
    }

    /// Per-handle totals (kernel and queue drops) merged with the analyzer's per-interface
    /// counts.
    pub fn totals(&self, an: &mut Analyzer, now: Ts, secs: f64) -> Vec<IfaceTotals> {
        let rates = an.rates_at(now);
        let mut out = vec![];
        let mut seen = vec![];
        for (i, h) in self.handles.iter().enumerate() {
            let s = h.counts();
            let counts = an.counts.get(&h.name).cloned().unwrap_or_default();
            seen.push(h.name.clone());
            out.push(IfaceTotals {
                iface: h.name.clone(),
                captured: counts.packets,
                received_by_filter: s.received,
                dropped_by_kernel: s.kernel_dropped,
                dropped_by_interface: s.if_dropped,
                dropped_by_hopscope: s.queue_dropped,
                esp_pps: avg(counts.esp, secs),
                plaintext_pps: avg(counts.plaintext, secs),
                counts,
                gone: self.gone.get(&i).cloned(),
            });
        }
        // `-i any`: the real interfaces seen through it.
        for (name, counts) in &an.counts {
            if seen.contains(name) {
                continue;
            }
            out.push(IfaceTotals {
                iface: name.clone(),
                captured: counts.packets,
                esp_pps: avg(counts.esp, secs),
                plaintext_pps: avg(counts.plaintext, secs),
                counts: counts.clone(),
                ..Default::default()
            });
        }
        let _ = rates;
        out
    }
}

fn avg(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn reader(
    handle: usize,
    cap: Capture<Active>,
    tx: SyncSender<Msg>,
    queue: Arc<Queue>,
    stats: Arc<HandleStats>,
    stop: [Arc<AtomicBool>; 2],
) {
    let mut last_stats = Instant::now();
    let update = |cap: &mut Capture<Active>, stats: &HandleStats| {
        if let Ok(s) = cap.stats() {
            stats
                .received
                .store(u64::from(s.received), Ordering::Relaxed);
            stats
                .kernel_dropped
                .store(u64::from(s.dropped), Ordering::Relaxed);
            stats
                .if_dropped
                .store(u64::from(s.if_dropped), Ordering::Relaxed);
        }
    };
    // libpcap's own timeout does not fire on an idle TPACKET_V3 socket (it waits for the
    // kernel to retire a block, which an empty block never is): read non-blocking and poll the
    // fd ourselves, so Ctrl-C, -c and --duration end an idle capture within 100 ms.
    let mut cap = match cap.setnonblock() {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Msg::Gone {
                handle,
                why: format!("cannot make the capture non-blocking: {e}"),
            });
            return;
        }
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&cap);
    // Hand a batch over; false when the analyzer is gone.
    let flush = |batch: &mut Vec<Frame>| -> bool {
        if batch.is_empty() {
            return true;
        }
        let n = batch.len();
        queue.queued.fetch_add(n, Ordering::Relaxed);
        // A fresh batch grows from empty: a slow trickle queues small Vecs, not BATCH-sized ones.
        match tx.try_send(Msg::Frames(std::mem::take(batch))) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                queue.queued.fetch_sub(n, Ordering::Relaxed);
                stats.queue_dropped.fetch_add(n as u64, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    };
    let mut batch: Vec<Frame> = Vec::new();
    // Frames taken from the kernel's ring (queue drops included), for the drain on stop.
    let mut read: u64 = 0;
    // Ok(frames read) after one poll and drain; Err(()) when the reader must end now.
    let round =
        |cap: &mut Capture<Active>, batch: &mut Vec<Frame>, read: &mut u64, wait_ms: i32| {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&mut pfd, 1, wait_ms) };
            let before = *read;
            // Drain what is there (bounded, so stop and stats stay responsive).
            for _ in 0..4096 {
                match cap.next_packet() {
                    Ok(p) => {
                        *read += 1;
                        if queue.queued.load(Ordering::Relaxed) + batch.len() >= queue.limit {
                            // The analyzer is behind by a full queue: count, do not copy.
                            stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let h = p.header;
                        let f = Frame {
                            handle,
                            ts: Ts {
                                sec: h.ts.tv_sec,
                                // Nanosecond precision was asked for: tv_usec holds nanoseconds.
                                nsec: h.ts.tv_usec as u32,
                            },
                            len: h.len,
                            data: p.data.to_vec(),
                        };
                        batch.push(f);
                        if batch.len() >= BATCH && !flush(batch) {
                            return Err(());
                        }
                    }
                    Err(pcap::Error::TimeoutExpired) => break,
                    Err(e) => {
                        flush(batch);
                        update(cap, &stats);
                        let _ = tx.send(Msg::Gone {
                            handle,
                            why: e.to_string(),
                        });
                        return Err(());
                    }
                }
            }
            // What this wake-up drained goes to the analyzer now (latency: one poll, not a batch).
            if !flush(batch) {
                return Err(());
            }
            Ok(*read - before)
        };
    while !stop.iter().any(|s| s.load(Ordering::Relaxed)) {
        if round(&mut cap, &mut batch, &mut read, 100).is_err() {
            return;
        }
        if last_stats.elapsed() >= Duration::from_millis(500) {
            update(&mut cap, &stats);
            last_stats = Instant::now();
        }
    }
    // Stopped (Ctrl-C, SIGTERM, -c, --duration): what the kernel already queued on this handle
    // is read and counted before it closes, as tcpdump's final stats do. A TPACKET_V3 block is
    // handed over only when it retires (libpcap's 100 ms timeout), so the last packets may still
    // sit in an open one: poll until the kernel's count is read or a whole round brings nothing.
    for _ in 0..DRAIN_ROUNDS {
        update(&mut cap, &stats);
        let s = &stats;
        let kernel = s.received.load(Ordering::Relaxed);
        if read + s.kernel_dropped.load(Ordering::Relaxed) >= kernel {
            break;
        }
        match round(&mut cap, &mut batch, &mut read, DRAIN_POLL_MS) {
            Ok(0) | Err(()) => break,
            Ok(_) => {}
        }
    }
    update(&mut cap, &stats);
}

/// How long a poll of the drain waits: longer than libpcap's block timeout (100 ms,
/// `open_here`), so a round that brings nothing means the kernel has nothing left to hand over.
const DRAIN_POLL_MS: i32 = 150;
/// Rounds of the drain on stop at most (a flood must not keep a stopped capture alive).
const DRAIN_ROUNDS: usize = 8;

/// Shared flag set by SIGINT, SIGTERM and SIGHUP (installed once per process): each ends the
/// run the way Ctrl-C does, so what was captured is written out and the totals are said.
/// (Only SIGINT used to: `kill` or a closed terminal lost the `-w` file's buffered packets.)
/// The handler only stores into the flag, so it works under the capture's seccomp filter.
pub fn ctrl_c_flag() -> Arc<AtomicBool> {
    static FLAG: Mutex<Option<Arc<AtomicBool>>> = Mutex::new(None);
    let mut g = FLAG.lock().unwrap();
    if let Some(f) = g.as_ref() {
        return f.clone();
    }
    let f = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register(sig, f.clone());
    }
    *g = Some(f.clone());
    f
}

/// `PacketRecord` for JSON lines: one object per packet with `"type":"packet"`.
#[derive(serde::Serialize)]
pub struct JsonPacket<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub rec: &'a PacketRecord,
}
