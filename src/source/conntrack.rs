//! Connection tracking entries from /proc/net/nf_conntrack (read-only; the netns of the
//! calling thread). Used by `trace` to show the entry a NATed flow belongs to.

use crate::model::Conntrack;

/// One line: `ipv4 2 tcp 6 118 TIME_WAIT src=… dst=… sport=… dport=… src=… … [ASSURED] mark=0 use=1`.
pub fn parse_line(line: &str) -> Option<Conntrack> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let proto = words.get(2)?.to_string();
    let mut orig = Vec::new();
    let mut reply = Vec::new();
    let mut state = None;
    let mut flags = Vec::new();
    let mut mark = 0;
    for w in &words[3..] {
        if let Some((k, v)) = w.split_once('=') {
            match k {
                "src" | "dst" | "sport" | "dport" | "type" | "code" | "id" => {
                    // The second src= starts the reply tuple.
                    let tuple = if k == "src" && !orig.is_empty() || !reply.is_empty() {
                        &mut reply
                    } else {
                        &mut orig
                    };
                    tuple.push((k.to_string(), v.to_string()));
                }
                "mark" => mark = v.parse().unwrap_or(0),
                _ => {}
            }
        } else if w.starts_with('[') {
            flags.push(w.trim_matches(|c| c == '[' || c == ']').to_string());
        } else if w.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            state = Some(w.to_string());
        }
    }
    let get =
        |t: &[(String, String)], k: &str| t.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    Some(Conntrack {
        proto,
        state,
        src: get(&orig, "src")?.parse().ok()?,
        dst: get(&orig, "dst")?.parse().ok()?,
        sport: get(&orig, "sport").and_then(|p| p.parse().ok()),
        dport: get(&orig, "dport").and_then(|p| p.parse().ok()),
        reply_src: get(&reply, "src")?.parse().ok()?,
        reply_dst: get(&reply, "dst")?.parse().ok()?,
        reply_sport: get(&reply, "sport").and_then(|p| p.parse().ok()),
        reply_dport: get(&reply, "dport").and_then(|p| p.parse().ok()),
        flags,
        mark,
        line: line.trim().to_string(),
    })
}

pub fn read() -> std::io::Result<Vec<Conntrack>> {
    let text = std::fs::read_to_string("/proc/thread-self/net/nf_conntrack")?;
    Ok(text.lines().filter_map(parse_line).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_nodeport_entry() {
        let line = "ipv4     2 tcp      6 118 TIME_WAIT src=10.0.1.52 dst=172.18.0.3 sport=45404 dport=32000 src=10.0.0.249 dst=172.18.0.3 sport=80 dport=50772 [ASSURED] mark=0 zone=0 use=2";
        let c = parse_line(line).unwrap();
        assert_eq!(c.proto, "tcp");
        assert_eq!(c.state.as_deref(), Some("TIME_WAIT"));
        assert_eq!(
            (c.src.to_string(), c.dst.to_string(), c.sport, c.dport),
            (
                "10.0.1.52".into(),
                "172.18.0.3".into(),
                Some(45404),
                Some(32000)
            )
        );
        assert_eq!(
            (c.reply_src.to_string(), c.reply_sport),
            ("10.0.0.249".into(), Some(80))
        );
        assert_eq!(c.flags, ["ASSURED"]);
        assert!(c.is_dnat());
    }

    #[test]
    fn icmp_entry_without_ports() {
        let line = "ipv4     2 icmp     1 29 src=10.0.1.52 dst=10.0.0.249 type=8 code=0 id=87 src=10.0.0.249 dst=10.0.1.52 type=0 code=0 id=87 mark=0 zone=0 use=2";
        let c = parse_line(line).unwrap();
        assert_eq!(
            (c.proto.as_str(), c.state.as_deref(), c.sport),
            ("icmp", None, None)
        );
        assert!(!c.is_dnat());
    }
}
