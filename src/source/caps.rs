//! Which capabilities the process has, so a missing right is named instead of
//! surfacing as a bare EPERM.

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_ADMIN: u32 = 21;

pub fn cap_name(cap: u32) -> &'static str {
    match cap {
        CAP_NET_ADMIN => "CAP_NET_ADMIN",
        CAP_NET_RAW => "CAP_NET_RAW",
        CAP_SYS_ADMIN => "CAP_SYS_ADMIN",
        _ => "CAP_?",
    }
}

/// The effective capability set from /proc/self/status (CapEff, hex).
pub fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

pub fn has(cap: u32) -> bool {
    effective().is_some_and(|set| set & (1 << cap) != 0)
}

/// How to get a capability back, for every way people run us.
pub fn how_to_fix(cap: u32) -> String {
    format!(
        "run as root (sudo), or grant {name} (setcap / docker run --cap-add {short} / \
         `kubectl debug node/X --profile=sysadmin`, or --privileged)",
        name = cap_name(cap),
        short = cap_name(cap).trim_start_matches("CAP_"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_effective_set() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n";
        let set = parse_cap_eff(status).unwrap();
        assert_eq!(set & (1 << CAP_NET_ADMIN), 1 << CAP_NET_ADMIN);
        assert_eq!(set & (1 << CAP_NET_RAW), 0);
    }
}
