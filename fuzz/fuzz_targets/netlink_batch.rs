//! One recv()'s worth of a dump answer, as the kernel (or anything else on the socket) could
//! send it: the batch reader never panics, whether rtnetlink or XFRM messages are expected.
#![no_main]
use hopscope::source::netlink::{DumpReport, read_batch};
use libfuzzer_sys::fuzz_target;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_xfrm::XfrmMessage;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, buf)) = data.split_first() else {
        return;
    };
    let seq = u32::from(sel >> 2);
    let multipart = sel & 1 == 1;
    let mut report = DumpReport::default();
    if sel & 2 == 0 {
        let _ = read_batch::<RouteNetlinkMessage>(buf, seq, multipart, &mut report, &mut |_| {});
    } else {
        let _ = read_batch::<XfrmMessage>(buf, seq, multipart, &mut report, &mut |_| {});
    }
});
