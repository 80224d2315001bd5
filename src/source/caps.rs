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

/// How to get a capability back, for every way people run us.
pub fn how_to_fix(cap: u32) -> String {
    format!(
        "run as root (sudo), or grant {name} (setcap / docker run --cap-add {short} / \
         `kubectl debug node/X --profile=sysadmin`, or --privileged)",
        name = cap_name(cap),
        short = cap_name(cap).trim_start_matches("CAP_"),
    )
}
