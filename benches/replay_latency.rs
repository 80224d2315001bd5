//! A replay at 10× of a busy recording: how long a key takes to reach the screen, and how far
//! the packets shown lag behind the replay's clock (drift). The recording: the demo's worker
//! with its real eth0 ESP frames repeated at 10k pkt/s for 20 s, so the TUI loop is fed 100k
//! pkt/s. The loop is the real one (`tui::run_loop`, a TestBackend of 200×50); a key (pane
//! switches and row moves, as a user types) is handed every 100 ms, and its latency runs from
//! handing it until the loop asks for the next one (it has answered it, taken events and
//! packets, and drawn). `cargo bench --bench replay_latency`; the claim is < 50 ms (#17).

use hopscope::cmd::record::demo_recording;
use hopscope::model::event::{Event, Live};
use hopscope::model::{Names, Netfilter};
use hopscope::record::Meta;
use hopscope::record::format::{End, FrameRec, Iface, Record};
use hopscope::record::reader::Recording;
use hopscope::record::replay::ReplayInputs;
use hopscope::record::writer::Writer;
use hopscope::tui::app::App;
use hopscope::tui::inputs::Inputs;
use hopscope::tui::keymap::Keymap;
use hopscope::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{self as cev, KeyCode, KeyEvent, KeyModifiers};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const SECOND: u64 = 1_000_000_000;
const RATE: u64 = 10_000;
const SECONDS: u64 = 20;
const SPEED: f64 = 10.0;
const KEY_EVERY: Duration = Duration::from_millis(100);
const KEYS: &str = "71j4k7jj9k7";

/// The busy recording, written to a file and read back as `replay` reads it.
fn busy_recording() -> Recording {
    let demo = demo_recording(false).unwrap();
    let state = demo.state_at(0, u64::MAX);
    let frames: Vec<_> = demo
        .frames
        .iter()
        .filter(|f| demo.ifaces[f.iface].node == 0 && demo.ifaces[f.iface].name == "eth0")
        .collect();
    let started = demo.meta.started_unix_ns;
    let meta = Meta {
        hopscope: "bench".into(),
        started_unix_ns: started,
        host: "bench".into(),
        nodes: vec!["netns worker".into()],
        interfaces: vec!["eth0".into()],
        limit_bytes: u64::MAX,
        interval_ms: 1000,
        ..Default::default()
    };
    let path = std::env::temp_dir().join(format!("hopscope-bench-{}.hsrec", std::process::id()));
    let mut w = Writer::create(&path, &meta).unwrap();
    w.write(&Record::State {
        node: 0,
        at: 0,
        state: Box::new(state),
    })
    .unwrap();
    w.write(&Record::Iface(Iface {
        id: 0,
        node: 0,
        name: "eth0".into(),
        linktype: 1,
    }))
    .unwrap();
    let n = RATE * SECONDS;
    for i in 0..n {
        let f = frames[i as usize % frames.len()];
        let at = SECOND / 10 + i * SECOND / RATE;
        let t = started + at;
        w.write(&Record::Frame(FrameRec {
            iface: 0,
            sec: (t / SECOND) as i64,
            nsec: (t % SECOND) as u32,
            len: f.len,
            data: f.data.clone(),
        }))
        .unwrap();
    }
    w.write(&Record::End(End {
        at: SECOND / 10 + SECONDS * SECOND,
        reason: "duration reached".into(),
        frames: n,
        ..Default::default()
    }))
    .unwrap();
    w.flush().unwrap();
    drop(w);
    let rec = Recording::open(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    rec
}

/// The replay, with keys handed as a user types them and each key's latency measured.
struct Timed {
    inner: ReplayInputs,
    keys: Vec<char>,
    next_key: Instant,
    handed: Option<Instant>,
    latencies: Vec<Duration>,
    drifts: Vec<Duration>,
    shown: u64,
}

impl Inputs for Timed {
    fn label(&self) -> String {
        self.inner.label()
    }
    fn events(&mut self, max: usize) -> Vec<Event> {
        self.inner.events(max)
    }
    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }
    fn instant(&self) -> Instant {
        self.inner.instant()
    }
    fn now(&self) -> SystemTime {
        self.inner.now()
    }
    fn since(&self) -> SystemTime {
        self.inner.since()
    }
    fn names(&self) -> (u64, Arc<Names>) {
        self.inner.names()
    }
    fn netns_names(&self) -> Vec<String> {
        self.inner.netns_names()
    }
    fn signal(&self) -> i32 {
        0
    }
    fn terminal_event(&mut self, timeout: Duration) -> anyhow::Result<Option<cev::Event>> {
        if timeout.is_zero() {
            return Ok(None);
        }
        if let Some(t) = self.handed.take() {
            self.latencies.push(t.elapsed());
        }
        let end = self.inner.clock.pos() >= self.inner.recording().duration();
        let c = if end {
            'q'
        } else {
            let now = Instant::now();
            if now < self.next_key {
                std::thread::sleep(timeout.min(self.next_key - now));
                return Ok(None);
            }
            self.next_key = now + KEY_EVERY;
            self.keys.rotate_left(1);
            self.keys[0]
        };
        self.handed = Some(Instant::now());
        Ok(Some(cev::Event::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        ))))
    }
    fn switch_netns(&mut self, name: &str) -> anyhow::Result<()> {
        self.inner.switch_netns(name)
    }
    fn netfilter(&self) -> Netfilter {
        self.inner.netfilter()
    }
    fn capturing(&self) -> bool {
        self.inner.capturing()
    }
    fn capture(
        &mut self,
        ifaces: &[String],
        on: bool,
        live: &Live,
        app: &mut App,
    ) -> anyhow::Result<String> {
        self.inner.capture(ifaces, on, live, app)
    }
    fn set_filter(&mut self, filter: Option<String>, app: &mut App) -> anyhow::Result<()> {
        self.inner.set_filter(filter, app)
    }
    fn pump(&mut self, budget: Duration, live: &Live, app: &mut App) -> usize {
        let n = self.inner.pump(budget, live, app);
        self.shown += n as u64;
        // Drift: the replay's clock against the newest packet shown.
        let newest = app.packets.seqs().end.checked_sub(1);
        if let Some(p) = newest.and_then(|s| app.packets.get(s)) {
            let shown = SystemTime::UNIX_EPOCH
                + Duration::new(p.ts.sec.max(0) as u64, p.ts.nsec.min(999_999_999));
            self.drifts
                .push(self.inner.now().duration_since(shown).unwrap_or_default());
        }
        n
    }
    fn take_key(&mut self, key: &cev::KeyEvent) -> Option<String> {
        self.inner.take_key(key)
    }
    fn prepare(&self, app: &mut App) {
        self.inner.prepare(app)
    }
    fn restarted(&mut self) -> bool {
        self.inner.restarted()
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let rec = busy_recording();
    let frames = rec.frames.len();
    let inner = ReplayInputs::new(Arc::new(rec), 0, SPEED, false);
    let mut t = Timed {
        inner,
        keys: KEYS.chars().collect(),
        next_key: Instant::now() + KEY_EVERY,
        handed: None,
        latencies: vec![],
        drifts: vec![],
        shown: 0,
    };
    let app = App::new(
        Keymap::default(),
        Duration::from_secs(1),
        t.label(),
        t.since(),
    );
    let mut term = Terminal::new(TestBackend::new(200, 50)).unwrap();
    let start = Instant::now();
    hopscope::tui::run_loop(&mut term, &mut t, app, &Theme::builtin("dark")).unwrap();
    let wall = start.elapsed();
    let (mut l, mut d) = (t.latencies.clone(), t.drifts.clone());
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    println!(
        "replay at {SPEED}× of {frames} frames ({RATE} pkt/s recorded, {} pkt/s fed): {:.1} s wall, {} frames analysed",
        (RATE as f64 * SPEED) as u64,
        wall.as_secs_f64(),
        t.shown
    );
    println!(
        "key latency over {} keys: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (claim: < 50 ms)",
        l.len(),
        ms(pct(&mut l, 0.5)),
        ms(pct(&mut l, 0.99)),
        ms(pct(&mut l, 1.0)),
    );
    println!(
        "drift (replay clock − newest packet shown) over {} frames: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        d.len(),
        ms(pct(&mut d, 0.5)),
        ms(pct(&mut d, 0.99)),
        ms(pct(&mut d, 1.0)),
    );
}
