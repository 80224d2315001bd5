//! Views only read a `&NodeState`: the rows every output shares, plain text, JSON.

pub mod columns;
pub mod json;
pub mod packet;
pub mod text;
pub mod trace;
