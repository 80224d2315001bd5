//! The Trace pane's data: the predicted path of one flow (`trace::path`) and, while the capture
//! runs on the path's devices, which hops saw it, with latencies, and which counters moved
//! since the trace began (`trace::live`). Pure: fed records and states by the runtime.

use crate::capture::analyze::{Decrypt, PacketRecord};
use crate::decode::packet::{Decoded, Direction};
use crate::model::{Names, NodeState};
use crate::trace::live::{self, Followed, Observation, counter_deltas};
use crate::trace::path::{End, Flow, Trace};
use crate::view::trace::{end_line, step_name};

pub const HEADERS: [&str; 7] = ["#", "STEP", "DEV", "WHAT", "DECIDED BY", "SEEN", "+MS"];

/// Observations kept per trace; more are counted, not kept (the answer is the same).
const KEEP_OBS: usize = 100_000;

#[derive(Debug)]
pub struct Traced {
    pub node: String,
    pub trace: Trace,
    /// The node as it was when the trace began: counters move from here.
    before: NodeState,
    obs: Vec<Observation>,
    pub obs_dropped: u64,
    pub followed: Followed,
    /// Devices of this node the flow should cross (captured on while following).
    pub devices: Vec<String>,
}

impl Traced {
    pub fn new(node: &str, trace: Trace, before: NodeState) -> Traced {
        let mut devices: Vec<String> = trace
            .hops
            .iter()
            .filter(|h| h.node == node && h.expect.is_some())
            .filter_map(|h| h.dev.clone())
            .collect();
        devices.sort();
        devices.dedup();
        let followed = live::follow(&trace, &[], vec![]);
        Traced {
            node: node.to_string(),
            trace,
            before,
            obs: vec![],
            obs_dropped: 0,
            followed,
            devices,
        }
    }

    /// A captured packet: kept if it is this flow's at some hop (by its addresses).
    pub fn observe(&mut self, r: &PacketRecord) {
        let Some(o) = Observation::of(&self.node, &r.iface, r.ts.as_secs_f64(), &r.decoded) else {
            return;
        };
        let ours = self
            .trace
            .hops
            .iter()
            .any(|h| h.expect.as_ref().is_some_and(|e| e.matches(&o.key)));
        if !ours {
            return;
        }
        if self.obs.len() < KEEP_OBS {
            self.obs.push(o);
        } else {
            self.obs_dropped += 1;
        }
    }

    /// Match what was seen against the prediction, and counters against the start.
    pub fn update(&mut self, now: &NodeState) {
        let deltas = counter_deltas(
            std::slice::from_ref(&self.before),
            std::slice::from_ref(now),
            std::slice::from_ref(&self.node),
        );
        self.followed = live::follow(&self.trace, &self.obs, deltas);
    }

    pub fn len(&self) -> usize {
        self.trace.hops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.trace.hops.is_empty()
    }

    /// A hop's cells; the addresses of what decided it are named from `names`.
    pub fn cells(&self, i: usize, names: &Names) -> Vec<String> {
        let h = &self.trace.hops[i];
        let seen = self.followed.hops.iter().find(|s| s.hop == i);
        vec![
            (i + 1).to_string(),
            step_name(h.step),
            h.dev.clone().unwrap_or_default(),
            names.annotate_words(&h.what),
            names.annotate_words(&h.decided_by),
            match seen {
                Some(s) if s.seen > 0 => format!("✓ {}", s.seen),
                Some(_) => "✗ 0".into(),
                None => String::new(),
            },
            seen.and_then(|s| s.ms_after_previous)
                .map(|ms| format!("{ms:.2}"))
                .unwrap_or_default(),
        ]
    }

    /// An observable hop where nothing was seen while later or earlier ones were.
    pub fn trouble(&self, i: usize) -> bool {
        let any_seen = self.followed.hops.iter().any(|s| s.seen > 0);
        any_seen && self.followed.hops.iter().any(|s| s.hop == i && s.seen == 0)
    }

    pub fn detail(&self, i: usize, names: &Names) -> Vec<(String, String)> {
        let h = &self.trace.hops[i];
        let mut out = vec![
            ("node".to_string(), h.node.clone()),
            ("step".into(), step_name(h.step)),
            ("device".into(), h.dev.clone().unwrap_or_else(|| "-".into())),
            ("what".into(), names.annotate_words(&h.what)),
            ("packet".into(), names.annotate_words(&h.packet)),
            ("decided by".into(), names.annotate_words(&h.decided_by)),
        ];
        for (n, d) in h.details.iter().enumerate() {
            out.push((
                if n == 0 { "details" } else { "" }.into(),
                names.annotate_words(d),
            ));
        }
        if let Some(e) = &h.expect {
            out.push((
                "capture expects".into(),
                format!(
                    "{} > {} proto {}{}",
                    e.src,
                    e.dst,
                    e.proto,
                    e.spi.map(|s| format!(" spi {s:#x}")).unwrap_or_default()
                ),
            ));
        }
        out
    }

    /// The pane's head: the flow, where it ends, what following it found; each line with
    /// whether it is bad news (a predicted stop, an observable hop missed, a trouble counter).
    pub fn summary(&self) -> Vec<(String, bool)> {
        let f = &self.trace.flow;
        let stopped = matches!(self.trace.end, End::Stopped { .. });
        let seen_any = self.followed.hops.iter().any(|h| h.seen > 0);
        // Packets seen, and then a hop missed or the predicted stop reached.
        let stops = seen_any && (stopped || self.followed.hops.iter().any(|h| h.seen == 0));
        let mut out = vec![
            (
                format!(
                    "flow {} → {} {}{} on {}",
                    f.src,
                    f.dst,
                    crate::model::kernel_names::ip_proto(f.proto),
                    match (f.sport, f.dport) {
                        (Some(s), Some(d)) => format!(" {s}→{d}"),
                        (None, Some(d)) => format!(" →{d}"),
                        _ => String::new(),
                    },
                    self.node
                ),
                false,
            ),
            (format!("predicted: {}", end_line(&self.trace.end)), stopped),
        ];
        let moved: Vec<String> = self
            .followed
            .counters
            .iter()
            .map(|c| {
                format!(
                    "{}{} +{}",
                    if c.trouble { "⚠ " } else { "" },
                    c.counter,
                    c.delta
                )
            })
            .collect();
        out.push((
            format!(
                "seen: {}{}",
                self.followed.verdict,
                if self.devices.is_empty() {
                    " (no device of this node to capture on)".to_string()
                } else {
                    format!(" — capturing on {}", self.devices.join(", "))
                }
            ),
            stops,
        ));
        if !moved.is_empty() {
            out.push((
                format!("counters moved: {}", moved.join(", ")),
                self.followed.counters.iter().any(|c| c.trouble),
            ));
        }
        out
    }
}

/// The flow a captured packet belongs to: for ESP, the packet inside when it was decrypted.
pub fn flow_of(r: &PacketRecord) -> Result<Flow, String> {
    let d: &Decoded = match &r.decrypt {
        Some(Decrypt::Ok { inner, .. }) => inner,
        _ if r.decoded.is_esp() => {
            return Err(
                "an ESP packet: turn decryption on (d) to follow the packet inside, or pick its plaintext"
                    .into(),
            );
        }
        _ => &r.decoded,
    };
    let (ip, key) = (d.ip.as_ref(), d.key());
    let (Some(ip), Some(key)) = (ip, key) else {
        return Err("not an IP packet: nothing to trace".into());
    };
    Ok(Flow {
        src: key.src,
        dst: key.dst,
        proto: key.proto,
        sport: key.ports.map(|p| p.0),
        dport: key.ports.map(|p| p.1),
        mark: None,
        // A packet that came in on an interface enters this node there.
        iif: (r.dir == Direction::In).then(|| r.iface.clone()),
        size: ip.total_len,
    })
}
