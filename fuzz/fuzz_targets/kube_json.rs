//! Objects the names watch reads from the Kubernetes API (pods, services, nodes, as JSON):
//! anything the API server sends is refused or read, and the addresses and facts taken
//! from them never panic.
#![no_main]
use hopscope::kube::names::{node_facts, pod_ips, service_ips};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, json)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        0 => {
            if let Ok(p) = serde_json::from_slice::<Pod>(json) {
                let _ = pod_ips(&p);
            }
        }
        1 => {
            if let Ok(s) = serde_json::from_slice::<Service>(json) {
                let _ = service_ips(&s);
            }
        }
        _ => {
            if let Ok(n) = serde_json::from_slice::<Node>(json) {
                let _ = node_facts(&n);
            }
        }
    }
});
