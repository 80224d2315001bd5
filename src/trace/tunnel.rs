//! Tunnel devices in the path, as the kernel's drivers handle them: an xfrm interface sends
//! through XFRM with its if_id, a VTI with its okey as mark (and receives ESP with its ikey),
//! VXLAN wraps the frame in UDP that is routed again and unwrapped by the device listening on
//! the peer's port; ESP in UDP is only decapsulated on a port an IKE daemon's encap socket
//! holds. Each is read from the device's own attributes (`Link::tunnel`).

use super::decision::Decision;
use super::path::{At, Go, Packet, Step, Walk, ip_header_len, is_local, link};
use super::stages::xfrm_transform;
use super::xfrm::{XfrmKey, describe_sa};
use crate::model::Scope;
use crate::model::{NodeState, Tunnel};
use std::net::IpAddr;

/// Outer Ethernet + VXLAN + UDP header bytes around the tunnelled frame's IP packet.
const VXLAN_OVERHEAD: u32 = 14 + 8 + 8;

/// After egress on a tunnel device: the device's own transmit.
pub(super) fn tunnel_xmit(w: &mut Walk, at: &mut At) -> Go {
    let Some(dev) = at.routed.as_ref().and_then(|r| r.dev.clone()) else {
        return Go::On;
    };
    let ni = at.node;
    let Some((tun, conf)) =
        link(&w.nodes[ni].state, &dev).and_then(|l| Some((l.tunnel.clone()?, l.xfrm_conf)))
    else {
        return Go::On;
    };
    at.routed = None;
    match tun {
        Tunnel::Xfrm { if_id } => {
            w.hop(
                (ni, Step::Tunnel, Some(&dev)),
                &at.pkt,
                format!("xfrm interface {dev} looks it up in XFRM with if_id {if_id}"),
                format!("{dev}: xfrm if_id {if_id}"),
                vec![],
            );
            let key = XfrmKey {
                if_id,
                ..at.pkt.xfrm_key()
            };
            let stopped = format!(
                "no out policy with if_id {if_id} matches {} → {}: {dev} drops it",
                at.pkt.src, at.pkt.dst
            );
            xfrm_transform(w, at, Some(&dev), &key).unwrap_or_else(|| {
                let counter = format!("{dev} tx_errors");
                Go::End(w.stop(ni, &at.pkt, stopped, Some(&counter)))
            })
        }
        Tunnel::Vti {
            okey,
            local,
            remote,
            ..
        } => {
            w.hop(
                (ni, Step::Tunnel, Some(&dev)),
                &at.pkt,
                format!("VTI {dev} looks it up in XFRM with its okey {okey:#x} as mark"),
                format!("{dev}: vti okey {okey:#x}"),
                vec![],
            );
            // vti_xmit looks up on the route's dst, whose DST_NOXFRM (disable_xfrm on the VTI)
            // skips XFRM: no SA, and vti_state_check drops the packet.
            if conf.disable_xfrm() && at.pkt.dst.is_ipv4() {
                let reason = format!(
                    "disable_xfrm is on on VTI {dev}: its XFRM lookup is skipped, no SA encrypts the packet, and {dev} drops it"
                );
                let counter = format!("{dev} tx_carrier_errors");
                return Go::End(w.stop(ni, &at.pkt, reason, Some(&counter)));
            }
            let key = XfrmKey {
                mark: okey,
                ..at.pkt.xfrm_key()
            };
            let stopped = format!(
                "no out policy with mark {okey:#x} matches {} → {}: {dev} drops it",
                at.pkt.src, at.pkt.dst
            );
            let Some(go) = xfrm_transform(w, at, Some(&dev), &key) else {
                let counter = format!("{dev} tx_errors");
                return Go::End(w.stop(ni, &at.pkt, stopped, Some(&counter)));
            };
            // vti_state_check: the SA must run between the tunnel's own endpoints.
            if matches!(go, Go::Again) && at.generated_by_xfrm {
                let (s, d) = (at.pkt.src, at.pkt.dst);
                if remote.is_some_and(|r| r != d) || local.is_some_and(|l| l != s) {
                    let reason = format!(
                        "the SA runs {s} → {d}, not between {dev}'s endpoints {} → {}: {dev} drops it",
                        local.map_or("any".into(), |l| l.to_string()),
                        remote.map_or("any".into(), |r| r.to_string())
                    );
                    let counter = format!("{dev} tx_errors");
                    return Go::End(w.stop(ni, &at.pkt, reason, Some(&counter)));
                }
            }
            go
        }
        Tunnel::Vxlan {
            vni,
            port,
            local,
            remote,
            external,
        } => vxlan_encap(w, at, &dev, (vni, port, local, remote, external)),
    }
}

/// The VXLAN device wraps the packet in UDP to `port` on the remote; the UDP packet is the
/// node's own and is routed (and looked up in XFRM) again.
fn vxlan_encap(
    w: &mut Walk,
    at: &mut At,
    dev: &str,
    (vni, port, local, remote, external): (Option<u32>, u16, Option<IpAddr>, Option<IpAddr>, bool),
) -> Go {
    let ni = at.node;
    let pkt = at.pkt.clone();
    let (remote, assumed) = match remote {
        Some(r) => (Some(r), None),
        // collect_md: Cilium's program sets the remote per packet from its tunnel map, which
        // maps the destination's pod CIDR to the node owning it.
        None => (
            owner_address(w, ni, &pkt.dst),
            Some(format!(
                "assumed: {dev} is external (collect_md); the remote is the node owning {} (Cilium's tunnel map)",
                pkt.dst
            )),
        ),
    };
    let Some(remote) = remote else {
        let reason = format!(
            "{dev} is external (collect_md) and no given node owns {}: its remote is in Cilium's tunnel map",
            pkt.dst
        );
        return Go::End(w.stop(ni, &pkt, reason, None));
    };
    let st = &w.nodes[ni].state;
    let Some(src) = local.or_else(|| address_towards(st, &remote, dev)) else {
        let reason = format!("{dev} has no local address of {remote}'s family");
        return Go::End(w.stop(ni, &pkt, reason, None));
    };
    let vni_shown = vni.unwrap_or(0);
    let outer = Packet {
        src,
        dst: remote,
        proto: 17,
        sport: None, // a hash of the inner flow (udp_flow_src_port)
        dport: Some(port),
        mark: pkt.mark,
        size: ip_header_len(&remote) + VXLAN_OVERHEAD + pkt.size,
        esp: None,
        vxlan: Some((vni_shown, Box::new(pkt))),
    };
    let vni_text = match (vni, external) {
        (Some(v), _) => format!("vni {v}"),
        (None, _) => "vni set per packet (Cilium: the source's security identity)".into(),
    };
    w.hop(
        (ni, Step::Tunnel, Some(dev)),
        &outer,
        format!("{dev} encapsulates it in VXLAN: UDP {src} → {remote}:{port}, {vni_text}"),
        assumed
            .clone()
            .unwrap_or_else(|| format!("{dev}: vxlan remote {remote} dstport {port}")),
        vec![],
    );
    if let Some(a) = assumed {
        w.decided([Decision::Assumption { text: a }]);
    }
    at.pkt = outer;
    at.iif = None;
    at.generated_by_xfrm = false;
    at.output_done = false;
    at.ct = Default::default();
    at.if_id = 0;
    Go::Again
}

/// Local delivery of UDP that a tunnel takes: a VXLAN device's port (decapsulated, the frame
/// enters on that device), or ESP in UDP on a port no encap socket holds. None: not a tunnel's.
pub(super) fn udp_receive(w: &mut Walk, at: &mut At) -> Option<Go> {
    if at.pkt.proto != 17 {
        return None;
    }
    let ni = at.node;
    let st = &w.nodes[ni].state;
    let dport = at.pkt.dport?;
    if let Some((vni, inner)) = at.pkt.vxlan.clone() {
        let l = st.links.iter().find(|l| match &l.tunnel {
            Some(Tunnel::Vxlan {
                port,
                vni: v,
                local,
                external,
                ..
            }) => {
                *port == dport
                    && local.is_none_or(|a| a == at.pkt.dst)
                    && (*external || *v == Some(vni))
            }
            _ => false,
        })?;
        let dev = l.name.clone();
        w.hop(
            (ni, Step::Tunnel, Some(&dev)),
            &at.pkt,
            format!("{dev} takes UDP {dport} and decapsulates the VXLAN frame"),
            format!("{dev}: vxlan dstport {dport}"),
            vec![],
        );
        let mut p = *inner;
        p.mark = at.pkt.mark;
        w.hop(
            (ni, Step::Ingress, Some(&dev)),
            &p,
            format!("enters {} on {dev}", w.nodes[ni].name),
            String::new(),
            vec![],
        );
        at.pkt = p;
        at.iif = Some(dev);
        at.ct = Default::default();
        return Some(Go::Again);
    }
    let (spi, _) = at.pkt.esp.as_ref()?;
    // ESP in UDP is decapsulated only on a socket with UDP_ENCAP (an IKE daemon's); the
    // node's own SAs say which port that is.
    let dst = at.pkt.dst.to_string();
    let ports: Vec<u16> = st
        .xfrm_states
        .iter()
        .filter(|s| s.dst == dst)
        .filter_map(|s| s.encap.as_ref().map(|e| e.dport))
        .collect();
    if ports.is_empty() || ports.contains(&dport) {
        return None;
    }
    let ours = st
        .xfrm_states
        .iter()
        .find(|s| s.dst == dst && s.spi == *spi && s.encap.is_some())
        .or_else(|| {
            st.xfrm_states
                .iter()
                .find(|s| s.dst == dst && s.encap.is_some())
        })?;
    let e = ours.encap.as_ref()?;
    let reason = format!(
        "ESP in UDP to port {dport}, but this node's IKE socket is on {} ({} expects encap {} {} → {}): nothing decapsulates UDP {dport}, so it is plain UDP to a closed port",
        e.dport,
        describe_sa(ours),
        e.kind,
        e.sport,
        e.dport
    );
    let end = w.stop(ni, &at.pkt, reason, Some("UdpNoPorts"));
    w.decided([Decision::sa(ours)]);
    Some(Go::End(end))
}

/// The VTI that receives an ESP packet (vti_input's ip_tunnel_lookup among the devices that
/// are up: both endpoints, then the remote only, then the local only).
pub(super) struct VtiRx {
    pub dev: String,
    pub ikey: u32,
}

pub(super) fn vti_receiving(st: &NodeState, pkt: &Packet) -> Option<VtiRx> {
    if pkt.proto != 50 {
        return None;
    }
    // Only devices that are up (ip_tunnel_lookup): loading ip_vti leaves a down fallback
    // device `ip_vti0` with no endpoints in every netns.
    let up = |l: &&crate::model::Link| l.is_up();
    let vtis = st.links.iter().filter(up).filter_map(|l| match &l.tunnel {
        Some(Tunnel::Vti {
            ikey,
            local,
            remote,
            ..
        }) => Some((l.name.clone(), *ikey, *local, *remote)),
        _ => None,
    });
    let score = |(_, _, local, remote): &(String, u32, Option<IpAddr>, Option<IpAddr>)| {
        let l = local.map(|a| a == pkt.dst);
        let r = remote.map(|a| a == pkt.src);
        match (l, r) {
            (Some(false), _) | (_, Some(false)) => None,
            (Some(true), Some(true)) => Some(0),
            (_, Some(true)) => Some(1),
            (Some(true), None) => Some(2),
            (None, None) => Some(3),
        }
    };
    vtis.filter_map(|v| score(&v).map(|s| (s, v)))
        .min_by_key(|(s, _)| *s)
        .map(|(_, (dev, ikey, ..))| VtiRx { dev, ikey })
}

/// The xfrm interface with this if_id, where an SA bound to it delivers what it decrypts.
pub(super) fn xfrm_interface(st: &NodeState, if_id: u32) -> Option<String> {
    st.links
        .iter()
        .find(|l| l.tunnel == Some(Tunnel::Xfrm { if_id }))
        .map(|l| l.name.clone())
}

/// The address of the given node that owns `ip` (as a local address, or as its pod CIDR
/// routed via cilium_host), chosen on the device that node would reach us over.
fn owner_address(w: &Walk, from: usize, ip: &IpAddr) -> Option<IpAddr> {
    let owner = w.nodes.iter().enumerate().find(|(i, n)| {
        *i != from && (is_local(&n.state, ip) || super::stages::own_pod_cidr(&n.state, ip))
    })?;
    let here = &w.nodes[from].state;
    // An underlay address of the owner in a subnet this node is on.
    owner.1.state.links.iter().find_map(|l| {
        l.addresses.iter().find_map(|a| {
            let addr: IpAddr = a.address.parse().ok()?;
            let on_link = here.links.iter().any(|m| {
                m.tunnel.is_none()
                    && m.addresses.iter().any(|x| {
                        x.scope == Scope::Global && x.prefix().is_some_and(|p| p.contains(&addr))
                    })
            });
            (a.scope == Scope::Global && l.tunnel.is_none() && on_link && &addr != ip)
                .then_some(addr)
        })
    })
}

/// This node's address towards `remote`: one in a subnet holding it, else any global one of
/// its family, on a device other than the tunnel itself.
fn address_towards(st: &NodeState, remote: &IpAddr, tunnel_dev: &str) -> Option<IpAddr> {
    let addrs = || {
        st.links
            .iter()
            .filter(|l| l.name != tunnel_dev && l.name != "lo")
            .flat_map(|l| l.addresses.iter())
            .filter(|a| a.scope == Scope::Global)
    };
    addrs()
        .find(|a| a.prefix().is_some_and(|p| p.contains(remote)))
        .or_else(|| addrs().find(|a| a.family == crate::model::Family::of(remote)))
        .and_then(|a| a.address.parse().ok())
}
