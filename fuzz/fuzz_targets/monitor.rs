//! Multicast notifications as the monitor receives them, decoded and converted into events
//! (every attribute conversion into the model: links, addresses, routes, rules, SAs with
//! their keys, policies): never a panic, and applying them to a live state never panics.
#![no_main]
use hopscope::model::event::Live;
use hopscope::source::context::Context;
use hopscope::source::monitor::{decode, route_event, xfrm_event};
use libfuzzer_sys::fuzz_target;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_xfrm::XfrmMessage;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, buf)) = data.split_first() else {
        return;
    };
    let ctx = Context::new(Default::default());
    let events = if sel & 1 == 0 {
        decode::<RouteNetlinkMessage>(buf, |m, f| route_event(m, f, &ctx))
    } else {
        decode::<XfrmMessage>(buf, |m, _| xfrm_event(m, &ctx))
    };
    let mut live = Live::default();
    let now = std::time::Instant::now();
    for ev in events {
        live.apply(ev, now);
    }
});
