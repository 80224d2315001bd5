//! A hand-built NodeState shaped like the seed's kind worker (Cilium 1.13 IPsec, native
//! routing): for snapshot tests of every view and for docs. Not read from any kernel.

use super::*;

fn pfx(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').expect("prefix");
    Prefix::new(a.parse().expect("ip"), l.parse().expect("len"))
}

fn table(id: u32, name: Option<&str>) -> TableRef {
    TableRef {
        id,
        name: name.map(str::to_string),
    }
}

fn dev(index: u32, name: &str) -> Option<LinkRef> {
    Some(LinkRef {
        index,
        name: Some(name.into()),
    })
}

fn link(
    index: u32,
    name: &str,
    kind: Option<&str>,
    peer: Option<Peer>,
    addrs: &[(&str, u8, &str)],
) -> Link {
    Link {
        index,
        name: name.into(),
        kind: kind.map(LinkKind::from),
        flags: vec![
            "BROADCAST".into(),
            "MULTICAST".into(),
            "UP".into(),
            "LOWER_UP".into(),
        ],
        mtu: Some(1500),
        mac: Some(format!("02:42:ac:12:00:{index:02x}")),
        master: None,
        qdisc: Some("noqueue".into()),
        oper_state: OperState::Up,
        peer,
        addresses: addrs
            .iter()
            .map(|(a, l, scope)| LinkAddress {
                family: Family::of(&a.parse().expect("ip")),
                address: a.to_string(),
                prefix_len: *l,
                scope: (*scope).into(),
                label: None,
                flags: vec![],
            })
            .collect(),
        stats: LinkStats {
            rx_bytes: 1000 * u64::from(index),
            rx_packets: 10 * u64::from(index),
            ..Default::default()
        },
        tunnel: None,
        xfrm_conf: Default::default(),
    }
}

fn route(
    t: TableRef,
    kind: &str,
    dst: Option<&str>,
    gw: Option<&str>,
    d: Option<LinkRef>,
    proto: &str,
    scope: &str,
) -> Route {
    Route {
        family: Family::V4,
        table: t,
        kind: kind.into(),
        dst: dst.map(pfx),
        src: None,
        gateway: gw.map(str::to_string),
        dev: d,
        prefsrc: None,
        protocol: proto.into(),
        scope: scope.into(),
        metric: None,
        mtu: None,
        mtu_locked: false,
        tos: 0,
        nexthops: vec![],
    }
}

fn rule(priority: u32, fwmark: Option<(u32, u32)>, t: TableRef) -> Rule {
    Rule {
        family: Family::V4,
        priority,
        src: None,
        dst: None,
        iif: None,
        oif: None,
        fwmark: fwmark.map(|(value, mask)| Mark { value, mask }),
        table: Some(t),
        action: "lookup".into(),
        goto: None,
        invert: false,
        tos: 0,
    }
}

/// The seed's test key (a test fixture, not a secret of any real cluster).
pub const SEED_KEY: [u8; 20] = [
    0xd5, 0x28, 0xe7, 0x6e, 0x15, 0xde, 0xd4, 0xe1, 0xb4, 0x17, 0xea, 0x56, 0xf6, 0xc4, 0x63, 0x3b,
    0x79, 0x42, 0xb3, 0x44,
];

fn sa(src: &str, dst: &str, mark: (u32, u32), out: (u32, u32), packets: u64) -> XfrmState {
    XfrmState {
        src: src.into(),
        dst: dst.into(),
        proto: XfrmProto::Esp,
        spi: 3,
        reqid: 1,
        mode: XfrmMode::Tunnel,
        flags: vec![],
        replay_window: 0,
        esn: false,
        seq: 0,
        oseq: packets as u32,
        mark: Some(Mark {
            value: mark.0,
            mask: mark.1,
        }),
        output_mark: Some(Mark {
            value: out.0,
            mask: out.1,
        }),
        if_id: None,
        aead: Some(AlgInfo {
            name: "rfc4106(gcm(aes))".into(),
            key_bits: 160,
            icv_bits: Some(128),
            trunc_bits: None,
            key: Secret::new(SEED_KEY.to_vec()),
        }),
        enc: None,
        auth: None,
        encap: None,
        selector: Selector {
            src: pfx("0.0.0.0/0"),
            dst: pfx("0.0.0.0/0"),
            proto: None,
            sport: None,
            dport: None,
            dev: None,
        },
        lifetime: Lifetime {
            bytes: packets * 104,
            packets,
            add_time: 1_720_000_000,
            use_time: 1_720_000_100,
        },
        stats: XfrmSaStats::default(),
    }
}

// One row of the seed's `ip x p`: flat arguments read like the table they copy.
#[allow(clippy::too_many_arguments)]
fn policy(
    dir: &str,
    priority: u32,
    src: &str,
    dst: &str,
    mark: (u32, u32),
    tsrc: &str,
    tdst: &str,
    spi: u32,
    level: &str,
) -> XfrmPolicy {
    XfrmPolicy {
        dir: dir.parse().expect("a policy direction"),
        priority,
        action: PolicyAction::Allow,
        index: priority * 8 + 1,
        selector: Selector {
            src: pfx(src),
            dst: pfx(dst),
            proto: None,
            sport: None,
            dport: None,
            dev: None,
        },
        mark: Some(Mark {
            value: mark.0,
            mask: mark.1,
        }),
        if_id: None,
        templates: vec![Template {
            src: tsrc.into(),
            dst: tdst.into(),
            proto: XfrmProto::Esp,
            spi,
            reqid: 1,
            mode: XfrmMode::Tunnel,
            level: if level == "use" {
                TemplateLevel::Use
            } else {
                TemplateLevel::Required
            },
        }],
        lifetime: Lifetime::default(),
    }
}

/// The seed's three nodes: (netns name, eth0 address, cilium_host router IP, pod CIDR).
pub const SEED_NODES: [(&str, &str, &str, &str); 3] = [
    ("control-plane", "172.18.0.2", "10.0.2.52", "10.0.2.0/24"),
    ("worker", "172.18.0.3", "10.0.1.138", "10.0.1.0/24"),
    ("worker2", "172.18.0.4", "10.0.0.40", "10.0.0.0/24"),
];

/// The seed's `cilium-ipsec-native-routing-worker` as `ip a`, `ip r`, `ip rule`, `ip x s`, `ip x p` show it.
pub fn seed_worker() -> NodeState {
    seed_node("worker")
}

/// One node of the seed's cluster (`control-plane`, `worker`, `worker2`), built the way the
/// seed shows the worker: Cilium 1.13 native routing with IPsec SPI 3.
pub fn seed_node(name: &str) -> NodeState {
    let (_, eth, router, cidr) = *SEED_NODES
        .iter()
        .find(|n| n.0 == name)
        .expect("a seed node");
    let others: Vec<_> = SEED_NODES.iter().filter(|n| n.0 != name).collect();
    let main = || table(254, Some("main"));
    let local = || table(255, Some("local"));
    let t200 = || table(200, None);
    let mut routes = vec![route(
        main(),
        "unicast",
        None,
        Some("172.18.0.1"),
        dev(7, "eth0"),
        "boot",
        "global",
    )];
    for o in &others {
        routes.push(route(
            main(),
            "unicast",
            Some(o.3),
            Some(o.1),
            dev(7, "eth0"),
            "boot",
            "global",
        ));
    }
    routes.push(Route {
        prefsrc: Some(router.into()),
        ..route(
            main(),
            "unicast",
            Some(cidr),
            Some(router),
            dev(3, "cilium_host"),
            "boot",
            "global",
        )
    });
    routes.push(route(
        main(),
        "unicast",
        Some(&format!("{router}/32")),
        None,
        dev(3, "cilium_host"),
        "boot",
        "link",
    ));
    routes.push(Route {
        prefsrc: Some(eth.into()),
        ..route(
            main(),
            "unicast",
            Some("172.18.0.0/16"),
            None,
            dev(7, "eth0"),
            "kernel",
            "link",
        )
    });
    for o in &others {
        routes.push(Route {
            mtu: Some(1500),
            ..route(
                t200(),
                "unicast",
                Some(o.3),
                None,
                dev(3, "cilium_host"),
                "boot",
                "global",
            )
        });
    }
    routes.push(route(
        t200(),
        "local",
        Some(cidr),
        None,
        dev(7, "eth0"),
        "50",
        "host",
    ));
    routes.push(route(
        local(),
        "local",
        Some(&format!("{router}/32")),
        None,
        dev(3, "cilium_host"),
        "kernel",
        "host",
    ));
    routes.push(route(
        local(),
        "local",
        Some(&format!("{eth}/32")),
        None,
        dev(7, "eth0"),
        "kernel",
        "host",
    ));

    let mut xfrm_states: Vec<XfrmState> = others
        .iter()
        .map(|o| {
            sa(
                router,
                o.2,
                (0x3e00, 0xff00),
                (0xe00, 0xf00),
                if o.0 == "worker2" { 42 } else { 0 },
            )
        })
        .collect();
    xfrm_states.push(sa("0.0.0.0", router, (0xd00, 0xf00), (0xd00, 0xf00), 40));
    let mut xfrm_policies: Vec<XfrmPolicy> = others
        .iter()
        .map(|o| {
            policy(
                "out",
                0,
                cidr,
                o.3,
                (0x3e00, 0xff00),
                router,
                o.2,
                3,
                "required",
            )
        })
        .collect();
    xfrm_policies.push(policy(
        "fwd",
        2975,
        "0.0.0.0/0",
        cidr,
        (0, 0xf00),
        "0.0.0.0",
        router,
        0,
        "use",
    ));
    xfrm_policies.push(policy(
        "in",
        0,
        "0.0.0.0/0",
        cidr,
        (0xd00, 0xf00),
        "0.0.0.0",
        router,
        0,
        "required",
    ));
    xfrm_policies.push(policy(
        "in",
        0,
        "0.0.0.0/0",
        cidr,
        (0x200, 0xf00),
        "0.0.0.0",
        router,
        0,
        "use",
    ));
    let host_no = eth.rsplit('.').next().unwrap_or("0");

    NodeState {
        node: NodeInfo {
            hostname: format!("cilium-ipsec-native-routing-{name}"),
            kernel: "6.1.0-lab".into(),
            netns: NetnsInfo {
                name: Some(name.into()),
                path: Some(format!("/run/netns/{name}")),
                pid: None,
            },
        },
        warnings: vec![],
        hidden: vec![],
        links: vec![
            link(
                2,
                "cilium_net",
                Some("veth"),
                Some(Peer {
                    index: 3,
                    name: Some("cilium_host".into()),
                    netns_id: None,
                }),
                &[],
            ),
            link(
                3,
                "cilium_host",
                Some("veth"),
                Some(Peer {
                    index: 2,
                    name: Some("cilium_net".into()),
                    netns_id: None,
                }),
                &[(router, 32, "link")],
            ),
            link(
                7,
                "eth0",
                Some("veth"),
                Some(Peer {
                    index: 8,
                    name: None,
                    netns_id: Some(0),
                }),
                &[
                    (eth, 16, "global"),
                    (&format!("fc00:f853:ccd:e793::{host_no}"), 64, "global"),
                ],
            ),
            link(
                10,
                "lxcda1dd0af135e",
                Some("veth"),
                Some(Peer {
                    index: 9,
                    name: None,
                    netns_id: Some(2),
                }),
                &[],
            ),
        ],
        routes,
        rules: vec![
            rule(1, Some((0xd00, 0xf00)), t200()),
            rule(1, Some((0xe00, 0xf00)), t200()),
            rule(9, Some((0x200, 0xf00)), table(2004, None)),
            rule(10, Some((0xa00, 0xf00)), table(2005, None)),
            rule(100, None, table(255, Some("local"))),
            rule(32766, None, main()),
            rule(32767, None, table(253, Some("default"))),
        ],
        xfrm_states,
        xfrm_policies,
        xfrm_stats: vec![
            ("XfrmInError".into(), 0),
            ("XfrmInNoStates".into(), 5),
            ("XfrmOutNoStates".into(), 0),
            ("XfrmInStateProtoError".into(), 0),
        ],
        xfrm_counts: XfrmCounts {
            sad: Some(3),
            spd: [
                ("in".to_string(), 2),
                ("out".to_string(), 2),
                ("fwd".to_string(), 1),
            ]
            .into(),
        },
    }
}
