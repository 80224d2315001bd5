//! Following one flow: the path the kernel would choose (pure functions of NodeStates).

pub mod cmd;
pub mod fib;
pub mod live;
pub mod netfilter;
pub mod nftables;
pub mod path;
pub mod xfrm;
