//! A recording loaded into memory, in the shape its users want it: per node, its states,
//! changes and samples in time order; the frames with their interface and any recorded
//! decryption; the names. A cut-off tail is dropped and said (`cut`).

use super::format::{Cut, End, Iface, Reader, Record};
use super::{Meta, RecSample, Stamp};
use crate::capture::analyze::Ts;
use crate::decode::esp::Opened;
use crate::decode::packet::LinkType;
use crate::model::event::Event;
use crate::model::{Names, Netfilter, NetnsInfo, NodeState};
use anyhow::{Context, Result};
use std::path::Path;

/// What happened to a node at one time.
#[derive(Debug, Clone)]
pub enum Item {
    /// A full state (the first dump, or a resync).
    State(Box<NodeState>),
    Event(Box<Event>),
    Sample(RecSample),
}

#[derive(Debug, Clone, Default)]
pub struct NodeTrack {
    pub label: String,
    pub items: Vec<(Stamp, Item)>,
    /// The node's iptables rules, as read when recording started.
    pub netfilter: Netfilter,
}

/// One recorded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Index into `Recording::ifaces`.
    pub iface: usize,
    pub ts: Ts,
    /// When it was captured, on the recording's clock.
    pub at: Stamp,
    pub len: u32,
    pub data: Vec<u8>,
    /// What decrypting it gave when it was recorded.
    pub opened: Option<Opened>,
}

#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub meta: Meta,
    pub nodes: Vec<NodeTrack>,
    pub ifaces: Vec<Iface>,
    pub frames: Vec<Frame>,
    pub names: Vec<(Stamp, Names)>,
    pub end: Option<End>,
    /// Where reading stopped early (cut off or damaged), if it did.
    pub cut: Option<Cut>,
    /// The file's name, for headers.
    pub name: String,
}

impl Recording {
    pub fn open(path: &Path) -> Result<Recording> {
        let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        let mut rec = Recording::read(std::io::BufReader::with_capacity(1 << 20, f))
            .with_context(|| format!("{}", path.display()))?;
        rec.name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(rec)
    }

    pub fn read(r: impl std::io::Read) -> Result<Recording> {
        let mut reader = Reader::new(r)?;
        let mut rec = Recording::default();
        let mut meta_seen = false;
        while let Some(r) = reader.next_record() {
            match r {
                Record::Meta(m) => {
                    rec.nodes = m
                        .nodes
                        .iter()
                        .map(|l| NodeTrack {
                            label: l.clone(),
                            ..Default::default()
                        })
                        .collect();
                    rec.meta = *m;
                    meta_seen = true;
                }
                Record::State { node, at, state } => rec.push(node, at, Item::State(state)),
                Record::Event { node, at, event } => rec.push(node, at, Item::Event(event)),
                Record::Sample { node, at, sample } => rec.push(node, at, Item::Sample(*sample)),
                Record::Netfilter {
                    node, netfilter, ..
                } => {
                    if let Some(n) = rec.nodes.get_mut(node as usize) {
                        n.netfilter = *netfilter;
                    }
                }
                Record::Iface(i) => rec.ifaces.push(i),
                Record::Frame(f) => {
                    let Some(iface) = rec.ifaces.iter().position(|i| i.id == f.iface) else {
                        continue; // a frame of an interface never announced: damage
                    };
                    let ts = Ts {
                        sec: f.sec,
                        nsec: f.nsec,
                    };
                    let wall = (f.sec.max(0) as u64)
                        .saturating_mul(1_000_000_000)
                        .saturating_add(u64::from(f.nsec));
                    rec.frames.push(Frame {
                        iface,
                        ts,
                        at: wall.saturating_sub(rec.meta.started_unix_ns),
                        len: f.len,
                        data: f.data,
                        opened: None,
                    });
                }
                Record::Opened(o) => {
                    if let Some(f) = rec.frames.last_mut() {
                        f.opened = Some(Opened {
                            next_header: o.next_header,
                            pad_len: 0,
                            payload: o.payload,
                        });
                    }
                }
                Record::Names { at, names } => rec.names.push((at, *names)),
                Record::End(e) => rec.end = Some(e),
                Record::Unknown(_) => {}
            }
        }
        anyhow::ensure!(
            meta_seen,
            "a hopscope recording without its first record (cut off at once?)"
        );
        rec.cut = reader.cut;
        Ok(rec)
    }

    fn push(&mut self, node: u16, at: Stamp, item: Item) {
        if let Some(n) = self.nodes.get_mut(node as usize) {
            n.items.push((at, item));
        }
    }

    /// How long it runs: to its end record, or to the last thing in it.
    pub fn duration(&self) -> Stamp {
        let last_item = self
            .nodes
            .iter()
            .filter_map(|n| n.items.last().map(|(t, _)| *t))
            .max()
            .unwrap_or(0);
        let last_frame = self.frames.iter().map(|f| f.at).max().unwrap_or(0);
        let end = self.end.as_ref().map_or(0, |e| e.at);
        end.max(last_item).max(last_frame)
    }

    /// The node called `name`: its label, or the netns name in it (`worker` for `netns
    /// worker`).
    pub fn node_index(&self, name: &str) -> Option<usize> {
        let hostname = |n: &NodeTrack| {
            n.items.iter().find_map(|(_, i)| match i {
                Item::State(s) => Some(s.node.hostname == name),
                _ => None,
            })
        };
        self.nodes.iter().position(|n| {
            n.label == name
                || NetnsInfo::name_in_label(&n.label) == Some(name)
                || hostname(n).unwrap_or(false)
        })
    }

    /// The node called `name` (the first without a name), or an error listing those there are.
    pub fn node_named(&self, name: Option<&str>) -> Result<usize> {
        anyhow::ensure!(!self.nodes.is_empty(), "{} holds no node", self.name);
        let Some(n) = name else { return Ok(0) };
        self.node_index(n).ok_or_else(|| {
            anyhow::anyhow!(
                "{n} is not in {} (it holds {})",
                self.name,
                self.nodes
                    .iter()
                    .map(|n| n.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// A node's state as it was `at` (every change up to then applied).
    pub fn state_at(&self, node: usize, at: Stamp) -> NodeState {
        let mut st = NodeState::default();
        let Some(n) = self.nodes.get(node) else {
            return st;
        };
        let mut loaded = false;
        for (t, item) in &n.items {
            if *t > at && loaded {
                break;
            }
            match item {
                Item::State(s) => {
                    st.apply(Event::Resync(s.clone()));
                    loaded = true;
                }
                Item::Event(e) => {
                    st.apply((**e).clone());
                }
                Item::Sample(s) => {
                    st.apply(Event::Sample(s.clone().at(std::time::Instant::now())));
                }
            }
        }
        st
    }

    /// Every node's state at the end of the recording (what `snapshot --from` and the doctor
    /// read).
    pub fn final_states(&self) -> Vec<NodeState> {
        (0..self.nodes.len())
            .map(|i| self.state_at(i, Stamp::MAX))
            .collect()
    }

    pub fn linktype(&self, iface: usize) -> LinkType {
        LinkType::from_dlt(i32::from(self.ifaces[iface].linktype))
    }
}

/// The nodes' states at the end of the recording in `path`: the one-function hook for commands
/// that take `--from FILE` (snapshot, the doctor).
pub fn node_states(path: &Path) -> Result<Vec<NodeState>> {
    Ok(Recording::open(path)?.final_states())
}

/// One node of the recording in `path` as it was at the end: the one named (its netns name or
/// label), or the first.
pub fn node_state(path: &Path, name: Option<&String>) -> Result<NodeState> {
    let rec = Recording::open(path)?;
    let i = rec.node_named(name.map(String::as_str))?;
    Ok(rec.state_at(i, Stamp::MAX))
}
/// The recorded nodes as a trace reads them: each node's state when recording started (what a
/// prediction is made on) with its iptables rules.
pub fn trace_nodes(rec: &Recording) -> Vec<crate::trace::path::Node> {
    (0..rec.nodes.len())
        .map(|i| {
            let state = rec.state_at(i, 0);
            crate::trace::path::Node {
                name: state.node.name(),
                state,
                netfilter: rec.nodes[i].netfilter.clone(),
            }
        })
        .collect()
}

/// `trace --follow` answered from the recording: its frames are the packets seen, its start and
/// end states the counters before and after.
pub fn follow_recorded(
    t: &crate::trace::path::Trace,
    rec: &Recording,
    nodes: &[crate::trace::path::Node],
) -> crate::trace::live::Followed {
    use crate::trace::live::{Observation, counter_deltas, follow};
    let obs: Vec<Observation> = rec
        .frames
        .iter()
        .filter_map(|f| {
            let iface = &rec.ifaces[f.iface];
            let node = nodes.get(usize::from(iface.node))?;
            let d = crate::decode::packet::decode(rec.linktype(f.iface), &f.data);
            Observation::of(&node.name, &iface.name, f.ts.as_secs_f64(), &d)
        })
        .collect();
    let before: Vec<NodeState> = nodes.iter().map(|n| n.state.clone()).collect();
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    follow(
        t,
        &obs,
        counter_deltas(&before, &rec.final_states(), &names),
    )
}
