//! Native nftables chains (kube-proxy's nftables mode and hand-written rule sets) run on a
//! packet, from nft's JSON expressions: payload/meta/ct/fib/numgen keys, sets and verdict
//! maps, mark and NAT statements. Anything else is an uncertainty on the decision.

use super::netfilter::{
    Flow, Hook, NfDecision, NfPacket, Node, Verdict, addr_type, decision, masquerade_addr,
    parse_nat_to, pick,
};
use crate::model::nft_text::{expr as text, verdict_text};
use crate::model::{NftChain, NftTable};
use serde_json::Value;
use std::net::IpAddr;

/// A value of the packet, or of a rule's right-hand side.
#[derive(Debug, Clone, PartialEq)]
enum V {
    N(u64),
    Ip(IpAddr),
    S(String),
    Cat(Vec<V>),
}

fn proto_num(s: &str) -> Option<u64> {
    Some(match s {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" => 58,
        "sctp" => 132,
        _ => return None,
    })
}

/// The packet's value for a key expression; Err = not evaluated (why).
fn key(node: &Node, p: &NfPacket, e: &Value) -> Result<V, String> {
    let o = e.as_object().and_then(|o| o.iter().next());
    let Some((k, v)) = o else {
        return Err(format!("`{}`", text(e)));
    };
    let l4 = matches!(p.proto, 6 | 17 | 132);
    Ok(match k.as_str() {
        "payload" => {
            let proto = v["protocol"].as_str().unwrap_or("");
            match (proto, v["field"].as_str().unwrap_or("")) {
                ("ip" | "ip6", "saddr") => V::Ip(p.src),
                ("ip" | "ip6", "daddr") => V::Ip(p.dst),
                ("ip", "protocol") | ("ip6", "nexthdr") => V::N(p.proto.into()),
                ("ip", "length") | ("ip6", "length") => V::N(p.size.into()),
                (pr @ ("th" | "tcp" | "udp" | "sctp"), f @ ("sport" | "dport")) => {
                    let want = proto_num(pr);
                    if want.is_some_and(|w| w != u64::from(p.proto)) || !l4 {
                        return Ok(V::S("<none>".into()));
                    }
                    let port = if f == "sport" { p.sport } else { p.dport };
                    match port {
                        Some(x) => V::N(x.into()),
                        None => {
                            return Err(format!(
                                "{pr} {f}: the trace has no port (pass --sport/--dport)"
                            ));
                        }
                    }
                }
                ("icmp", "type") if p.proto == 1 => V::S("echo-request".into()),
                _ => return Err(format!("`{}`", text(e))),
            }
        }
        "meta" => match v["key"].as_str().unwrap_or("") {
            "l4proto" => V::N(p.proto.into()),
            "protocol" => V::S(if p.dst.is_ipv4() { "ip" } else { "ip6" }.into()),
            "mark" => V::N(p.mark.into()),
            "iifname" | "iif" => V::S(p.iif.clone().unwrap_or_default()),
            "oifname" | "oif" => match &p.oif {
                Some(o) => V::S(o.clone()),
                None => return Err("oifname before the route is known".into()),
            },
            "nfproto" => V::S(if p.dst.is_ipv4() { "ipv4" } else { "ipv6" }.into()),
            "length" => V::N(p.size.into()),
            _ => return Err(format!("`{}`", text(e))),
        },
        "ct" => match v["key"].as_str().unwrap_or("") {
            "state" => V::S(p.ct.state.to_lowercase()),
            "mark" => V::N(p.ct.mark.into()),
            "direction" => V::S(
                if p.ct.entry.is_some_and(|(_, r)| r) {
                    "reply"
                } else {
                    "original"
                }
                .into(),
            ),
            _ => return Err(format!("`{}`", text(e))),
        },
        "fib" => {
            let flags: Vec<&str> = v["flags"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_else(|| v["flags"].as_str().into_iter().collect());
            if v["result"] != "type" || flags.iter().any(|f| *f == "iif" || *f == "oif") {
                return Err(format!("`{}`", text(e)));
            }
            let ip = if flags.contains(&"saddr") {
                p.src
            } else {
                p.dst
            };
            V::S(addr_type(node.state, &ip).to_lowercase())
        }
        "concat" => V::Cat(
            v.as_array()
                .map(|a| a.iter().map(|x| key(node, p, x)).collect::<Result<_, _>>())
                .unwrap_or(Ok(vec![]))?,
        ),
        "&" | "|" | "^" => {
            let a = v.as_array().ok_or("bad expression")?;
            let (V::N(x), Some(y)) = (key(node, p, &a[0])?, a.get(1).and_then(num)) else {
                return Err(format!("`{}`", text(e)));
            };
            V::N(match k.as_str() {
                "&" => x & y,
                "|" => x | y,
                _ => x ^ y,
            })
        }
        _ => return Err(format!("`{}`", text(e))),
    })
}

fn num(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        let s = v.as_str()?;
        s.strip_prefix("0x")
            .map_or(s.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
    })
}

/// A literal, read as the kind of value it is compared with.
fn lit(v: &Value, like: &V) -> Option<V> {
    Some(match (v, like) {
        (Value::Object(o), V::Cat(parts)) if o.contains_key("concat") => V::Cat(
            o["concat"]
                .as_array()?
                .iter()
                .zip(parts)
                .map(|(x, l)| lit(x, l))
                .collect::<Option<_>>()?,
        ),
        (_, V::N(_)) => match v.as_str().and_then(proto_num) {
            Some(n) => V::N(n),
            None => V::N(num(v)?),
        },
        (_, V::Ip(_)) => V::Ip(v.as_str()?.parse().ok()?),
        (Value::String(s), _) => V::S(s.clone()),
        (Value::Number(n), _) => V::N(n.as_u64()?),
        _ => return None,
    })
}

/// Does `have` match one element (literal, prefix, range, concat of those)? None = unknown.
fn elem_matches(have: &V, e: &Value) -> Option<bool> {
    if let Some(inner) = e.get("elem") {
        return elem_matches(have, &inner["val"]);
    }
    match (have, e) {
        (V::Ip(ip), Value::Object(o)) if o.contains_key("prefix") => {
            let pfx: crate::model::Prefix =
                format!("{}/{}", o["prefix"]["addr"].as_str()?, o["prefix"]["len"])
                    .parse()
                    .ok()?;
            Some(pfx.contains(ip))
        }
        (_, Value::Object(o)) if o.contains_key("range") => {
            let r = o["range"].as_array()?;
            let (a, z) = (lit(&r[0], have)?, lit(&r[1], have)?);
            Some(match (have, a, z) {
                (V::N(x), V::N(a), V::N(z)) => (a..=z).contains(x),
                (V::Ip(x), V::Ip(a), V::Ip(z)) => (a..=z).contains(x),
                _ => return None,
            })
        }
        (V::Cat(parts), Value::Object(o)) if o.contains_key("concat") => {
            let es = o["concat"].as_array()?;
            if es.len() != parts.len() {
                return Some(false);
            }
            for (h, e) in parts.iter().zip(es) {
                if !elem_matches(h, e)? {
                    return Some(false);
                }
            }
            Some(true)
        }
        (V::S(s), Value::String(x)) => Some(s == x || (x == "established" && s == "established")),
        _ => Some(lit(e, have)? == *have),
    }
}

/// The elements a right-hand side stands for: an anonymous set, a named `@set`, or one value.
fn elements<'a>(t: &'a NftTable, right: &'a Value) -> Result<Vec<&'a Value>, String> {
    if let Some(name) = right.as_str().and_then(|s| s.strip_prefix('@')) {
        return t
            .sets
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.elements.iter().collect())
            .ok_or(format!("set @{name} not in table {}", t.name));
    }
    if let Some(Value::Array(a)) = right.get("set") {
        return Ok(a.iter().collect());
    }
    Ok(vec![right])
}

fn matches(node: &Node, t: &NftTable, p: &NfPacket, m: &Value) -> Result<bool, String> {
    let have = key(node, p, &m["left"])?;
    let right = &m["right"];
    let op = m["op"].as_str().unwrap_or("==");
    let mut any = false;
    for e in elements(t, right)? {
        // A map's element is [key, value]: only the key is compared.
        let e = match e {
            Value::Array(kv) if kv.len() == 2 => &kv[0],
            e => e,
        };
        match (op, &have, elem_matches(&have, e)) {
            (_, _, Some(true)) if matches!(op, "==" | "in" | "!=") => any = true,
            ("<" | ">" | "<=" | ">=", V::N(x), _) => {
                let Some(V::N(y)) = lit(e, &have) else {
                    return Err(format!("`{}`", text(right)));
                };
                any |= match op {
                    "<" => *x < y,
                    ">" => *x > y,
                    "<=" => *x <= y,
                    _ => *x >= y,
                };
            }
            (_, _, None) => return Err(format!("`{} {op} {}`", text(&m["left"]), text(right))),
            _ => {}
        }
    }
    Ok(if op == "!=" { !any } else { any })
}

pub(super) fn run_base(
    node: &Node,
    hook: Hook,
    table: usize,
    chain: usize,
    p: &mut NfPacket,
    out: &mut Vec<NfDecision>,
) -> Option<Verdict> {
    let t = &node.nf.nft[table];
    let c = &t.chains[chain];
    let mut w = Walk { node, hook, t, out };
    match w.chain(c, p, 0) {
        Flow::Drop(decision, how) => return Some(Verdict::Drop { decision, how }),
        Flow::Accept => return None,
        Flow::Continue | Flow::Return => {}
    }
    if c.policy.as_deref() == Some("drop") {
        w.out.push(w.decision(
            c,
            "policy drop",
            "drop",
            "dropped by the chain's policy (no rule accepted it)".into(),
        ));
        return Some(Verdict::Drop {
            decision: w.out.len() - 1,
            how: format!("policy of {} {}", t.name, c.name),
        });
    }
    None
}

struct Walk<'a, 'b> {
    node: &'a Node<'a>,
    hook: Hook,
    t: &'a NftTable,
    out: &'b mut Vec<NfDecision>,
}

impl Walk<'_, '_> {
    fn decision(&self, c: &NftChain, rule: &str, target: &str, effect: String) -> NfDecision {
        let table = format!("{} {}", self.t.family, self.t.name);
        decision(self.hook, "nft", &table, &c.name, rule, target, effect)
    }

    fn push(&mut self, c: &NftChain, rule: &str, target: &str, effect: String) -> usize {
        let d = self.decision(c, rule, target, effect);
        self.out.push(d);
        self.out.len() - 1
    }

    fn chain(&mut self, c: &NftChain, p: &mut NfPacket, depth: usize) -> Flow {
        if depth > 64 {
            self.push(
                c,
                "",
                "",
                "chains nested more than 64 deep: stopped evaluating".into(),
            );
            return Flow::Continue;
        }
        'rules: for r in &c.rules {
            for s in &r.expr {
                let Some((k, v)) = s.as_object().and_then(|o| o.iter().next()) else {
                    continue;
                };
                match k.as_str() {
                    "match" => match matches(self.node, self.t, p, v) {
                        Ok(true) => {}
                        Ok(false) => continue 'rules,
                        Err(why) => {
                            let d =
                                self.push(c, &r.text, "", "not taken: assumed not to match".into());
                            self.out[d].uncertain = Some(format!("{why} is not evaluated"));
                            continue 'rules;
                        }
                    },
                    "counter" | "log" | "limit" | "quota" => {}
                    "vmap" => {
                        let f = self.vmap(c, &r.text, v, p, depth);
                        match f {
                            Some(Flow::Continue) | None => {}
                            Some(f) => return f,
                        }
                    }
                    _ => match self.statement(c, &r.text, k, v, p, depth) {
                        Flow::Continue => {}
                        f => return f,
                    },
                }
            }
        }
        Flow::Continue
    }

    /// `key vmap @map` / `numgen random mod N vmap { 0 : goto a, 1 : goto b }`.
    fn vmap(
        &mut self,
        c: &NftChain,
        rule: &str,
        v: &Value,
        p: &mut NfPacket,
        depth: usize,
    ) -> Option<Flow> {
        let data = &v["data"];
        let entries = match elements(self.t, data) {
            Ok(e) => e,
            Err(why) => {
                let d = self.push(c, rule, "vmap", "not evaluated".into());
                self.out[d].uncertain = Some(why);
                return None;
            }
        };
        let pairs: Vec<(&Value, &Value)> = entries
            .iter()
            .filter_map(|e| match e {
                Value::Array(kv) if kv.len() == 2 => Some((&kv[0], &kv[1])),
                _ => None,
            })
            .collect();
        if v["key"].get("numgen").is_some() {
            // kube-proxy's endpoint choice: list all, follow the conntrack entry's or the first.
            let dests: Vec<Option<(IpAddr, Option<u16>)>> =
                pairs.iter().map(|(_, vd)| self.dest_of(vd, 0)).collect();
            let entry = p.ct.entry.map(|(i, _)| &self.node.nf.conntrack[i]);
            let (i, why) = pick(&dests, entry);
            let n = pairs.len().max(1) as f64;
            let alts = pairs
                .iter()
                .zip(&dests)
                .map(|((_, vd), d)| {
                    format!(
                        "{} ({:.1}%){}",
                        verdict_text(vd),
                        100.0 / n,
                        d.map(|(a, p)| format!(
                            " → {a}{}",
                            p.map(|p| format!(":{p}")).unwrap_or_default()
                        ))
                        .unwrap_or_default()
                    )
                })
                .collect();
            let (_, vd) = *pairs.get(i)?;
            let d = self.push(
                c,
                rule,
                &verdict_text(vd),
                format!(
                    "random choice among {} endpoints: following {}, {why}",
                    pairs.len(),
                    verdict_text(vd)
                ),
            );
            self.out[d].alternatives = alts;
            return Some(self.verdict(c, rule, vd, p, depth, false));
        }
        let have = match key(self.node, p, &v["key"]) {
            Ok(h) => h,
            Err(why) => {
                let d = self.push(
                    c,
                    rule,
                    "vmap",
                    "not taken: the key is not evaluated".into(),
                );
                self.out[d].uncertain = Some(why);
                return None;
            }
        };
        for (k, vd) in pairs {
            match elem_matches(&have, k) {
                Some(true) => return Some(self.verdict(c, rule, vd, p, depth, true)),
                Some(false) => {}
                None => {
                    let d = self.push(c, rule, "vmap", "an element could not be compared".into());
                    self.out[d].uncertain = Some(format!("element `{}`", text(k)));
                }
            }
        }
        None
    }

    /// The DNAT destination a verdict leads to (following jumps), for random choices.
    fn dest_of(&self, vd: &Value, depth: usize) -> Option<(IpAddr, Option<u16>)> {
        let target = vd.get("goto").or(vd.get("jump"))?["target"].as_str()?;
        let ch = self.t.chains.iter().find(|c| c.name == target)?;
        ch.rules.iter().flat_map(|r| &r.expr).find_map(|s| {
            if let Some(d) = s.get("dnat") {
                let addr = text(&d["addr"]);
                let port = d.get("port").map(text);
                return parse_nat_to(&match port {
                    Some(p) => format!("{addr}:{p}"),
                    None => addr,
                });
            }
            if depth < 8 && (s.get("goto").is_some() || s.get("jump").is_some()) {
                return self.dest_of(s, depth + 1);
            }
            None
        })
    }

    fn verdict(
        &mut self,
        c: &NftChain,
        rule: &str,
        vd: &Value,
        p: &mut NfPacket,
        depth: usize,
        say: bool,
    ) -> Flow {
        match vd.as_object().and_then(|o| o.iter().next()) {
            Some((k, v)) => {
                if say && (k == "jump" || k == "goto") {
                    self.push(
                        c,
                        rule,
                        &verdict_text(vd),
                        format!("map entry: {}", verdict_text(vd)),
                    );
                    return self.statement(c, rule, k, v, p, depth);
                }
                self.statement(c, rule, k, v, p, depth)
            }
            None => Flow::Continue,
        }
    }

    fn statement(
        &mut self,
        c: &NftChain,
        rule: &str,
        k: &str,
        v: &Value,
        p: &mut NfPacket,
        depth: usize,
    ) -> Flow {
        match k {
            "accept" => {
                self.push(c, rule, "accept", format!("accepted by {}", c.name));
                Flow::Accept
            }
            "drop" => {
                let d = self.push(c, rule, "drop", "dropped".into());
                Flow::Drop(d, "drop".into())
            }
            "reject" => {
                let d = self.push(c, rule, "reject", "rejected".into());
                Flow::Drop(d, "reject".into())
            }
            "return" => Flow::Return,
            "jump" | "goto" => {
                let target = v["target"].as_str().unwrap_or("");
                let Some(ch) = self.t.chains.iter().find(|x| x.name == target) else {
                    let d = self.push(c, rule, k, format!("{k} {target}"));
                    self.out[d].uncertain = Some(format!("chain {target} not found"));
                    return Flow::Continue;
                };
                match (self.chain(ch, p, depth + 1), k) {
                    (Flow::Continue | Flow::Return, "jump") => Flow::Continue,
                    (Flow::Continue | Flow::Return, _) => Flow::Return,
                    (f, _) => f,
                }
            }
            "mangle" => self.mangle(c, rule, v, p),
            "dnat" | "snat" => {
                let addr = text(&v["addr"]);
                let to = match v.get("port") {
                    Some(port) => format!("{addr}:{}", text(port)),
                    None => addr,
                };
                let (effect, uncertain) = super::netfilter::nat_rule(k == "dnat", &to, p);
                let d = self.push(c, rule, k, effect);
                if uncertain.is_some() {
                    self.out[d].uncertain = uncertain;
                }
                Flow::Accept
            }
            "masquerade" => {
                self.masquerade(c, rule, p);
                Flow::Accept
            }
            "notrack" => {
                p.ct.state = "UNTRACKED".into();
                p.ct.looked_up = true;
                self.push(
                    c,
                    rule,
                    "notrack",
                    "not tracked: no conntrack entry, no NAT".into(),
                );
                Flow::Continue
            }
            other => {
                let d = self.push(
                    c,
                    rule,
                    other,
                    format!("statement {other} not modelled: assumed to let the packet continue"),
                );
                self.out[d].uncertain = Some(format!("`{other}` is not evaluated"));
                Flow::Continue
            }
        }
    }

    /// `meta mark set` / `ct mark set`: the new mark, when its value can be worked out.
    fn mangle(&mut self, c: &NftChain, rule: &str, v: &Value, p: &mut NfPacket) -> Flow {
        let what = v["key"]
            .get("meta")
            .or(v["key"].get("ct"))
            .map(|m| &m["key"]);
        let is_ct = v["key"].get("ct").is_some();
        if what.and_then(Value::as_str) != Some("mark") {
            let d = self.push(c, rule, "mangle", "not modelled".into());
            self.out[d].uncertain = Some(format!("`{}` is not evaluated", text(&v["key"])));
            return Flow::Continue;
        }
        let new = match key(self.node, p, &v["value"])
            .ok()
            .or_else(|| num(&v["value"]).map(V::N))
        {
            Some(V::N(n)) => n as u32,
            _ => {
                let d = self.push(c, rule, "mangle", "mark value not evaluated".into());
                self.out[d].uncertain = Some(format!("`{}`", text(&v["value"])));
                return Flow::Continue;
            }
        };
        if is_ct {
            let before = p.ct.mark;
            p.ct.mark = new;
            self.push(
                c,
                rule,
                "ct mark set",
                format!("connection mark {before:#x} → {new:#x}"),
            );
        } else {
            let before = p.mark;
            p.mark = new;
            self.push(
                c,
                rule,
                "meta mark set",
                format!("mark {before:#x} → {new:#x}"),
            );
        }
        Flow::Continue
    }

    /// `masquerade`: the source the kernel picks on the way out, or why it cannot.
    fn masquerade(&mut self, c: &NftChain, rule: &str, p: &mut NfPacket) {
        let dev = p.oif.clone().unwrap_or_default();
        match masquerade_addr(self.node.state, &dev, p.toward(), p.dst.is_ipv6()) {
            Some((a, how)) => {
                let was = p.src;
                p.src = a;
                let whose = super::netfilter::addr_owner(self.node.state, &a);
                let how = super::netfilter::chosen_how(&how);
                self.push(c, rule, "masquerade", format!("MASQUERADE {was} → {a} ({whose}, leaving by {dev}; source port chosen by the kernel{how})"));
            }
            None => {
                let d = self.push(
                    c,
                    rule,
                    "masquerade",
                    format!("MASQUERADE to an address of {dev}"),
                );
                self.out[d].uncertain = Some(format!("{dev} has no address to masquerade to"));
            }
        }
    }
}
