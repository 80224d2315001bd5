//! Recordings: what one or more nodes did — their states, every netlink change as it came,
//! counter samples, captured frames, Kubernetes names — in one file (`hopscope record`), so the
//! whole of hopscope can be pointed at it later, elsewhere (`replay`, `demo`, `snapshot
//! --from`, `trace --from`). The format is in `format` and docs/record.md; `writer` records a
//! live node, `reader` loads a file, `replay` feeds the TUI from one; `bundle` packs a node's
//! state, findings and a short recording for a ticket.

pub mod bundle;
pub mod format;
pub mod reader;
pub mod replay;
pub mod writer;

use crate::model::event::{SaKey, Sample};
use crate::model::{Lifetime, LinkStats, XfrmSaStats, XfrmStats};
use serde::{Deserialize, Serialize};

/// Nanoseconds since the recording started (monotonic; wall time = `Meta::started` + it).
pub type Stamp = u64;

/// What the file is a recording of: written first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The hopscope that wrote it (`0.1.0 (commit …)`).
    pub hopscope: String,
    /// Wall clock at the start: nanoseconds since the Unix epoch.
    pub started_unix_ns: u64,
    /// The recording host.
    pub host: String,
    /// One entry per node (netns) recorded, in the order of `--netns`: its label.
    pub nodes: Vec<String>,
    /// Interfaces captured on (-i), and the capture filter.
    pub interfaces: Vec<String>,
    pub filter: Option<String>,
    /// Whether XFRM keys were written (`--show-keys`); without, they read back empty.
    pub show_keys: bool,
    /// The size limit in bytes the recorder stopped at.
    pub limit_bytes: u64,
    /// Counter sampling interval, ms.
    pub interval_ms: u64,
    /// A free text saying what was recorded (the demo's lab variant, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Meta {
    pub fn started(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(self.started_unix_ns)
    }
}

/// One counter sample as recorded (the live `Sample` without its monotonic instant).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecSample {
    pub links: Option<Vec<(u32, LinkStats)>>,
    pub sas: Option<Vec<(SaKey, Lifetime, XfrmSaStats)>>,
    pub xfrm_stat: Option<XfrmStats>,
}

impl RecSample {
    pub fn of(s: Sample) -> RecSample {
        RecSample {
            links: s.links,
            sas: s.sas,
            xfrm_stat: s.xfrm_stat,
        }
    }
    /// The live sample again, taken at `at`.
    pub fn at(self, at: std::time::Instant) -> Sample {
        Sample {
            at,
            links: self.links,
            sas: self.sas,
            xfrm_stat: self.xfrm_stat,
        }
    }
}
