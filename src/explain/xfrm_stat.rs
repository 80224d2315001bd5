//! What each /proc/net/xfrm_stat counter means (Documentation/networking/xfrm_proc.rst),
//! and whether a rise signals trouble.

/// One-line meaning of a counter; None for names this kernel added that we do not know.
pub fn meaning(name: &str) -> Option<&'static str> {
    Some(match name {
        "XfrmInError" => "inbound: all errors not matched by others",
        "XfrmInBufferError" => "inbound: no buffer left",
        "XfrmInHdrError" => "inbound: header error",
        "XfrmInNoStates" => "inbound: no SA found (wrong SPI, address or mark)",
        "XfrmInStateProtoError" => "inbound: transformation protocol error (e.g. bad key)",
        "XfrmInStateModeError" => "inbound: transformation mode error",
        "XfrmInStateSeqError" => "inbound: sequence error (out of replay window)",
        "XfrmInStateExpired" => "inbound: SA expired",
        "XfrmInStateMismatch" => "inbound: SA has mismatched option (e.g. UDP encap type)",
        "XfrmInStateInvalid" => "inbound: SA invalid",
        "XfrmInTmplMismatch" => "inbound: no matching template for states",
        "XfrmInNoPols" => "inbound: no policy found for states (e.g. missing in/fwd policy)",
        "XfrmInPolBlock" => "inbound: policy discards",
        "XfrmInPolError" => "inbound: policy error",
        "XfrmAcquireError" => "state not fully acquired before use",
        "XfrmFwdHdrError" => "forward routing of a packet not allowed",
        "XfrmOutError" => "outbound: all errors not matched by others",
        "XfrmOutBundleGenError" => "outbound: bundle generation error",
        "XfrmOutBundleCheckError" => "outbound: bundle check error",
        "XfrmOutNoStates" => "outbound: no SA found for the template (policy without SA)",
        "XfrmOutStateProtoError" => "outbound: transformation protocol error",
        "XfrmOutStateModeError" => "outbound: transformation mode error",
        "XfrmOutStateSeqError" => "outbound: sequence error (sequence number overflow)",
        "XfrmOutStateExpired" => "outbound: SA expired",
        "XfrmOutPolBlock" => "outbound: policy discards",
        "XfrmOutPolDead" => "outbound: policy is dead",
        "XfrmOutPolError" => "outbound: policy error",
        "XfrmOutStateInvalid" => "outbound: SA invalid (e.g. expired)",
        "XfrmInStateDirError" => "inbound: SA direction mismatch",
        "XfrmOutStateDirError" => "outbound: SA direction mismatch",
        "XfrmInIptfsError" => "inbound: IP-TFS error",
        "XfrmOutNoQueueSpace" => "outbound: no queue space",
        _ => return None,
    })
}

/// Which rises are trouble is a fact of the counters, kept with them in the model.
pub use crate::model::rise_is_trouble;

#[cfg(test)]
mod tests {
    #[test]
    fn known_counters_have_meanings() {
        assert!(super::meaning("XfrmInNoStates").unwrap().contains("no SA"));
        assert!(super::meaning("XfrmNewCounter2030").is_none());
    }
}
