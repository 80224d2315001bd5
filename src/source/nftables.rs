//! Native nftables rule sets (kube-proxy's nftables mode, any `nft` rule set), read-only with
//! `nft -j list ruleset` and kept as nft's own JSON expressions; each rule also gets the text
//! `nft list` would show, for the trace to name it. Tables iptables-nft manages (`ip nat`,
//! `ip filter`, ...) are left to `iptables-nft-save`, which states them as iptables rules.

use crate::model::nft_text::stmt;
use crate::model::{NftChain, NftRule, NftSet, NftTable};
use serde_json::Value;

const IPTABLES_TABLES: [&str; 5] = ["filter", "nat", "mangle", "raw", "security"];

/// Ok(empty) when nft is absent and nothing says native rules exist; Err when nft failed.
pub fn read() -> Result<Vec<NftTable>, String> {
    match super::netfilter::run_tool("nft", &["-j", "list", "ruleset"]) {
        Ok(o) if o.status.success() => parse(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => Err(format!(
            "nft -j list ruleset failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        // No nft anywhere: a node without nft userspace may still have native tables, but
        // kube-proxy's nftables mode ships nft; say it on the trace only if asked (warning).
        Err(e) => Err(e),
    }
}

pub fn parse(json: &str) -> Result<Vec<NftTable>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("nft -j output: {e}"))?;
    let items = v["nftables"]
        .as_array()
        .ok_or("nft -j output has no \"nftables\" array")?;
    let mut tables: Vec<NftTable> = Vec::new();
    let key = |o: &Value| {
        (
            o["family"].as_str().unwrap_or("").to_string(),
            o["table"].as_str().unwrap_or("").to_string(),
        )
    };
    for item in items {
        if let Some(t) = item.get("table") {
            let family = t["family"].as_str().unwrap_or("").to_string();
            let name = t["name"].as_str().unwrap_or("").to_string();
            if matches!(family.as_str(), "ip" | "ip6") && IPTABLES_TABLES.contains(&name.as_str()) {
                continue;
            }
            tables.push(NftTable {
                family,
                name,
                chains: vec![],
                sets: vec![],
            });
        } else if let Some(c) = item.get("chain") {
            let (f, t) = key(c);
            if let Some(tab) = tables.iter_mut().find(|x| x.family == f && x.name == t) {
                tab.chains.push(NftChain {
                    name: c["name"].as_str().unwrap_or("").to_string(),
                    hook: c["hook"].as_str().map(str::to_string),
                    prio: prio(&c["prio"]),
                    kind: c["type"].as_str().map(str::to_string),
                    policy: c["policy"].as_str().map(str::to_string),
                    rules: vec![],
                });
            }
        } else if let Some((s, map)) = item
            .get("set")
            .map(|s| (s, false))
            .or(item.get("map").map(|m| (m, true)))
        {
            let (f, t) = key(s);
            if let Some(tab) = tables.iter_mut().find(|x| x.family == f && x.name == t) {
                tab.sets.push(NftSet {
                    name: s["name"].as_str().unwrap_or("").to_string(),
                    map,
                    elements: s["elem"].as_array().cloned().unwrap_or_default(),
                });
            }
        } else if let Some(r) = item.get("rule") {
            let (f, t) = key(r);
            let chain = r["chain"].as_str().unwrap_or("");
            if let Some(ch) = tables
                .iter_mut()
                .find(|x| x.family == f && x.name == t)
                .and_then(|tab| tab.chains.iter_mut().find(|c| c.name == chain))
            {
                let expr = r["expr"].as_array().cloned().unwrap_or_default();
                ch.rules.push(NftRule {
                    handle: r["handle"].as_u64().unwrap_or(0),
                    text: expr.iter().map(stmt).collect::<Vec<_>>().join(" "),
                    expr,
                });
            }
        }
    }
    Ok(tables)
}

/// Priorities are numbers in JSON, or names in some nft versions.
fn prio(v: &Value) -> i32 {
    if let Some(n) = v.as_i64() {
        return n as i32;
    }
    match v.as_str().unwrap_or("") {
        "raw" => -300,
        "mangle" => -150,
        "dstnat" => -100,
        "filter" => 0,
        "security" => 50,
        "srcnat" => 100,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tables_chains_sets_and_rule_text() {
        let json = r#"{"nftables":[{"metainfo":{"version":"1.0.6"}},
{"table":{"family":"ip","name":"nat","handle":1}},
{"table":{"family":"ip","name":"kube-proxy","handle":2}},
{"chain":{"family":"ip","table":"kube-proxy","name":"nat-prerouting","handle":1,"type":"nat","hook":"prerouting","prio":-100,"policy":"accept"}},
{"chain":{"family":"ip","table":"kube-proxy","name":"services","handle":2}},
{"map":{"family":"ip","name":"service-ips","table":"kube-proxy","type":["ipv4_addr","inet_proto","inet_service"],"handle":3,"map":"verdict","elem":[[{"concat":["10.96.0.1","tcp",443]},{"goto":{"target":"service-X"}}]]}},
{"rule":{"family":"ip","table":"kube-proxy","chain":"nat-prerouting","handle":4,"expr":[{"jump":{"target":"services"}}]}},
{"rule":{"family":"ip","table":"kube-proxy","chain":"services","handle":5,"expr":[{"vmap":{"key":{"concat":[{"payload":{"protocol":"ip","field":"daddr"}},{"meta":{"key":"l4proto"}},{"payload":{"protocol":"th","field":"dport"}}]},"data":"@service-ips"}}]}}
]}"#;
        let t = parse(json).unwrap();
        assert_eq!(
            t.len(),
            1,
            "ip nat is iptables-nft's, read by iptables-nft-save"
        );
        assert_eq!(t[0].name, "kube-proxy");
        assert_eq!(t[0].chains[0].hook.as_deref(), Some("prerouting"));
        assert_eq!(t[0].chains[0].prio, -100);
        assert_eq!(t[0].chains[0].rules[0].text, "jump services");
        assert_eq!(
            t[0].chains[1].rules[0].text,
            "ip daddr . meta l4proto . th dport vmap @service-ips"
        );
        assert!(t[0].sets[0].map);
        assert_eq!(t[0].sets[0].elements.len(), 1);
    }
}
