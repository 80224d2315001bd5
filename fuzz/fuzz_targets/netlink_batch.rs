//! One recv()'s worth of a dump answer, as the kernel (or anything else on the socket) could
//! send it: the batch reader never panics, whether rtnetlink, XFRM or generic netlink (the
//! IPVS family's services and real servers, nlctrl's family lookup) messages are expected.
#![no_main]
use hopscope::source::ipvs::{FamilyLookup, IpvsMsg};
use hopscope::source::netlink::{DumpReport, read_batch};
use libfuzzer_sys::fuzz_target;
use netlink_packet_generic::GenlMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_xfrm::XfrmMessage;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, buf)) = data.split_first() else {
        return;
    };
    // Selector: bit 0 multipart; bit 7 clear: bit 1 picks rtnetlink/XFRM, seq = sel >> 2;
    // bit 7 set: bit 1 picks IPVS/nlctrl, seq = bits 2-6.
    let multipart = sel & 1 == 1;
    let mut report = DumpReport::default();
    if sel & 0x80 == 0 {
        let seq = u32::from(sel >> 2);
        if sel & 2 == 0 {
            let _ =
                read_batch::<RouteNetlinkMessage>(buf, seq, multipart, &mut report, &mut |_| {});
        } else {
            let _ = read_batch::<XfrmMessage>(buf, seq, multipart, &mut report, &mut |_| {});
        }
        return;
    }
    let seq = u32::from((sel >> 2) & 0x1f);
    if sel & 2 == 0 {
        let _ = read_batch::<GenlMessage<IpvsMsg>>(buf, seq, multipart, &mut report, &mut |_| {});
    } else {
        let _ =
            read_batch::<GenlMessage<FamilyLookup>>(buf, seq, multipart, &mut report, &mut |_| {});
    }
});
