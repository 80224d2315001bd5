//! Meaning: what a mark, a table or a counter stands for. Pure functions of model values.

pub mod cilium;
pub(crate) mod labels;
pub(crate) mod xfrm_dev;
pub(crate) mod xfrm_stat;
