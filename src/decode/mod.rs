//! Bytes → meaning, pure and fuzzed: no I/O, no panics on any input.
//! `packet` reads frames into summaries; `esp` decrypts ESP with an SA's key; `analyze`
//! turns a stream of decoded frames into packet records, flows and rates (for the capture
//! command and the TUI's packets pane alike).

pub mod analyze;
pub mod esp;
pub mod packet;
