//! XFRM SAs and policies as the kernel holds them. The kernel's small enumerations (policy
//! direction and action, mode, protocol, template level) are enums that serialise to the names
//! `ip xfrm` prints, so the JSON is the same as when they were strings.

use super::{Mark, Prefix, Secret};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

kernel_enum!(
    /// Which packets a policy applies to (XFRM_POLICY_IN/OUT/FWD).
    PolicyDir {
        In = "in",
        Out = "out",
        Fwd = "fwd",
    }
);

kernel_enum!(
    /// What a policy does with the packets it selects.
    PolicyAction {
        /// Transform (or pass) them as the templates say.
        Allow = "allow",
        /// Drop them: XfrmOutPolBlock / XfrmInPolBlock.
        Block = "block",
    }
);

kernel_enum!(
    /// XFRM_MODE_*: how an SA wraps packets.
    XfrmMode {
        Transport = "transport",
        Tunnel = "tunnel",
        RouteOptimization = "ro",
        InTrigger = "in_trigger",
        Beet = "beet",
    }
);

kernel_enum!(
    /// The IPsec protocol of an SA or template (the IP protocol number: ESP 50, AH 51,
    /// IPComp 108). Numbers without a name (Mobile IPv6's 43, 60; "any" 255) print as numbers.
    XfrmProto {
        Esp = "esp",
        Ah = "ah",
        Comp = "comp",
    }
);

impl XfrmProto {
    pub fn from_number(n: u8) -> XfrmProto {
        match n {
            50 => XfrmProto::Esp,
            51 => XfrmProto::Ah,
            108 => XfrmProto::Comp,
            n => XfrmProto::Other(n),
        }
    }
}

/// Whether a template must be satisfied (`required`) or may be skipped (`use`, optional):
/// only a required template makes the kernel drop a packet that arrived without that transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateLevel {
    Required,
    Use,
}

impl fmt::Display for TemplateLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TemplateLevel::Required => "required",
            TemplateLevel::Use => "use",
        })
    }
}

/// The fields of a packet an XFRM selector looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectorKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// None: the packet has no ports (or they are not known).
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

/// What is known of the device a selector's `dev` is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorDev<'a> {
    /// The device of the lookup (the output device for out, the input one for in/fwd).
    Known(Option<&'a str>),
    /// Not known (a capture sees the packet, not the flow lookup): `dev` is not checked.
    Unknown,
}

/// Traffic selector of an SA or policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    pub src: Prefix,
    pub dst: Prefix,
    /// IP protocol number; None = any.
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub dev: Option<String>,
}

impl Selector {
    /// `10.0.1.0/24 → 10.0.2.0/24 proto tcp dport 80 dev eth0`, each address printed by `addr`
    /// (a view adds Kubernetes names there; `Display` prints them as they are).
    pub fn text(&self, addr: impl Fn(&str) -> String) -> String {
        let mut out = format!(
            "{} → {}",
            addr(&self.src.to_string()),
            addr(&self.dst.to_string())
        );
        if let Some(p) = self.proto {
            out.push_str(&format!(" proto {}", super::kernel_names::ip_proto(p)));
        }
        if let Some(p) = self.sport {
            out.push_str(&format!(" sport {p}"));
        }
        if let Some(p) = self.dport {
            out.push_str(&format!(" dport {p}"));
        }
        if let Some(d) = &self.dev {
            out.push_str(&format!(" dev {d}"));
        }
        out
    }

    /// Does this selector cover a packet (xfrm_selector_match)? Families must agree; an absent
    /// protocol or port matches any, a present one must be equal.
    pub fn matches(&self, k: &SelectorKey, dev: SelectorDev<'_>) -> bool {
        self.src.family() == super::Family::of(&k.src)
            && self.src.contains(&k.src)
            && self.dst.contains(&k.dst)
            && self.proto.is_none_or(|p| p == k.proto)
            && self.sport.is_none_or(|p| k.sport == Some(p))
            && self.dport.is_none_or(|p| k.dport == Some(p))
            && match dev {
                SelectorDev::Known(d) => self.dev.as_deref().is_none_or(|s| d == Some(s)),
                SelectorDev::Unknown => true,
            }
    }
}

/// An algorithm with its key. `icv_bits` for AEAD, `trunc_bits` for auth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlgInfo {
    pub name: String,
    pub key_bits: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icv_bits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunc_bits: Option<u32>,
    pub key: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encap {
    #[serde(rename = "type")]
    pub kind: String,
    pub sport: u16,
    pub dport: u16,
    pub oa: Option<String>,
}

/// Current lifetime use: how much went through, and when it was added / last used (unix s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifetime {
    pub bytes: u64,
    pub packets: u64,
    pub add_time: u64,
    pub use_time: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmSaStats {
    pub replay_window: u32,
    pub replay: u32,
    pub integrity_failed: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmState {
    pub src: String,
    pub dst: String,
    pub proto: XfrmProto,
    pub spi: u32,
    pub reqid: u32,
    pub mode: XfrmMode,
    pub flags: Vec<String>,
    pub replay_window: u32,
    pub esn: bool,
    pub seq: u32,
    pub oseq: u32,
    pub mark: Option<Mark>,
    pub output_mark: Option<Mark>,
    pub if_id: Option<u32>,
    pub aead: Option<AlgInfo>,
    pub enc: Option<AlgInfo>,
    pub auth: Option<AlgInfo>,
    pub encap: Option<Encap>,
    pub selector: Selector,
    pub lifetime: Lifetime,
    pub stats: XfrmSaStats,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub src: String,
    pub dst: String,
    pub proto: XfrmProto,
    pub spi: u32,
    pub reqid: u32,
    pub mode: XfrmMode,
    pub level: TemplateLevel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmPolicy {
    pub dir: PolicyDir,
    pub priority: u32,
    pub action: PolicyAction,
    pub index: u32,
    pub selector: Selector,
    pub mark: Option<Mark>,
    pub if_id: Option<u32>,
    pub templates: Vec<Template>,
    pub lifetime: Lifetime,
}

/// /proc/net/xfrm_stat, every counter by the kernel's own name, in the kernel's order.
pub type XfrmStats = Vec<(String, u64)>;

/// Every xfrm_stat counter counts a failure: any rise is worth a look. (A fact of the kernel's
/// counters, like which link and SA counters add up to trouble in `model::event`.)
pub fn rise_is_trouble(name: &str) -> bool {
    name.starts_with("Xfrm")
}

/// SAD/SPD sizes as the kernel reports them (XFRM_MSG_GETSADINFO / GETSPDINFO).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmCounts {
    pub sad: Option<u32>,
    pub spd: BTreeMap<String, u32>,
}

impl XfrmState {
    /// `rfc4106(gcm(aes)) 160b icv 128`, `cbc(aes) 128b + hmac(sha256) 256b`: names and key
    /// lengths, never the key.
    pub fn algorithms(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &self.aead {
            parts.push(format!(
                "{} {}b icv {}",
                a.name,
                a.key_bits,
                a.icv_bits.unwrap_or(0)
            ));
        }
        if let Some(a) = &self.enc {
            parts.push(format!("{} {}b", a.name, a.key_bits));
        }
        if let Some(a) = &self.auth {
            parts.push(format!("{} {}b", a.name, a.key_bits));
        }
        parts.join(" + ")
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_serialise_to_ip_xfrm_names_and_back() {
        let j = serde_json::to_string(&(
            PolicyDir::Fwd,
            PolicyAction::Block,
            XfrmMode::RouteOptimization,
            XfrmProto::Esp,
            TemplateLevel::Use,
        ))
        .unwrap();
        assert_eq!(j, r#"["fwd","block","ro","esp","use"]"#);
        // A number without a name stays that number, both ways (Mobile IPv6's routing header).
        let p = XfrmProto::from_number(43);
        assert_eq!(serde_json::to_string(&p).unwrap(), r#""43""#);
        assert_eq!(serde_json::from_str::<XfrmProto>(r#""43""#).unwrap(), p);
        assert_eq!(
            serde_json::from_str::<XfrmMode>(r#""beet""#).unwrap(),
            XfrmMode::Beet
        );
        assert!(serde_json::from_str::<PolicyDir>(r#""sideways""#).is_err());
        assert!(PolicyDir::Out == "out" && PolicyDir::Other(7) == "7" && PolicyDir::In != "fwd");
    }

    fn sel(src: &str, dst: &str) -> Selector {
        let p = |s: &str| {
            let (a, l) = s.split_once('/').unwrap();
            Prefix::new(a.parse().unwrap(), l.parse().unwrap())
        };
        Selector {
            src: p(src),
            dst: p(dst),
            proto: None,
            sport: None,
            dport: None,
            dev: None,
        }
    }

    fn key(src: &str, dst: &str, proto: u8, ports: Option<(u16, u16)>) -> SelectorKey {
        SelectorKey {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            sport: ports.map(|p| p.0),
            dport: ports.map(|p| p.1),
        }
    }

    #[test]
    fn one_selector_matcher_for_trace_and_capture() {
        let any = SelectorDev::Unknown;
        let s = sel("10.0.1.0/24", "10.0.0.0/24");
        assert!(s.matches(&key("10.0.1.52", "10.0.0.249", 1, None), any));
        assert!(!s.matches(&key("10.0.2.1", "10.0.0.249", 1, None), any));
        // A v4 selector never covers v6 (the catch-all 0.0.0.0/0 included), and back.
        let v4all = sel("0.0.0.0/0", "0.0.0.0/0");
        assert!(!v4all.matches(&key("fd00::1", "fd00::2", 58, None), any));
        let v6 = sel("fd00:10:1::/64", "fd00:10::/64");
        assert!(v6.matches(&key("fd00:10:1::5", "fd00:10::9", 58, None), any));
        // Protocol and ports: absent = any; present = equal; a port selector needs ports.
        let mut udp = s.clone();
        (udp.proto, udp.dport) = (Some(17), Some(4500));
        assert!(udp.matches(&key("10.0.1.5", "10.0.0.5", 17, Some((4500, 4500))), any));
        assert!(!udp.matches(&key("10.0.1.5", "10.0.0.5", 17, Some((4500, 53))), any));
        assert!(!udp.matches(&key("10.0.1.5", "10.0.0.5", 17, None), any));
        assert!(!udp.matches(&key("10.0.1.5", "10.0.0.5", 6, Some((4500, 4500))), any));
        // dev: checked when the lookup's device is known, ignored when it is not.
        let mut dev = s.clone();
        dev.dev = Some("ipsec0".into());
        let k = key("10.0.1.52", "10.0.0.249", 1, None);
        assert!(dev.matches(&k, SelectorDev::Known(Some("ipsec0"))));
        assert!(!dev.matches(&k, SelectorDev::Known(Some("eth0"))));
        assert!(!dev.matches(&k, SelectorDev::Known(None)));
        assert!(dev.matches(&k, any));
    }
}
