//! Following one flow: the path the kernel would choose (pure functions of NodeStates).

pub mod decision;
pub mod fib;
pub(crate) mod live;
pub mod netfilter;
mod nf_stages;
pub(crate) mod nftables;
pub mod path;
pub mod saddr6;
mod stages;
mod tunnel;
pub(crate) mod xfrm;
