//! Plain data: what a node's network state is, independent of where it was read from.
//! No I/O here; sources fill it, views read it.

mod addr;
pub mod event;
#[doc(hidden)]
/// Test support (the `fixtures` feature, on only for tests and benches).
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
#[macro_use]
mod kernel_enum;
pub mod kernel_names;
mod link;
pub mod names;
mod netfilter;
pub(crate) mod nft_text;
mod node;
mod route;
mod rule;
mod secret;
mod xfrm;

pub use addr::{Family, Mark, Prefix};
pub use link::{
    AddrFlag, Ipv4XfrmConf, Ipv6XfrmConf, Link, LinkAddress, LinkFlag, LinkKind, LinkRef,
    LinkStats, OperState, Peer, Tunnel, XfrmDevConf,
};
pub use names::Names;
pub use netfilter::{
    Conntrack, IpSet, IpvsReal, IpvsService, Netfilter, NfCond, NfMatch, NfPolicy, NfRule,
    NfTarget, NftChain, NftRule, NftSet, NftTable, RecentList, Side, backend_is_ipv6,
};
pub use node::{NetnsInfo, NodeInfo, NodeState};
pub use route::{NextHop, Route, RouteKind, RouteProtocol, Scope, TableRef};
pub use rule::{Refusal, Rule, RuleAction};
pub use secret::{Secret, reveal_secrets};
pub use xfrm::{
    AlgInfo, Encap, Lifetime, PolicyAction, PolicyDir, Selector, SelectorDev, SelectorKey,
    Template, TemplateLevel, XfrmCounts, XfrmMode, XfrmPolicy, XfrmProto, XfrmSaStats, XfrmState,
    XfrmStats, rise_is_trouble,
};
