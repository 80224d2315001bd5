//! Meaning: what a mark, a table or a counter stands for. Pure functions of model values.

pub mod cilium;
pub mod labels;
pub mod xfrm_dev;
pub mod xfrm_stat;
