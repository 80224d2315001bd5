//! hopscope: one live, read-only picture of a Kubernetes node's network state.
//!
//! Facts flow one way: `source` (kernel, procfs) → `model::NodeState` → `view` (text, JSON);
//! the layers and their import rules are in docs/architecture.md (held by `tests/layers.rs`).
//!
//! The library exists for the binary, the tests, the benches and the fuzz targets; nothing
//! here is a stable API for anyone else. What they use:
//! - the binary: `cli`, `cmd` (every command), `output`, `sandbox`, `tui::run_cli` (the TUI's
//!   start-up) and `kube::resolve` (`trace pod/…` arguments);
//! - tests and benches: `model` (and `model::fixtures`, the reference cluster, with the
//!   `fixtures` feature), `source` (dumps and the monitor in a test netns), `trace`, `doctor`,
//!   `decode`, `capture`, `keys`, `view`, `tui` (App, render, inputs), `record`, `kube`,
//!   `explain`;
//! - fuzz targets: what reads untrusted bytes: `decode`, `cmd::capture_file`, `kube::names`,
//!   `model` (state JSON), `record::{format, reader}`, `source::{netlink, monitor, procfs,
//!   rt_tables, context}`, `tui::{filter, keymap}` (config and filter lines).
//!
//! `input` and `manual` serve the command line only and are private.

pub mod capture;
pub mod cli;
pub mod cmd;
pub mod decode;
pub mod doctor;
pub mod explain;
pub(crate) mod input;
pub mod keys;
pub mod kube;
pub(crate) mod manual;
pub mod model;
pub mod output;
pub mod record;
pub mod sandbox;
pub mod source;
pub mod trace;
pub mod tui;
pub mod view;
