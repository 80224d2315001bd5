use super::{Family, LinkRef, Prefix};
use serde::Serialize;

/// A routing table by number, with its name where rt_tables (or Cilium's conventions) know one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRef {
    pub id: u32,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub family: Family,
    pub table: TableRef,
    #[serde(rename = "type")]
    pub kind: String,
    /// `None` is the default route (prefix length 0).
    #[serde(serialize_with = "dst_or_default")]
    pub dst: Option<Prefix>,
    pub src: Option<Prefix>,
    pub gateway: Option<String>,
    pub dev: Option<LinkRef>,
    pub prefsrc: Option<String>,
    pub protocol: String,
    pub scope: String,
    pub metric: Option<u32>,
    pub mtu: Option<u32>,
    pub mtu_locked: bool,
    pub tos: u8,
    /// Multipath next hops (gateway, dev); empty for single-path routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<NextHop>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextHop {
    pub gateway: Option<String>,
    pub dev: Option<LinkRef>,
    pub weight: u16,
}

fn dst_or_default<S: serde::Serializer>(dst: &Option<Prefix>, s: S) -> Result<S::Ok, S::Error> {
    match dst {
        Some(p) => s.collect_str(p),
        None => s.serialize_str("default"),
    }
}
