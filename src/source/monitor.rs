//! The live source: netlink multicast (what changed) plus a counter sampler (how much
//! went through), both inside the target netns, feeding one bounded channel of `Event`s.
//!
//! Read-only: the sockets only join multicast groups and send dump/get requests.
//!
//! - The monitor thread joins NETLINK_ROUTE (link, v4/v6 address, route, rule) and
//!   NETLINK_XFRM (SA, policy, expire) groups, *then* dumps everything once (so no change
//!   falls between the dump and the subscription) and sends it as `Event::Resync`. Each
//!   multicast message is converted by the same functions the dump uses (`rtnl`, `xfrm`).
//!   When the kernel overruns the socket (ENOBUFS) events were lost: it says so
//!   (`Event::ResyncNeeded`) and dumps again.
//! - The sampler thread re-reads link stats, SA lifetimes and /proc/net/xfrm_stat every
//!   interval and sends an `Event::Sample`.
//!
//! Changes are sent with back-pressure (a full queue makes the kernel overrun the socket,
//! which ends in a resync); samples are dropped when the queue is full, and counted.

use super::context::Context;
use super::netlink::NlSocket;
use super::{Target, caps, netns, procfs, rt_tables, rtnl, xfrm};
use crate::model::XfrmState;
use crate::model::event::{Event, SaKey, Sample};
use netlink_packet_core::{NLM_F_REPLACE, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_xfrm::policy::ModifyMessage as PolicyMsg;
use netlink_packet_xfrm::state::GetDumpMessage;
use netlink_packet_xfrm::{Address, XfrmAttrs, XfrmMessage};
use netlink_sys::Socket;
use netlink_sys::protocols::{NETLINK_ROUTE, NETLINK_XFRM};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// rtnetlink multicast groups (linux/rtnetlink.h, enum rtnetlink_groups).
pub const RTNLGRP_LINK: u32 = 1;
pub const RTNLGRP_IPV4_IFADDR: u32 = 5;
pub const RTNLGRP_IPV4_ROUTE: u32 = 7;
pub const RTNLGRP_IPV4_RULE: u32 = 8;
pub const RTNLGRP_IPV6_IFADDR: u32 = 9;
pub const RTNLGRP_IPV6_ROUTE: u32 = 11;
pub const RTNLGRP_IPV6_RULE: u32 = 19;
/// XFRM multicast groups (linux/xfrm.h, enum xfrm_nlgroups).
pub const XFRMNLGRP_EXPIRE: u32 = 2;
pub const XFRMNLGRP_SA: u32 = 3;
pub const XFRMNLGRP_POLICY: u32 = 4;

pub const ROUTE_GROUPS: [u32; 7] = [
    RTNLGRP_LINK,
    RTNLGRP_IPV4_IFADDR,
    RTNLGRP_IPV6_IFADDR,
    RTNLGRP_IPV4_ROUTE,
    RTNLGRP_IPV6_ROUTE,
    RTNLGRP_IPV4_RULE,
    RTNLGRP_IPV6_RULE,
];
pub const XFRM_GROUPS: [u32; 3] = [XFRMNLGRP_SA, XFRMNLGRP_POLICY, XFRMNLGRP_EXPIRE];

/// How long a thread waits on its sockets before looking at the stop flag.
const POLL_MS: i32 = 200;

#[derive(Debug, Clone)]
pub struct Options {
    /// Counter sampling interval.
    pub interval: Duration,
    /// Channel capacity (events).
    pub queue: usize,
    /// Receive buffer of the multicast sockets (tests shrink it to provoke ENOBUFS).
    pub rcvbuf: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: Duration::from_secs(1),
            queue: 8192,
            rcvbuf: 8 << 20,
        }
    }
}

/// A running live source. Dropping it stops its threads (within POLL_MS).
pub struct Monitor {
    rx: Receiver<Event>,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    pub target: Target,
    pub info: crate::model::NetnsInfo,
}

impl Monitor {
    /// Start following `target`. A netns that cannot be opened fails here, at once;
    /// everything later (rights, kernel support) arrives as events.
    pub fn start(target: &Target, opts: &Options) -> anyhow::Result<Monitor> {
        let opened = netns::open(target)?;
        let (info, id) = (opened.info, opened.file.as_ref().and_then(netns::identity));
        let (tx, rx) = sync_channel(opts.queue.max(16));
        let dropped = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let t = Ctx {
            target: target.clone(),
            id,
            tx,
            dropped: dropped.clone(),
            stop: stop.clone(),
        };
        let s = t.clone();
        let (interval, rcvbuf) = (opts.interval, opts.rcvbuf);
        std::thread::Builder::new()
            .name("hs-monitor".into())
            .spawn(move || t.in_netns("monitor", |c| c.monitor(rcvbuf)))?;
        std::thread::Builder::new()
            .name("hs-sampler".into())
            .spawn(move || s.in_netns("sampler", |c| c.sampler(interval)))?;
        Ok(Monitor {
            rx,
            dropped,
            stop,
            target: target.clone(),
            info,
        })
    }

    /// Whether the threads stopped by themselves (the netns followed is gone).
    pub fn ended(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Events waiting now, at most `max` (so one frame never waits on a flood).
    pub fn drain(&self, max: usize) -> Vec<Event> {
        self.rx.try_iter().take(max).collect()
    }

    /// Wait up to `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Samples dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct Ctx {
    target: Target,
    /// The netns followed, to notice when it is deleted (None: our own).
    id: Option<netns::NetnsId>,
    tx: SyncSender<Event>,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Send a change, waiting for room. False when nobody listens any more.
    fn send(&self, ev: Event) -> bool {
        self.tx.send(ev).is_ok()
    }

    fn in_netns(&self, what: &str, f: impl FnOnce(&Ctx) + Send) {
        let r = netns::open(&self.target).and_then(|o| netns::run_in(o.file.as_ref(), || f(self)));
        if let Err(e) = r {
            self.send(Event::SourceError(format!("{what}: {e:#}")));
        }
    }

    /// Read the state afresh and send it as a `Resync`; the context its events are named
    /// with comes back. Everything queued on the sockets is thrown away first: after an
    /// overrun the queue still holds changes from before the lost ones, and applied on top
    /// of the fresh dump they would undo what the dump shows (a route deleted later
    /// reappears, one added later goes). A change made while the dump runs is queued after
    /// the discard and applied after the dump: seen twice at worst, which converges.
    fn dump_afresh(&self, socks: &[Option<Socket>], buf: &mut [u8]) -> Option<Context> {
        for sock in socks.iter().flatten() {
            discard_queued(sock, buf);
        }
        match super::collect(&self.target) {
            Ok(st) => {
                let mut ctx = Context::new(rt_tables::load());
                ctx.set_links(&st.links);
                self.send(Event::Resync(Box::new(st))).then_some(ctx)
            }
            Err(e) => {
                self.send(Event::SourceError(format!("dump failed: {e:#}")));
                None
            }
        }
    }

    fn follow(&self, protocol: isize, rcvbuf: usize) -> Option<Socket> {
        let groups: &[u32] = if protocol == NETLINK_ROUTE {
            &ROUTE_GROUPS
        } else {
            &XFRM_GROUPS
        };
        match subscribe(protocol, groups, rcvbuf) {
            Ok(s) => Some(s),
            Err(e) => {
                self.send(Event::SourceError(if protocol == NETLINK_ROUTE {
                    format!(
                        "cannot follow link/address/route/rule changes ({e}); the view will not update"
                    )
                } else if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                    format!(
                        "CAP_NET_ADMIN missing: XFRM SA/policy changes are not followed live; {}",
                        caps::how_to_fix(caps::CAP_NET_ADMIN)
                    )
                } else {
                    format!("cannot follow XFRM changes ({e}); SAs and policies will not update")
                }));
                None
            }
        }
    }

    fn monitor(&self, rcvbuf: usize) {
        let socks = [
            self.follow(NETLINK_ROUTE, rcvbuf),
            self.follow(NETLINK_XFRM, rcvbuf),
        ];
        let mut buf = vec![0u8; 1 << 20];
        // Subscribed first, dumped second: no change falls between the two.
        let Some(mut ctx) = self.dump_afresh(&socks, &mut buf) else {
            return;
        };
        let mut fds: Vec<libc::pollfd> = socks
            .iter()
            .map(|s| libc::pollfd {
                fd: s.as_ref().map_or(-1, |s| s.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        while !self.stopped() {
            // SAFETY: fds is a valid array of pollfd for the call; a negative fd is ignored.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, POLL_MS) };
            if n <= 0 {
                continue;
            }
            let mut lost = None;
            for (i, sock) in socks.iter().enumerate() {
                let Some(sock) = sock else { continue };
                if fds[i].revents == 0 {
                    continue;
                }
                match self.read_changes(i == 0, sock, &mut buf, &mut ctx) {
                    Read::Changes => {}
                    Read::Lost(why) => lost = Some(why),
                    Read::NobodyListens => return,
                }
            }
            // Changes were lost: say so, then show the kernel's state again. If the storm
            // goes on and overruns us during the dump, the next read says so and we dump again.
            if let Some(reason) = lost {
                if !self.send(Event::ResyncNeeded { reason }) {
                    return;
                }
                match self.dump_afresh(&socks, &mut buf) {
                    Some(fresh) => ctx = fresh,
                    None => return,
                }
            }
        }
    }

    /// One recv() of change notifications, converted and sent.
    fn read_changes(&self, route: bool, sock: &Socket, buf: &mut [u8], ctx: &mut Context) -> Read {
        match sock.recv(&mut &mut buf[..], libc::MSG_DONTWAIT) {
            Ok(len) => {
                let events = if route {
                    decode(&buf[..len], |m, f| route_event(m, f, ctx))
                } else {
                    let events = decode(&buf[..len], |m, _| xfrm_event(m, ctx));
                    // New SAs carry their keys: not left in the buffer.
                    zeroize::Zeroize::zeroize(&mut buf[..len]);
                    events
                };
                let mut lost = None;
                for ev in events {
                    ctx.learn(&ev);
                    if let Event::ResyncNeeded { reason } = ev {
                        lost = Some(reason);
                    } else if !self.send(ev) {
                        return Read::NobodyListens;
                    }
                }
                lost.map_or(Read::Changes, Read::Lost)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Read::Lost(format!(
                "{} monitor overran (ENOBUFS, changes lost): resynced after overrun",
                if route { "netlink route" } else { "XFRM" }
            )),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                Read::Changes
            }
            Err(e) => {
                if !self.send(Event::SourceError(format!("netlink monitor: {e}"))) {
                    return Read::NobodyListens;
                }
                std::thread::sleep(Duration::from_millis(POLL_MS as u64));
                Read::Changes
            }
        }
    }

    fn sampler(&self, interval: Duration) {
        let mut route = NlSocket::open(NETLINK_ROUTE).ok();
        let mut xfrm = NlSocket::open(NETLINK_XFRM).ok();
        let mut next = Instant::now();
        while !self.stopped() {
            let now = Instant::now();
            if now < next {
                std::thread::sleep((next - now).min(Duration::from_millis(POLL_MS as u64)));
                continue;
            }
            next += interval;
            if next < now {
                next = now + interval; // fell behind (suspend): do not catch up in a burst
            }
            if let Some(why) = self.id.and_then(|id| netns::gone(&self.target, id)) {
                // Said once, and let go: our sockets would keep a deleted netns alive.
                let _ = self.tx.send(Event::SourceError(format!(
                    "netns GONE: {why}; what is shown is its last state and no longer changes"
                )));
                self.stop.store(true, Ordering::Relaxed);
                return;
            }
            let sample = Sample {
                at: Instant::now(),
                links: route.as_mut().and_then(|s| {
                    rtnl::dump_links(s)
                        .ok()
                        .map(|(ls, _)| ls.into_iter().map(|l| (l.index, l.stats)).collect())
                }),
                sas: xfrm.as_mut().and_then(|s| dump_sa_counters(s).ok()),
                xfrm_stat: procfs::read_xfrm_stat().ok(),
            };
            match self.tx.try_send(Event::Sample(sample)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

/// A socket in the calling thread's netns, joined to `groups`.
pub fn subscribe(protocol: isize, groups: &[u32], rcvbuf: usize) -> std::io::Result<Socket> {
    let mut s = Socket::new(protocol)?;
    s.bind_auto()?;
    // Bursts (a CNI setting up 1000 routes) must not overrun us at the first hiccup.
    let _ = s.set_rx_buf_sz(rcvbuf);
    for g in groups {
        s.add_membership(*g)?;
    }
    Ok(s)
}

/// What one read of a multicast socket came to.
enum Read {
    Changes,
    /// Changes were lost (overrun, flush): the state must be read again.
    Lost(String),
    NobodyListens,
}

/// Throw away what is queued on `sock`. What the kernel queued before an overrun fits in
/// the socket's receive buffer, so discarding that many bytes reaches past it even while a
/// storm keeps filling the queue; an empty queue ends it sooner.
fn discard_queued(sock: &Socket, buf: &mut [u8]) {
    let limit = rcvbuf_of(sock).max(buf.len());
    let mut discarded = 0;
    while discarded <= limit {
        match sock.recv(&mut &mut buf[..], libc::MSG_DONTWAIT) {
            Ok(len) => {
                // An SA carries its keys: not left in the buffer.
                zeroize::Zeroize::zeroize(&mut buf[..len]);
                discarded += len.max(1)
            }
            // Overrun again while discarding: all of it is older than the dump anyway.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The receive buffer the kernel gave `sock` (SO_RCVBUF; 0 when it cannot be read).
fn rcvbuf_of(sock: &Socket) -> usize {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid for the call and len holds v's size.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 { v.max(0) as usize } else { 0 }
}

fn dump_sa_counters(
    s: &mut NlSocket,
) -> Result<Vec<(SaKey, crate::model::Lifetime, crate::model::XfrmSaStats)>, super::netlink::NlError>
{
    let mut out = Vec::new();
    s.dump(XfrmMessage::GetDumpSa(GetDumpMessage::default()), |m| {
        if let XfrmMessage::AddSa(mut sa) = m {
            // Only the key and the counters are kept: no name is needed.
            let st: XfrmState = xfrm::state(&mut sa, |_| None);
            out.push((SaKey::of(&st), st.lifetime, st.stats));
        }
    })?;
    Ok(out)
}

/// Decode one recv()'s worth of multicast messages. A message that does not decode is
/// reported (the view may now be stale), never silently dropped.
pub fn decode<M: super::netlink::Family>(
    buf: &[u8],
    mut convert: impl FnMut(M, u16) -> Option<Event>,
) -> Vec<Event> {
    let mut out = Vec::new();
    let mut bad = 0usize;
    let mut first_err = None;
    for frame in super::netlink::messages(buf) {
        let bytes = match frame {
            Ok(bytes) => bytes,
            Err(len) => {
                bad += 1;
                first_err.get_or_insert_with(|| format!("bad netlink length {len}"));
                break;
            }
        };
        let flags = u16::from_ne_bytes(bytes[6..8].try_into().unwrap());
        match super::netlink::deserialize::<M>(bytes) {
            Ok(m) => {
                if let NetlinkPayload::InnerMessage(inner) = m.payload
                    && let Some(ev) = convert(inner, flags)
                {
                    out.push(ev);
                }
            }
            Err(e) => {
                bad += 1;
                first_err.get_or_insert(e);
            }
        }
    }
    if bad > 0 {
        out.push(Event::SourceError(format!(
            "{bad} change notification(s) could not be decoded ({}); the view may be stale until the next resync",
            first_err.unwrap_or_default()
        )));
    }
    out
}

/// One NETLINK_ROUTE notification as an event (the dump's converters, message by message).
pub fn route_event(m: RouteNetlinkMessage, flags: u16, ctx: &Context) -> Option<Event> {
    use RouteNetlinkMessage as R;
    Some(match m {
        R::NewLink(l) => Event::LinkNew(rtnl::links(&[l], &[]).pop()?),
        R::DelLink(l) => Event::LinkDel {
            index: l.header.index,
        },
        R::NewAddress(a) => Event::AddrNew {
            index: a.header.index,
            addr: rtnl::address(&a)?,
        },
        R::DelAddress(a) => Event::AddrDel {
            index: a.header.index,
            addr: rtnl::address(&a)?,
        },
        R::NewRoute(r) => Event::RouteNew {
            route: rtnl::route(&r, ctx)?,
            replace: flags & NLM_F_REPLACE != 0,
        },
        R::DelRoute(r) => Event::RouteDel(rtnl::route(&r, ctx)?),
        R::NewRule(r) => Event::RuleNew(rtnl::rule(&r, ctx.tables())?),
        R::DelRule(r) => Event::RuleDel(rtnl::rule(&r, ctx.tables())?),
        _ => return None,
    })
}

fn ip(family: u16, a: &Address) -> IpAddr {
    if family == netlink_packet_xfrm::constants::AF_INET6 {
        IpAddr::V6(a.to_ipv6())
    } else {
        IpAddr::V4(a.to_ipv4())
    }
}

fn mark_of(nlas: &[XfrmAttrs]) -> Option<crate::model::Mark> {
    nlas.iter().find_map(|a| match a {
        XfrmAttrs::Mark(m) => Some(crate::model::Mark {
            value: m.value,
            mask: m.mask,
        }),
        _ => None,
    })
}

/// One NETLINK_XFRM notification as an event, named through the dump's context (a selector
/// naming an interface must equal the dumped one). A flush has no list of what went: it
/// asks for a resync.
pub fn xfrm_event(m: XfrmMessage, ctx: &Context) -> Option<Event> {
    use XfrmMessage as X;
    let dev = |i| ctx.selector_dev(i);
    Some(match m {
        X::AddSa(mut s) | X::UpdateSa(mut s) => Event::SaNew(Box::new(xfrm::state(&mut s, dev))),
        X::DeleteSa(d) => {
            let id = &d.user_sa_id;
            Event::SaDel(SaKey {
                dst: ip(id.family, &id.daddr).to_string(),
                spi: id.spi,
                proto: crate::model::XfrmProto::from_number(id.proto),
                mark: mark_of(&d.nlas),
            })
        }
        X::Expire(e) => {
            let s = &e.expire.state;
            Event::SaExpire {
                key: SaKey {
                    dst: ip(s.family, &s.id.daddr).to_string(),
                    spi: s.id.spi,
                    proto: crate::model::XfrmProto::from_number(s.id.proto),
                    mark: None,
                },
                hard: e.expire.hard != 0,
            }
        }
        X::AddPolicy(p) | X::UpdatePolicy(p) => Event::PolicyNew(xfrm::policy(&p, dev)),
        X::DeletePolicy(d) => {
            // The kernel's delete notification carries the whole policy (XFRMA_POLICY).
            let info = d.nlas.iter().find_map(|a| match a {
                XfrmAttrs::PolicyInfo(i) => Some(*i),
                _ => None,
            });
            match info {
                Some(user_policy_info) => {
                    let p = xfrm::policy(
                        &PolicyMsg {
                            user_policy_info,
                            nlas: d.nlas.clone(),
                        },
                        dev,
                    );
                    Event::PolicyDel {
                        dir: p.dir,
                        index: p.index,
                        selector: Some(p.selector),
                        mark: p.mark,
                    }
                }
                None => Event::PolicyDel {
                    dir: xfrm::dir(d.user_policy_id.direction),
                    index: d.user_policy_id.index,
                    selector: None,
                    mark: None,
                },
            }
        }
        X::FlushSa(_) | X::FlushPolicy(_) => Event::ResyncNeeded {
            reason: "XFRM flush: resynced".into(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_short_xfrm_notification_is_reported_not_a_panic() {
        let ctx = Context::new(Default::default());
        let events = decode::<XfrmMessage>(
            crate::source::netlink::tests::SHORT_EXPIRE_NOTIFICATIONS,
            |m, _| xfrm_event(m, &ctx),
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::SourceError(t) if t.contains("shorter than"))),
            "{events:?}"
        );
    }
}
