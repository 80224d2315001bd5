//! Meaning: what a mark, a table or a counter stands for. Pure functions of model values.

pub mod cilium;
pub mod xfrm_stat;
