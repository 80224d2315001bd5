//! /proc/net/xfrm_stat: `Name<whitespace>value` per line, every counter the kernel prints.

use crate::model::XfrmStats;

pub fn parse_xfrm_stat(text: &str) -> XfrmStats {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            let value = it.next()?.parse().ok()?;
            Some((name.to_string(), value))
        })
        .collect()
}

/// Read xfrm_stat of the network namespace the *calling thread* is in
/// (/proc/self/net follows the thread-group leader, thread-self follows us).
pub fn read_xfrm_stat() -> std::io::Result<XfrmStats> {
    std::fs::read_to_string("/proc/thread-self/net/xfrm_stat").map(|t| parse_xfrm_stat(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_format_in_order() {
        let text = "XfrmInError             \t0\nXfrmInBufferError       \t0\nXfrmInNoStates          \t5\nXfrmOutPolBlock\t12\n";
        let s = parse_xfrm_stat(text);
        assert_eq!(s.len(), 4);
        assert_eq!(s[2], ("XfrmInNoStates".to_string(), 5));
        assert_eq!(s[3], ("XfrmOutPolBlock".to_string(), 12));
    }
}
