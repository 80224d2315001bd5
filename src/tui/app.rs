//! The TUI's logic, apart from drawing and terminals: state, `Action`s, keys and commands.
//! Every method takes the data (`&Live`) as an argument, so tests drive it with
//! hand-built states and no terminal.

use super::filter::{Filter, sort_key};
use super::flow::{Traced, flow_of};
use super::keymap::{Action, Keymap};
use super::packets::{self, PacketLog};
use super::rows::{self, PANES, Pane};
use crate::model::event::{Live, SaKey};
use crate::trace::path::Flow;
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;
use std::cell::{Cell, RefCell};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a `/` filter.
    Filter,
    /// Typing a `:` command.
    Command,
    Help,
    Detail,
    /// Typing a capture (BPF) filter.
    Bpf,
}

/// What a key did to the line being typed.
enum LineKey {
    Edited,
    Submit,
    Cancel,
    Quit,
    Other,
}

/// What the runtime must do after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    Quit,
    /// Follow another netns (`:netns NAME`).
    Netns(String),
    /// Pause toggled: freeze or unfreeze the data shown.
    Pause,
    /// Start (on) or stop capturing on these interfaces.
    Capture {
        ifaces: Vec<String>,
        on: bool,
    },
    /// A new capture filter for every stream (None: none).
    Bpf(Option<String>),
    /// Have libpcap check the capture filter line off the loop (`App::bpf_checked` answers).
    CheckBpf(String),
    /// Predict this flow's path on the node shown and follow it with captures.
    Trace(Flow),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CacheKey {
    epoch: u64,
    structure: u64,
    counters: u64,
    filter: Filter,
    sort: Option<(usize, bool)>,
    table: Option<u32>,
    /// The packet log's or the trace's generation (their rows are not the node's).
    stream: u64,
}

/// One pane's view: its filter, sort and selection, and the rows they leave (indexes
/// into the state's vector, in display order).
#[derive(Debug, Default)]
pub struct PaneView {
    pub filter_text: String,
    pub filter: Filter,
    /// (column, descending)
    pub sort: Option<(usize, bool)>,
    pub selected: usize,
    /// Packets: the packet (sequence number) the user moved the selection to, off the newest
    /// row. Filters and new packets keep the selection on it (or the next one shown), even
    /// when that is the last row; without it the selection follows the newest packet.
    pub held: Option<usize>,
    /// First row shown; kept by the renderer so the selection stays visible.
    pub offset: Cell<usize>,
    pub rows: Vec<usize>,
    key: Option<CacheKey>,
    /// Packets pane: the sequence number after the last packet filtered into `rows`.
    scanned: usize,
}

impl PaneView {
    pub fn selected_index(&self) -> Option<usize> {
        self.rows.get(self.selected).copied()
    }
}

#[derive(Debug, Clone)]
pub struct Detail {
    pub pane: Pane,
    /// Index in the state; None once the row is gone.
    pub index: Option<usize>,
    pub identity: String,
    pub scroll: usize,
}

/// Screen regions of the last frame, for mouse clicks.
#[derive(Debug, Default, Clone)]
pub struct Hits {
    pub tabs_y: u16,
    pub tabs: Vec<(u16, u16, Pane)>,
    pub table: Rect,
}

pub const COMMANDS: [&str; 21] = [
    "links", "routes", "rules", "xfrm", "sas", "policies", "stats", "packets", "trace", "health",
    "table", "netns", "sort", "filter", "capture", "stop", "bpf", "decrypt", "pause", "help",
    "quit",
];

pub struct App {
    pub pane: Pane,
    pub mode: Mode,
    pub views: Vec<PaneView>,
    /// The filter or command line being typed.
    pub input: String,
    pub input_error: Option<String>,
    /// The capture filter line is being checked (its verdict has not come back yet).
    pub bpf_checking: bool,
    /// The filter in force when `/` was pressed (esc goes back to it).
    filter_before: String,
    pub completions: Vec<String>,
    /// `:table N`: only routes of this table.
    pub table: Option<u32>,
    pub paused: bool,
    pub show_keys: bool,
    pub detail: Option<Detail>,
    pub help_scroll: usize,
    /// A one-line answer to the last command or jump (text, is_error).
    pub message: Option<(String, bool)>,
    /// Named netns, for `:netns` completion (the runtime refreshes it).
    pub netns_names: Vec<String>,
    /// Kubernetes names for the addresses in rows (the runtime hands over each new table).
    pub names: std::sync::Arc<crate::model::Names>,
    pub keymap: Keymap,
    pub interval: Duration,
    /// What is shown: `netns worker`, `own netns`, `pid 1234`.
    pub target_label: String,
    pub since: SystemTime,
    pub now: SystemTime,
    /// Samples the source dropped (queue full).
    pub dropped: u64,
    epoch: u64,
    pub hits: RefCell<Hits>,
    /// Rows in the table body in the last frame (page size).
    pub page: Cell<usize>,
    /// What the capture brought (the Packets pane).
    pub packets: PacketLog,
    /// The flow being followed (the Trace pane).
    pub traced: Option<Traced>,
    /// Bumped when the trace or what was seen of it changes.
    pub trace_gen: u64,
    /// The doctor's findings on the node (the Health pane, the header's counts).
    pub health: super::health::Health,
}

impl App {
    pub fn new(keymap: Keymap, interval: Duration, target_label: String, since: SystemTime) -> App {
        App {
            pane: Pane::Links,
            mode: Mode::Normal,
            views: PANES.iter().map(|_| PaneView::default()).collect(),
            input: String::new(),
            input_error: None,
            bpf_checking: false,
            filter_before: String::new(),
            completions: Vec::new(),
            table: None,
            paused: false,
            show_keys: false,
            detail: None,
            help_scroll: 0,
            message: None,
            netns_names: Vec::new(),
            names: Default::default(),
            keymap,
            interval,
            target_label,
            since,
            now: since,
            dropped: 0,
            epoch: 0,
            hits: RefCell::new(Hits::default()),
            page: Cell::new(20),
            packets: PacketLog::default(),
            traced: None,
            trace_gen: 0,
            health: Default::default(),
        }
    }

    pub fn view(&self) -> &PaneView {
        &self.views[self.pane.index()]
    }
    fn view_mut(&mut self) -> &mut PaneView {
        let i = self.pane.index();
        &mut self.views[i]
    }

    /// The data behind the view was swapped (paused, unpaused, other netns).
    pub fn invalidate(&mut self) {
        self.epoch += 1;
    }

    /// Rows of any pane: the node's, the packet log's or the trace's.
    pub fn pane_len(&self, pane: Pane, live: &Live) -> usize {
        match pane {
            Pane::Packets => self.packets.len(),
            Pane::Trace => self.traced.as_ref().map_or(0, Traced::len),
            Pane::Health => self.health.len(),
            p => p.len(&live.state),
        }
    }

    /// A row's cells. Packet rows are named by sequence number, the others by index.
    pub fn row_cells(&self, pane: Pane, live: &Live, i: usize) -> Vec<String> {
        match pane {
            Pane::Packets => self
                .packets
                .get(i as u64)
                .map(|r| packets::cells(r, &self.names))
                .unwrap_or_default(),
            Pane::Trace => self
                .traced
                .as_ref()
                .filter(|t| i < t.len())
                .map(|t| t.cells(i, &self.names))
                .unwrap_or_default(),
            Pane::Health => self.health.cells(i),
            p => rows::cells(p, live, i, &self.names),
        }
    }

    pub fn row_trouble(&self, pane: Pane, live: &Live, i: usize) -> bool {
        match pane {
            Pane::Packets => self.packets.get(i as u64).is_some_and(packets::trouble),
            Pane::Trace => self.traced.as_ref().is_some_and(|t| t.trouble(i)),
            Pane::Health => self.health.trouble(i),
            p => rows::trouble(p, live, i),
        }
    }

    pub fn row_detail(&self, pane: Pane, live: &Live, i: usize) -> Option<Vec<(String, String)>> {
        match pane {
            Pane::Packets => self
                .packets
                .get(i as u64)
                .map(|r| packets::detail(r, &self.names)),
            Pane::Trace => self
                .traced
                .as_ref()
                .filter(|t| i < t.len())
                .map(|t| t.detail(i, &self.names)),
            Pane::Health => self.health.detail(i),
            p => Some(rows::detail(p, live, i, self.show_keys, &self.names)),
        }
    }

    /// Recompute the rows of the shown pane (and the detail's row) if anything they
    /// depend on changed. Cheap when nothing did.
    pub fn refresh(&mut self, live: &Live) {
        self.health
            .update(live, &self.names, std::time::Instant::now());
        self.refresh_pane(self.pane, live);
        if let Some(d) = &mut self.detail {
            if matches!(d.pane, Pane::Packets | Pane::Trace | Pane::Health) {
                return; // named by sequence number / hop: they stay what they are
            }
            let st = &live.state;
            let still = d
                .index
                .filter(|&i| i < d.pane.len(st) && rows::identity(d.pane, st, i) == d.identity);
            d.index = still.or_else(|| rows::find_identity(d.pane, st, &d.identity));
        }
    }

    fn refresh_pane(&mut self, pane: Pane, live: &Live) {
        let table = (pane == Pane::Routes).then_some(self.table).flatten();
        let v = &self.views[pane.index()];
        let packets = pane == Pane::Packets;
        let key = CacheKey {
            epoch: self.epoch,
            // Packet rows do not depend on the node's state (names come with the epoch).
            structure: if packets { 0 } else { live.structure_gen },
            counters: if pane.has_counters() {
                live.counter_gen
            } else {
                0
            },
            filter: v.filter.clone(),
            sort: v.sort,
            table,
            stream: match pane {
                Pane::Packets => self.packets.seqs().end,
                Pane::Trace => self.trace_gen,
                Pane::Health => self.health.generation,
                _ => 0,
            },
        };
        if v.key.as_ref() == Some(&key) {
            return;
        }
        // Only packets came and went, unsorted: filter just the new ones (a flood would
        // otherwise format every kept packet again on every frame).
        let only_new_packets = packets
            && v.sort.is_none()
            && v.key.as_ref().is_some_and(|k| {
                CacheKey {
                    stream: key.stream,
                    ..k.clone()
                } == key
            });
        let seqs = self.packets.seqs();
        let (first, end) = (seqs.start as usize, seqs.end as usize);
        let st = &live.state;
        let all: Vec<usize> = match (pane, table) {
            (Pane::Packets, _) if only_new_packets => (v.scanned.max(first)..end).collect(),
            (Pane::Packets, _) => (first..end).collect(),
            (_, Some(t)) => (0..pane.len(st))
                .filter(|&i| st.routes[i].table.id == t)
                .collect(),
            _ => (0..self.pane_len(pane, live)).collect(),
        };
        let out = if !v.filter.is_empty() || v.sort.is_some() {
            let mut keyed = Vec::with_capacity(all.len());
            for i in all {
                let c = self.row_cells(pane, live, i);
                if v.filter.matches(&c) {
                    let k = v
                        .sort
                        .map(|(col, _)| sort_key(c.get(col).map_or("", |s| s)));
                    keyed.push((k, i));
                }
            }
            if let Some((_, desc)) = v.sort {
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
                if desc {
                    keyed.reverse();
                }
            }
            keyed.into_iter().map(|(_, i)| i).collect()
        } else {
            all
        };
        let out = if only_new_packets {
            let mut kept: Vec<usize> = v.rows.iter().copied().filter(|&s| s >= first).collect();
            kept.extend(out);
            kept
        } else {
            out
        };
        let v = &mut self.views[pane.index()];
        v.scanned = end;
        // Packets: a selection on the newest row stays on the newest (the stream scrolls);
        // one the user moved up stays on its packet while older ones are let go, or, while a
        // filter hides it, on the row shown just before it (never on a later packet: that
        // would be dragged along by the stream, and `t` trace a packet nobody picked).
        let sel = if let Some(seq) = v.held.filter(|_| packets) {
            Some(out.partition_point(|&s| s <= seq).saturating_sub(1))
        } else if packets {
            Some(out.len().saturating_sub(1))
        } else {
            None
        };
        v.rows = out;
        v.selected = sel
            .unwrap_or(v.selected)
            .min(v.rows.len().saturating_sub(1));
        v.key = Some(key);
    }

    pub fn handle_key(&mut self, ev: KeyEvent, live: &Live) -> Effect {
        if ev.kind != KeyEventKind::Press {
            return Effect::None;
        }
        match self.mode {
            Mode::Filter => self.filter_key(ev, live),
            Mode::Command => self.command_key(ev, live),
            Mode::Bpf => self.bpf_key(ev),
            _ => match self.keymap.lookup(&ev) {
                Some(a) => self.apply(a, live),
                None => Effect::None,
            },
        }
    }

    pub fn handle_mouse(&mut self, ev: MouseEvent, live: &Live) -> Effect {
        match ev.kind {
            MouseEventKind::ScrollDown => {
                for _ in 0..3 {
                    self.apply(Action::Down, live);
                }
            }
            MouseEventKind::ScrollUp => {
                for _ in 0..3 {
                    self.apply(Action::Up, live);
                }
            }
            MouseEventKind::Down(MouseButton::Left) => {
                let hits = self.hits.borrow().clone();
                if ev.row == hits.tabs_y {
                    if let Some((_, _, p)) = hits
                        .tabs
                        .iter()
                        .find(|(a, b, _)| ev.column >= *a && ev.column < *b)
                    {
                        self.switch(*p, live);
                    }
                } else if self.mode == Mode::Normal
                    && ev.row > hits.table.y
                    && ev.row < hits.table.y + hits.table.height
                {
                    let i = self.view().offset.get() + usize::from(ev.row - hits.table.y - 1);
                    let v = self.view_mut();
                    if i < v.rows.len() {
                        v.selected = i;
                        v.held = v.rows.get(i).copied().filter(|_| i + 1 < v.rows.len());
                    }
                }
            }
            _ => {}
        }
        Effect::None
    }

    fn switch(&mut self, p: Pane, live: &Live) {
        self.pane = p;
        if matches!(self.mode, Mode::Detail | Mode::Help) {
            self.mode = Mode::Normal;
            self.detail = None;
        }
        self.refresh(live);
    }

    fn move_by(&mut self, delta: isize) {
        match self.mode {
            Mode::Detail => {
                if let Some(d) = &mut self.detail {
                    d.scroll = d.scroll.saturating_add_signed(delta);
                }
            }
            Mode::Help => self.help_scroll = self.help_scroll.saturating_add_signed(delta),
            _ => {
                let v = self.view_mut();
                let last = v.rows.len().saturating_sub(1);
                v.selected = v.selected.saturating_add_signed(delta).min(last);
                v.held = v
                    .rows
                    .get(v.selected)
                    .copied()
                    .filter(|_| v.selected < last);
            }
        }
    }

    pub fn apply(&mut self, a: Action, live: &Live) -> Effect {
        let page = self.page.get().max(1) as isize;
        match a {
            Action::Quit => return Effect::Quit,
            Action::Help => self.toggle_help(),
            Action::Back => self.back(live),
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-page),
            Action::PageDown => self.move_by(page),
            Action::Top => self.move_by(isize::MIN / 2),
            Action::Bottom => self.move_by(isize::MAX / 2),
            Action::NextPane => self.switch(PANES[(self.pane.index() + 1) % PANES.len()], live),
            Action::PrevPane => self.switch(
                PANES[(self.pane.index() + PANES.len() - 1) % PANES.len()],
                live,
            ),
            Action::Pane(i) => {
                if let Some(p) = PANES.get(i) {
                    self.switch(*p, live)
                }
            }
            Action::Detail => self.open_detail(live),
            Action::Filter => {
                self.mode = Mode::Filter;
                self.input = self.view().filter_text.clone();
                self.filter_before = self.input.clone();
                self.input_error = None;
            }
            Action::Command => {
                self.mode = Mode::Command;
                self.input.clear();
                self.input_error = None;
                self.completions.clear();
            }
            Action::SortNext | Action::SortReverse => self.sort(a == Action::SortReverse, live),
            Action::Pause => {
                self.paused = !self.paused;
                return Effect::Pause;
            }
            Action::Jump => self.jump(live),
            Action::Capture => return self.capture_key(live),
            Action::Decrypt => self.toggle_decrypt(live),
            Action::Bpf => {
                self.mode = Mode::Bpf;
                self.input = self.packets.bpf.clone().unwrap_or_default();
                self.input_error = None;
            }
            Action::Follow => return self.follow_selected(),
        }
        Effect::None
    }

    fn toggle_help(&mut self) {
        self.mode = if self.mode == Mode::Help {
            Mode::Normal
        } else {
            self.help_scroll = 0;
            Mode::Help
        };
    }

    /// Esc: close the overlay; else clear the message, then the filter, then the table shown.
    fn back(&mut self, live: &Live) {
        match self.mode {
            Mode::Help => self.mode = Mode::Normal,
            Mode::Detail => {
                self.mode = Mode::Normal;
                self.detail = None;
            }
            _ => {
                self.message = None;
                if !self.view().filter.is_empty() {
                    self.set_filter("", live);
                } else if self.pane == Pane::Routes && self.table.is_some() {
                    self.table = None;
                    self.refresh(live);
                }
            }
        }
    }

    /// Enter: the selected row's detail; on a finding, the object it names.
    fn open_detail(&mut self, live: &Live) {
        let selected = self.view().selected_index();
        if self.pane == Pane::Health {
            match selected.and_then(|i| self.health.target(i, &live.state)) {
                Some((pane, row)) => self.select_row(pane, row, live),
                None => self.say("this finding names no object of the node", true),
            }
            return;
        }
        let Some(i) = selected else {
            return;
        };
        self.detail = Some(Detail {
            pane: self.pane,
            index: Some(i),
            identity: match self.pane {
                Pane::Packets | Pane::Trace | Pane::Health => i.to_string(),
                p => rows::identity(p, &live.state, i),
            },
            scroll: 0,
        });
        self.mode = Mode::Detail;
    }

    /// `s`: sort by the next column (then unsorted); `S`: reverse the order.
    fn sort(&mut self, reverse: bool, live: &Live) {
        let n = self.pane.headers().len();
        let v = self.view_mut();
        v.sort = match (reverse, v.sort) {
            (false, None) => Some((0, false)),
            (false, Some((c, _))) if c + 1 < n => Some((c + 1, false)),
            (false, Some(_)) => None,
            (true, None) => Some((0, true)),
            (true, Some((c, d))) => Some((c, !d)),
        };
        self.refresh(live);
    }

    /// `c`: on the Links pane, capture on the selected link (or stop); on the Packets pane,
    /// stop the selected packet's interface.
    fn capture_key(&mut self, live: &Live) -> Effect {
        let Some(i) = self.view().selected_index() else {
            return Effect::None;
        };
        let iface = match self.pane {
            Pane::Links => live.state.links[i].name.clone(),
            Pane::Packets => match self.packets.get(i as u64) {
                Some(r) => r.iface.clone(),
                None => return Effect::None,
            },
            _ => {
                self.say(
                    "c captures on the selected link: use it on the Links pane (1), or :capture IF",
                    true,
                );
                return Effect::None;
            }
        };
        let on = !self.packets.capturing(&iface);
        Effect::Capture {
            ifaces: vec![iface],
            on,
        }
    }

    fn toggle_decrypt(&mut self, live: &Live) {
        self.packets.decrypt = !self.packets.decrypt;
        if self.packets.decrypt {
            let n = live
                .state
                .xfrm_states
                .iter()
                .filter(|s| s.proto == crate::model::XfrmProto::Esp)
                .count();
            self.say(
                format!(
                    "decrypting ESP with the keys of {n} SA{} of this node (keys stay {})",
                    if n == 1 { "" } else { "s" },
                    if self.show_keys {
                        "shown: --show-keys"
                    } else {
                        "redacted"
                    }
                ),
                false,
            );
        } else {
            self.say("ESP no longer decrypted", false);
        }
    }

    /// `t` on a packet: its flow, hop by hop, followed live.
    fn follow_selected(&mut self) -> Effect {
        if self.pane != Pane::Packets {
            self.say(
                "t follows the selected packet's flow: use it on the Packets pane (7), or :trace SRC DST",
                true,
            );
            return Effect::None;
        }
        let Some(r) = self
            .view()
            .selected_index()
            .and_then(|i| self.packets.get(i as u64))
        else {
            return Effect::None;
        };
        match flow_of(r) {
            Ok(mut f) => {
                // Picked where it leaves (e.g. as ESP on eth0)? Where it entered this node is
                // the interface that saw the same packet come in, if one was captured.
                if f.iif.is_none() {
                    f.iif = self.packets.entered_on(&f);
                }
                Effect::Trace(f)
            }
            Err(e) => {
                self.say(e, true);
                Effect::None
            }
        }
    }

    /// The capture filter line: libpcap checks it as it is typed (off the loop); enter applies
    /// one not refused.
    fn bpf_key(&mut self, ev: KeyEvent) -> Effect {
        match self.edit_line(&ev) {
            LineKey::Cancel => {
                self.mode = Mode::Normal;
                self.input_error = None;
                self.bpf_checking = false;
            }
            // Still being checked: applied anyway; where it is applied says if it is refused.
            LineKey::Submit if self.input_error.is_none() => {
                self.mode = Mode::Normal;
                self.bpf_checking = false;
                let f = std::mem::take(&mut self.input);
                return Effect::Bpf(Some(f.trim().to_string()).filter(|f| !f.is_empty()));
            }
            LineKey::Edited => {
                // Checked off the loop: typing never waits for libpcap's optimiser.
                self.input_error = None;
                self.bpf_checking = true;
                return Effect::CheckBpf(self.input.clone());
            }
            LineKey::Quit => return Effect::Quit,
            _ => {}
        }
        Effect::None
    }

    /// libpcap's verdict on a capture filter text; ignored unless it is still the line's.
    pub fn bpf_checked(&mut self, text: &str, verdict: Result<(), String>) {
        if self.mode == Mode::Bpf && self.input == text {
            self.bpf_checking = false;
            self.input_error = verdict.err();
        }
    }

    /// Apply a filter text to the shown pane; false (and the reason) if it is invalid.
    pub fn set_filter(&mut self, text: &str, live: &Live) -> bool {
        match Filter::parse(text, &self.pane.headers()) {
            Ok(f) => {
                let v = self.view_mut();
                v.filter = f;
                v.filter_text = text.trim().to_string();
                self.input_error = None;
                self.refresh(live);
                true
            }
            Err(e) => {
                self.input_error = Some(e);
                false
            }
        }
    }

    /// The keys every typed line shares (`/`, `:`, `b`): edit it, or say what else was asked.
    fn edit_line(&mut self, ev: &KeyEvent) -> LineKey {
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        match ev.code {
            KeyCode::Esc => LineKey::Cancel,
            KeyCode::Enter => LineKey::Submit,
            KeyCode::Char('c') if ctrl => LineKey::Quit,
            KeyCode::Char('u') if ctrl => {
                self.input.clear();
                LineKey::Edited
            }
            KeyCode::Backspace => {
                self.input.pop();
                LineKey::Edited
            }
            KeyCode::Char(c) => {
                self.input.push(c);
                LineKey::Edited
            }
            _ => LineKey::Other,
        }
    }

    fn filter_key(&mut self, ev: KeyEvent, live: &Live) -> Effect {
        match self.edit_line(&ev) {
            LineKey::Cancel => {
                let before = self.filter_before.clone();
                self.set_filter(&before, live);
                self.mode = Mode::Normal;
            }
            LineKey::Submit if self.input_error.is_none() => self.mode = Mode::Normal,
            LineKey::Edited => {
                let t = self.input.clone();
                // Validated as typed: an invalid filter keeps the last valid one in force.
                self.set_filter(&t, live);
            }
            LineKey::Quit => return Effect::Quit,
            _ => {}
        }
        Effect::None
    }

    fn command_key(&mut self, ev: KeyEvent, live: &Live) -> Effect {
        if ev.code == KeyCode::Tab {
            self.complete(live);
            return Effect::None;
        }
        match self.edit_line(&ev) {
            LineKey::Cancel => {
                self.mode = Mode::Normal;
                self.completions.clear();
            }
            LineKey::Submit => {
                let line = std::mem::take(&mut self.input);
                self.mode = Mode::Normal;
                self.completions.clear();
                return self.run_command(&line, live);
            }
            LineKey::Edited => self.completions.clear(),
            LineKey::Quit => return Effect::Quit,
            LineKey::Other => {}
        }
        Effect::None
    }

    /// Candidates for the word being typed on the command line.
    pub fn candidates(&self, live: &Live) -> Vec<String> {
        let (head, word) = match self.input.rsplit_once(' ') {
            Some((h, w)) => (Some(h.trim()), w),
            None => (None, self.input.as_str()),
        };
        let all: Vec<String> = match head {
            None => COMMANDS.iter().map(|s| s.to_string()).collect(),
            Some("netns") => self.netns_names.clone(),
            Some("capture") => link_names(live),
            Some("stop") => {
                let mut a = self.packets.active();
                a.push("all".into());
                a
            }
            Some("decrypt") => vec!["on".into(), "off".into()],
            Some("table") => {
                let mut t: Vec<String> = vec!["all".into()];
                let mut ids: Vec<u32> = live.state.routes.iter().map(|r| r.table.id).collect();
                ids.sort_unstable();
                ids.dedup();
                for id in ids {
                    t.push(id.to_string());
                }
                for r in &live.state.routes {
                    if let Some(n) = &r.table.name
                        && !t.contains(n)
                    {
                        t.push(n.clone());
                    }
                }
                t
            }
            Some("sort") => self
                .pane
                .headers()
                .iter()
                .map(|h| h.to_lowercase())
                .collect(),
            Some(_) => vec![],
        };
        all.into_iter().filter(|c| c.starts_with(word)).collect()
    }

    fn complete(&mut self, live: &Live) {
        let c = self.candidates(live);
        let word_start = self.input.rfind(' ').map_or(0, |i| i + 1);
        match c.len() {
            0 => self.completions = vec![],
            1 => {
                self.input.truncate(word_start);
                self.input.push_str(&c[0]);
                if word_start == 0
                    && matches!(
                        c[0].as_str(),
                        "table" | "netns" | "sort" | "filter" | "capture" | "stop" | "bpf"
                    )
                {
                    self.input.push(' ');
                }
                self.completions.clear();
            }
            _ => {
                let mut lcp = c[0].clone();
                for s in &c[1..] {
                    while !s.starts_with(&lcp) {
                        lcp.pop();
                    }
                }
                self.input.truncate(word_start);
                self.input.push_str(&lcp);
                self.completions = c;
            }
        }
    }

    fn say(&mut self, text: impl Into<String>, error: bool) {
        self.message = Some((text.into(), error));
    }

    pub fn run_command(&mut self, line: &str, live: &Live) -> Effect {
        let mut words = line.split_whitespace();
        let Some(cmd) = words.next() else {
            return Effect::None;
        };
        let rest: Vec<&str> = words.collect();
        if cmd == "trace" && !rest.is_empty() {
            return match parse_trace(&rest) {
                Ok(f) => Effect::Trace(f),
                Err(e) => {
                    self.say(e, true);
                    Effect::None
                }
            };
        }
        if let Some(p) = Pane::from_name(cmd) {
            self.switch(p, live);
            return Effect::None;
        }
        match cmd {
            "q" | "quit" | "q!" => return Effect::Quit,
            "help" | "h" | "?" => self.mode = Mode::Help,
            "pause" => return self.apply(Action::Pause, live),
            "table" => return self.table_command(&rest, live),
            "netns" => return self.netns_command(&rest),
            "sort" => return self.sort_command(&rest, live),
            "capture" | "stop" => return self.capture_command(cmd, &rest, live),
            "bpf" => {
                // Compiled where it is applied, off the loop; a refusal is said from there.
                let f = rest.join(" ");
                return Effect::Bpf(Some(f).filter(|f| !f.is_empty()));
            }
            "decrypt" => {
                let want = match rest.first().copied() {
                    None => !self.packets.decrypt,
                    Some("on") => true,
                    Some("off") => false,
                    Some(o) => {
                        self.say(format!(":decrypt [on|off], not {o:?}"), true);
                        return Effect::None;
                    }
                };
                if want != self.packets.decrypt {
                    self.toggle_decrypt(live);
                }
            }
            "filter" => {
                let text = rest.join(" ");
                if !self.set_filter(&text, live) {
                    let e = self.input_error.take().unwrap_or_default();
                    self.say(e, true);
                }
            }
            other => self.say(
                format!(
                    "unknown command {other:?}; commands: {}",
                    COMMANDS.join(" ")
                ),
                true,
            ),
        }
        Effect::None
    }

    /// `:table`: show one routing table (by number or name) or all of them.
    fn table_command(&mut self, rest: &[&str], live: &Live) -> Effect {
        let arg = rest.first().copied().unwrap_or("all");
        let id = match arg {
            "all" => None,
            a => {
                match a.parse::<u32>() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        let by_name = live
                            .state
                            .routes
                            .iter()
                            .find(|r| r.table.name.as_deref() == Some(a))
                            .map(|r| r.table.id)
                            .or(match a {
                                "main" => Some(254),
                                "local" => Some(255),
                                "default" => Some(253),
                                _ => None,
                            });
                        match by_name {
                            Some(n) => Some(n),
                            None => {
                                self.say(format!("unknown table {a:?}: a number, a name from rt_tables, or all"), true);
                                return Effect::None;
                            }
                        }
                    }
                }
            }
        };
        self.table = id;
        self.switch(Pane::Routes, live);
        let v = self.view_mut();
        v.selected = 0;
        let n = v.rows.len();
        match id {
            Some(t) => self.say(format!("table {t}: {n} route(s)"), false),
            None => self.say("all tables", false),
        }
        Effect::None
    }

    /// `:netns`: switch to another netns, or say which ones there are.
    fn netns_command(&mut self, rest: &[&str]) -> Effect {
        match rest.first() {
            Some(name) => Effect::Netns(name.to_string()),
            None => {
                let known = if self.netns_names.is_empty() {
                    format!("none in {}", crate::source::netns::run_dir())
                } else {
                    self.netns_names.join(", ")
                };
                self.say(format!(":netns NAME|PATH (known: {known})"), true);
                Effect::None
            }
        }
    }

    /// `:sort`: sort the pane by a column (descending with `desc`), or stop sorting.
    fn sort_command(&mut self, rest: &[&str], live: &Live) -> Effect {
        match rest.first() {
            None => {
                self.view_mut().sort = None;
                self.refresh(live);
            }
            Some(c) => {
                let headers = self.pane.headers();
                match headers.iter().position(|h| h.eq_ignore_ascii_case(c)) {
                    Some(i) => {
                        let desc = rest.get(1).is_some_and(|d| d.starts_with("desc"));
                        self.view_mut().sort = Some((i, desc));
                        self.refresh(live);
                    }
                    None => self.say(
                        format!(
                            "no column {c:?} here; columns: {}",
                            headers.join(" ").to_lowercase()
                        ),
                        true,
                    ),
                }
            }
        }
        Effect::None
    }

    /// `:capture`/`:stop`: start or stop capturing on interfaces that exist here.
    fn capture_command(&mut self, cmd: &str, rest: &[&str], live: &Live) -> Effect {
        let on = cmd == "capture";
        let ifaces: Vec<String> = if rest == ["all"] && !on {
            self.packets.active()
        } else {
            rest.iter().map(|s| s.to_string()).collect()
        };
        if ifaces.is_empty() {
            self.say(
                format!(
                    ":{cmd} IF [IF…]{}; interfaces: {}",
                    if on { "" } else { " (or all)" },
                    link_names(live).join(", ")
                ),
                true,
            );
            return Effect::None;
        }
        if let Some(bad) = ifaces
            .iter()
            .find(|i| live.state.link_by_name(i).is_none() && i.as_str() != "any")
        {
            self.say(
                format!(
                    "no interface {bad:?} here; interfaces: {}",
                    link_names(live).join(", ")
                ),
                true,
            );
            return Effect::None;
        }
        Effect::Capture { ifaces, on }
    }

    /// Show `pane` with its row `index` selected (cleared of a filter that hides it).
    fn select_row(&mut self, pane: Pane, index: usize, live: &Live) {
        self.mode = Mode::Normal;
        self.detail = None;
        self.pane = pane;
        self.refresh(live);
        if !self.view().rows.contains(&index) {
            // The target is filtered out: show it anyway.
            self.set_filter("", live);
        }
        let pos = self
            .view()
            .rows
            .iter()
            .position(|&r| r == index)
            .unwrap_or(0);
        let v = self.view_mut();
        v.selected = pos;
        v.held = v.rows.get(pos).copied().filter(|_| pos + 1 < v.rows.len());
    }

    /// From an SA to the policies whose templates select it, and back; from an ESP packet
    /// to its SA.
    fn jump(&mut self, live: &Live) {
        let st = &live.state;
        let Some(i) = self.view().selected_index() else {
            return;
        };
        if self.pane == Pane::Packets {
            return self.jump_to_packet_sa(i, live);
        }
        let (to, targets, what) = match self.pane {
            Pane::Sas => (
                Pane::Policies,
                rows::policies_of_sa(st, &st.xfrm_states[i]),
                ["policy selects", "policies select", "this SA"],
            ),
            Pane::Policies => (
                Pane::Sas,
                rows::sas_of_policy(st, &st.xfrm_policies[i]),
                ["SA serves", "SAs serve", "this policy"],
            ),
            _ => {
                self.say(
                    "x jumps between an SA and its policies (pane 4 or 5), or from a packet to its SA (pane 7)",
                    true,
                );
                return;
            }
        };
        let Some(&first) = targets.first() else {
            self.say(format!("no {} {}", what[0], what[2]), true);
            return;
        };
        self.select_row(to, first, live);
        self.say(
            format!(
                "{} {} {}{}",
                targets.len(),
                what[usize::from(targets.len() > 1)],
                what[2],
                if targets.len() > 1 {
                    " (all listed in its detail: enter)"
                } else {
                    ""
                }
            ),
            false,
        );
    }

    /// `x` on a packet row: the SA it belongs to, found by the key the record holds.
    fn jump_to_packet_sa(&mut self, row: usize, live: &Live) {
        let Some(r) = self.packets.get(row as u64) else {
            return;
        };
        let Some(sa) = r.sa.clone() else {
            let why = if r.decoded.is_esp() {
                "no SA of this node has this packet's SPI and destination"
            } else {
                "not an ESP packet: it belongs to no SA"
            };
            return self.say(why, true);
        };
        match live
            .state
            .xfrm_states
            .iter()
            .position(|s| SaKey::of(s) == sa.key)
        {
            Some(i) => {
                self.select_row(Pane::Sas, i, live);
                self.say(format!("the packet's SA: {sa}"), false);
            }
            None => self.say(format!("the packet's SA {sa} is gone from the node"), true),
        }
    }
}

fn link_names(live: &Live) -> Vec<String> {
    live.state.links.iter().map(|l| l.name.clone()).collect()
}

/// `:trace SRC DST [--proto P] [--sport N] [--dport N] [--mark M] [--iif IF]`: the CLI's
/// own arguments, so the two never disagree.
fn parse_trace(words: &[&str]) -> Result<Flow, String> {
    use clap::Parser;
    #[derive(Parser)]
    #[command(name = ":trace", no_binary_name = true, disable_help_flag = true)]
    struct Line {
        #[command(flatten)]
        args: crate::cmd::trace::TraceArgs,
    }
    let line = Line::try_parse_from(words).map_err(|e| {
        let text = e.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        format!(
            "{first} — :trace SRC DST [--proto tcp|udp|icmp] [--dport N] [--sport N] [--mark M]"
        )
    })?;
    if line.args.follow.is_some() || !line.args.states.is_empty() || line.args.json {
        return Err(
            ":trace follows by itself; --follow, --state and --json are for the command line"
                .into(),
        );
    }
    line.args.flow().map_err(|e| format!("{e:#}"))
}
