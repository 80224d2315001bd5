use super::{Family, LinkRef, Prefix};
use serde::{Deserialize, Serialize};

/// A routing table by number, with its name where rt_tables (or Cilium's conventions) know one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRef {
    pub id: u32,
    pub name: Option<String>,
}

/// Optional fields that are unset are left out of JSON (absent = null): a node with 100k
/// routes would otherwise print mostly nulls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub family: Family,
    pub table: TableRef,
    #[serde(rename = "type")]
    pub kind: String,
    /// `None` is the default route (prefix length 0).
    #[serde(serialize_with = "dst_or_default", deserialize_with = "default_or_dst")]
    pub dst: Option<Prefix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Prefix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    pub dev: Option<LinkRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefsrc: Option<String>,
    pub protocol: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mtu_locked: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tos: u8,
    /// Multipath next hops (gateway, dev); empty for single-path routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<NextHop>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextHop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

fn is_zero(v: &u8) -> bool {
    *v == 0
}

fn default_or_dst<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Prefix>, D::Error> {
    let s = String::deserialize(d)?;
    if s == "default" {
        Ok(None)
    } else {
        s.parse().map(Some).map_err(serde::de::Error::custom)
    }
}
