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
//! `input` and `manual` serve the command line only and are private. Inside each public module,
//! only the submodules those users name are `pub`; the rest are `pub(crate)` (held by the
//! compiler: a test naming one does not build).

/// Live capture sessions and pcapng: the binary's commands; tests of capture on the host.
pub mod capture;
/// The command line's argument structs: the binary, and the completion/man tests.
pub mod cli;
/// Every command's code: the binary; tests and the `capture_file` fuzz target call some.
pub mod cmd;
/// Packet bytes to records (ESP opened): the capture, the TUI; fuzz targets and decode tests.
pub mod decode;
/// The doctor's judgement: `cmd::doctor`, the Health pane; the doctor tests and bench.
pub mod doctor;
/// Cilium's meaning of marks, tables and counters: views, trace and doctor; tests name node IDs.
pub mod explain;
pub(crate) mod input;
/// ESP keys from files: `capture -r`; the offline decryption tests.
pub mod keys;
/// Kubernetes names, resolve and the debug pod: the binary; the kube tests and fuzz target.
pub mod kube;
pub(crate) mod manual;
/// The node's state as plain data: every layer; tests, benches and fuzz targets build it.
pub mod model;
/// The output envelope and exit codes: the binary; the CLI output tests.
pub mod output;
/// Recordings (write, read, replay, bundle): `cmd::record`, the TUI's replay; tests, fuzz.
pub mod record;
/// Dropping privileges after start-up: the binary; the sandbox tests.
pub mod sandbox;
/// Reading the kernel (netlink dumps, the monitor, procfs, netfilter): commands; tests, fuzz.
pub mod source;
/// The hop-by-hop trace, pure over node states: commands and the TUI; trace tests.
pub mod trace;
/// The TUI: `tui::run_cli` for the binary; App, render and inputs for tests, benches, fuzz.
pub mod tui;
/// Text and JSON renderings: commands and the TUI; the snapshot tests.
pub mod view;
