//! hopscope: one live, read-only picture of a Kubernetes node's network state.
//!
//! Facts flow one way: `source` (kernel, procfs) → `model::NodeState` → `view` (text, JSON).
//! `explain` names what Cilium's marks and tables mean; it is read by views only.

pub mod capture;
pub mod cli;
pub mod cmd;
pub mod decode;
pub mod doctor;
pub mod explain;
pub mod keys;
pub mod kube;
pub mod model;
pub mod record;
pub mod sandbox;
pub mod source;
pub mod trace;
pub mod tui;
pub mod view;
