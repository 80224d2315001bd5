use super::{Mark, Prefix, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Traffic selector of an SA or policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    pub src: Prefix,
    pub dst: Prefix,
    /// IP protocol number; None = any.
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub dev: Option<String>,
}

/// An algorithm with its key. `icv_bits` for AEAD, `trunc_bits` for auth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlgInfo {
    pub name: String,
    pub key_bits: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icv_bits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunc_bits: Option<u32>,
    pub key: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encap {
    #[serde(rename = "type")]
    pub kind: String,
    pub sport: u16,
    pub dport: u16,
    pub oa: Option<String>,
}

/// Current lifetime use: how much went through, and when it was added / last used (unix s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifetime {
    pub bytes: u64,
    pub packets: u64,
    pub add_time: u64,
    pub use_time: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmSaStats {
    pub replay_window: u32,
    pub replay: u32,
    pub integrity_failed: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmState {
    pub src: String,
    pub dst: String,
    pub proto: String,
    pub spi: u32,
    pub reqid: u32,
    pub mode: String,
    pub flags: Vec<String>,
    pub replay_window: u32,
    pub esn: bool,
    pub seq: u32,
    pub oseq: u32,
    pub mark: Option<Mark>,
    pub output_mark: Option<Mark>,
    pub if_id: Option<u32>,
    pub aead: Option<AlgInfo>,
    pub enc: Option<AlgInfo>,
    pub auth: Option<AlgInfo>,
    pub encap: Option<Encap>,
    pub selector: Selector,
    pub lifetime: Lifetime,
    pub stats: XfrmSaStats,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub src: String,
    pub dst: String,
    pub proto: String,
    pub spi: u32,
    pub reqid: u32,
    pub mode: String,
    /// "required" or "use" (optional template).
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmPolicy {
    pub dir: String,
    pub priority: u32,
    pub action: String,
    pub index: u32,
    pub selector: Selector,
    pub mark: Option<Mark>,
    pub if_id: Option<u32>,
    pub templates: Vec<Template>,
    pub lifetime: Lifetime,
}

/// /proc/net/xfrm_stat, every counter by the kernel's own name, in the kernel's order.
pub type XfrmStats = Vec<(String, u64)>;

/// SAD/SPD sizes as the kernel reports them (XFRM_MSG_GETSADINFO / GETSPDINFO).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmCounts {
    pub sad: Option<u32>,
    pub spd: BTreeMap<String, u32>,
}
