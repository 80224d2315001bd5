//! Bytes → meaning, pure and fuzzed: no I/O, no panics on any input.
//! `packet` reads frames into summaries; `esp` decrypts ESP with an SA's key.

pub mod esp;
pub mod packet;
