//! Where a monitor-fed state differs from a fresh dump of the kernel: the check of every
//! overrun storm test (tests/monitor_sync.rs on the host, tests/lab_storm.rs for SAs on the
//! lab's ESP kernel), in one place so both compare the same facts.

use hopscope::model::NodeState;

/// What a fresh dump and the monitor-fed state must agree on: every object, without the
/// counters (links' statistics, policies' lifetimes), each kind sorted.
pub fn facts(st: &NodeState) -> Vec<(&'static str, Vec<String>)> {
    fn rows<T: serde::Serialize>(items: &[T], strip: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = items
            .iter()
            .map(|x| {
                let mut v = serde_json::to_value(x).unwrap();
                for k in strip {
                    v.as_object_mut().unwrap().remove(*k);
                }
                v.to_string()
            })
            .collect();
        out.sort();
        out
    }
    vec![
        ("links", rows(&st.links, &["stats", "addresses"])),
        (
            "addresses",
            rows(
                &st.links
                    .iter()
                    .flat_map(|l| l.addresses.iter().map(move |a| (l.index, a)))
                    .collect::<Vec<_>>(),
                &[],
            ),
        ),
        ("routes", rows(&st.routes, &[])),
        ("rules", rows(&st.rules, &[])),
        ("xfrm policies", rows(&st.xfrm_policies, &["lifetime"])),
        ("xfrm states", rows(&st.xfrm_states, &["lifetime", "stats"])),
    ]
}

/// Where `live` differs from the kernel: per kind, how many rows each side has and a few
/// rows only one side has.
pub fn differences(live: &NodeState, kernel: &NodeState) -> Vec<String> {
    let mut out = Vec::new();
    for ((what, shown), (_, real)) in facts(live).into_iter().zip(facts(kernel)) {
        if shown != real {
            let only = |a: &[String], b: &[String]| {
                a.iter()
                    .filter(|x| b.binary_search(x).is_err())
                    .take(2)
                    .map(|x| x.chars().take(300).collect::<String>())
                    .collect::<Vec<_>>()
            };
            out.push(format!(
                "{what}: shown {} kernel {}; only shown {:?}; only in the kernel {:?}",
                shown.len(),
                real.len(),
                only(&shown, &real),
                only(&real, &shown)
            ));
        }
    }
    out
}
