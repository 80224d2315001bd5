//! Rate-controlled UDP flood for benches/capture.sh (bench code, not part of hopscope, which
//! never sends anything). Run it only inside a throwaway netns:
//!
//! ```text
//! flood --iface va --dst-mac 02:..:.. --rate 500000 --secs 5
//!       [--src-ip 192.0.2.1] [--dst-ip 192.0.2.2] [--dport 9] [--len 64] [--batch 128]
//!       [--threads 1]
//! ```
//!
//! Pre-built Ethernet/IPv4/UDP frames (UDP payload `--len` bytes, 64 by default, as iperf3
//! `-u -l 64`; frame = 14 + 20 + 8 + len bytes) go out through an AF_PACKET socket bound to
//! `--iface`, `sendmmsg` batches of `--batch`, with PACKET_QDISC_BYPASS (straight to the driver:
//! no qdisc, no queue to overflow silently). The dst MAC is the peer's, so the receiving stack
//! takes the frames as its own (`PACKET_HOST`). Pacing is a token bucket refilled at `--rate`
//! per second, spent a batch at a time (bursts of at most one batch); `--rate 0` = as fast as
//! possible. `--threads N`: N senders, each with its own socket and rate/N (one core cannot
//! both send and run the receiving veth's softirq fast enough to outrun a capturer). At the end one line on stdout: `sent N secs T pps P errors E`.

use std::time::{Duration, Instant};

struct Args {
    iface: String,
    dst_mac: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    dport: u16,
    len: usize,
    batch: usize,
    rate: f64,
    secs: f64,
    threads: usize,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad MAC {s:?}: {e}"))?;
    v.try_into().map_err(|_| format!("bad MAC {s:?}"))
}

fn parse_ip(s: &str) -> Result<[u8; 4], String> {
    s.parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .map_err(|e| format!("bad IPv4 address {s:?}: {e}"))
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        iface: String::new(),
        dst_mac: [0xff; 6],
        src_ip: [192, 0, 2, 1],
        dst_ip: [192, 0, 2, 2],
        dport: 9,
        len: 64,
        batch: 128,
        rate: 100_000.0,
        secs: 5.0,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{k} {v:?}: {e}"));
        match k.as_str() {
            "--iface" => a.iface = v,
            "--dst-mac" => a.dst_mac = parse_mac(&v)?,
            "--src-ip" => a.src_ip = parse_ip(&v)?,
            "--dst-ip" => a.dst_ip = parse_ip(&v)?,
            "--dport" => a.dport = num(&v)? as u16,
            "--len" => a.len = (num(&v)? as usize).min(1472),
            "--batch" => a.batch = (num(&v)? as usize).clamp(1, 1024),
            "--rate" => a.rate = num(&v)?,
            "--secs" => a.secs = num(&v)?,
            "--threads" => a.threads = (num(&v)? as usize).clamp(1, 64),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.iface.is_empty() {
        return Err("--iface is required".into());
    }
    Ok(a)
}

fn csum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One frame; `i` varies the IP id and the UDP source port (distinct frames, as a real flow mix).
fn frame(a: &Args, src_mac: [u8; 6], i: usize) -> Vec<u8> {
    let udp_len = 8 + a.len;
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&a.dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&(i as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&a.src_ip);
    ip[16..20].copy_from_slice(&a.dst_ip);
    let c = csum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let sport = 40_000 + (i % 1024) as u16;
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&a.dport.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend((0..a.len).map(|j| (j as u8) ^ 0x5a));
    let mut pseudo = 0u32;
    for w in [
        &a.src_ip[..2],
        &a.src_ip[2..],
        &a.dst_ip[..2],
        &a.dst_ip[2..],
    ] {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    pseudo += 17 + udp_len as u32;
    let c = match csum(&udp, pseudo) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

fn last_os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("flood: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&a) {
        eprintln!("flood: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args) -> Result<(), String> {
    let start = Instant::now();
    let results: Vec<Result<(u64, u64, String), String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..a.threads)
            .map(|t| s.spawn(move || send(a, t, a.rate / a.threads as f64, start)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("sender panicked".into())))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let (mut sent, mut errors, mut last_err) = (0, 0, String::new());
    for r in results {
        let (s, e, l) = r?;
        sent += s;
        errors += e;
        if !l.is_empty() {
            last_err = l;
        }
    }
    println!(
        "sent {sent} secs {secs:.3} pps {:.0} errors {errors}{}",
        sent as f64 / secs,
        if errors > 0 {
            format!(" ({last_err})")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// One sender: its own socket, frames and token bucket at `rate` (0: unpaced) until `a.secs`
/// after `start`. Returns (sent, errors, last error).
fn send(a: &Args, t: usize, rate: f64, start: Instant) -> Result<(u64, u64, String), String> {
    let src_mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", a.iface))
        .map_err(|e| format!("no interface {}: {e}", a.iface))
        .and_then(|s| parse_mac(s.trim()))?;
    let cname = std::ffi::CString::new(a.iface.as_str()).map_err(|e| e.to_string())?;
    // SAFETY: plain libc calls on a socket we own; every pointer passed lives across the call.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        )
    };
    if fd < 0 {
        return Err(last_os_error("socket(AF_PACKET)"));
    }
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Err(last_os_error(&a.iface));
    }
    let one: libc::c_int = 1;
    // SAFETY: int option, size given.
    if unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as u32,
        )
    } != 0
    {
        return Err(last_os_error("PACKET_QDISC_BYPASS"));
    }
    // Sending only: protocol 0 on the bound socket, so nothing is queued to us on receive.
    // SAFETY: zeroed sockaddr_ll is valid; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = 0;
    sll.sll_ifindex = ifindex as i32;
    if unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    } != 0
    {
        return Err(last_os_error("bind"));
    }
    // Slept-for deadlines as close as the timer allows (the default slack is 50 µs).
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64) };

    let frames: Vec<Vec<u8>> = (0..a.batch)
        .map(|i| frame(a, src_mac, t * a.batch + i))
        .collect();
    let mut iov: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: zeroed msghdr is valid; one iovec, no name (the socket is bound).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();

    let end = Duration::from_secs_f64(a.secs);
    let mut sent: u64 = 0;
    let mut errors: u64 = 0;
    let mut last_err = String::new();
    loop {
        let el = start.elapsed();
        if el >= end {
            break;
        }
        let mut n = a.batch;
        if rate > 0.0 {
            // Tokens earned so far, with at most one batch of burst.
            let due = (rate * el.as_secs_f64()) as u64;
            let have = due.saturating_sub(sent);
            if have == 0 {
                // Sleep until one more packet is due (at least 1 µs), or spin briefly.
                let next = Duration::from_secs_f64((sent + 1) as f64 / rate);
                let wait = next.saturating_sub(el);
                if wait > Duration::from_micros(20) {
                    std::thread::sleep(wait.min(end.saturating_sub(el)));
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            n = n.min(have as usize);
        }
        // SAFETY: msgs[..n] point at frames that outlive the call.
        let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, 0) };
        if r < 0 {
            errors += 1;
            last_err = std::io::Error::last_os_error().to_string();
            if errors > 1000 && sent == 0 {
                return Err(format!("sendmmsg: {last_err}"));
            }
            std::thread::yield_now();
            continue;
        }
        sent += r as u64;
    }
    unsafe { libc::close(fd) };
    Ok((sent, errors, last_err))
}
