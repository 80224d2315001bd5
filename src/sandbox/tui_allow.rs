//! The TUI's seccomp allow-list: the syscalls a TUI session makes (measured with strace -f
//! over every pane, `:netns`, `:trace`, `:capture`, resizes, the kube names watch and the
//! doctor's thread; docs/security.md), with their arguments narrowed where a wider use would
//! be a new power: sockets only of the families and netlink protocols it reads, setns only
//! into a network namespace, opens only for reading, clone only for threads, signals only to
//! itself. Everything else fails with EPERM (the action that needed it reports the error)
//! rather than killing the TUI with the terminal left raw. Tools run in the broker, so there
//! is no execve here.

use super::filter_with_rules;
use anyhow::Result;
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
use std::collections::BTreeMap;

/// Allowed whatever their arguments, besides what a locked-down run may do (`ALLOWED`):
/// directory and path reads, socket calls on sockets it holds (the families it may open are
/// narrowed below), its own ids.
const ANY_ARGS: &[libc::c_long] = &[
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_getdents64,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_getcwd,
    libc::SYS_dup3,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_pwait2,
    libc::SYS_bind,
    libc::SYS_connect,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_set_tid_address,
    libc::SYS_getrusage,
    libc::SYS_sysinfo,
    libc::SYS_uname,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_getppid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_capget,
];

/// The netlink protocols it reads: rtnetlink, XFRM, nfnetlink (conntrack), generic (IPVS).
const NETLINK_PROTOCOLS: &[i32] = &[
    libc::NETLINK_ROUTE,
    libc::NETLINK_XFRM,
    libc::NETLINK_NETFILTER,
    libc::NETLINK_GENERIC,
];

/// prctl options it uses: thread names, reading capabilities and its own state, setting
/// no_new_privs again (seccompiler does, before each filter).
const PRCTL_OPTIONS: &[i32] = &[
    libc::PR_SET_NO_NEW_PRIVS,
    libc::PR_SET_NAME,
    libc::PR_GET_NAME,
    libc::PR_CAPBSET_READ,
    libc::PR_GET_DUMPABLE,
    libc::PR_GET_NO_NEW_PRIVS,
    libc::PR_GET_SECCOMP,
];

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).expect("arg index ≤ 5")
}

fn rule(conds: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conds).expect("a rule with conditions")
}

fn eq(arg: u8, value: i64) -> SeccompCondition {
    cond(arg, SeccompCmpOp::Eq, value as u32 as u64)
}

/// The syscalls allowed only with some arguments, for the process `me`.
fn narrowed(me: libc::pid_t) -> Vec<(libc::c_long, Vec<SeccompRule>)> {
    let fam = |f: i32| eq(0, f as i64);
    // SOCK_CLOEXEC and SOCK_NONBLOCK ride in the type: compare its low 4 bits.
    let ty = |t: i32| cond(1, SeccompCmpOp::MaskedEq(0xf), t as u64);
    let mut socket: Vec<SeccompRule> = NETLINK_PROTOCOLS
        .iter()
        .map(|&p| rule(vec![fam(libc::AF_NETLINK), eq(2, p as i64)]))
        .collect();
    socket.push(rule(vec![fam(libc::AF_PACKET)]));
    socket.push(rule(vec![fam(libc::AF_UNIX)]));
    // The kube API and its name lookups (and libpcap's interface ioctls): no raw IP.
    for f in [libc::AF_INET, libc::AF_INET6] {
        for t in [libc::SOCK_STREAM, libc::SOCK_DGRAM] {
            socket.push(rule(vec![fam(f), ty(t)]));
        }
    }
    // An open that could write or create: write access, O_CREAT, O_TRUNC, O_TMPFILE.
    let tmpfile_bit = (libc::O_TMPFILE & !libc::O_DIRECTORY) as u64;
    let writing = (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC) as u64 | tmpfile_bit;
    let read_only = rule(vec![cond(2, SeccompCmpOp::MaskedEq(writing), 0)]);
    let prctl = PRCTL_OPTIONS
        .iter()
        .map(|&o| rule(vec![eq(0, o as i64)]))
        .collect();
    vec![
        (libc::SYS_socket, socket),
        (libc::SYS_socketpair, vec![rule(vec![fam(libc::AF_UNIX)])]),
        (libc::SYS_openat, vec![read_only]),
        (
            libc::SYS_setns,
            vec![rule(vec![eq(1, libc::CLONE_NEWNET as i64)])],
        ),
        // Threads only: a fork (no CLONE_THREAD) could exec outside this filter's reach.
        (
            libc::SYS_clone,
            vec![rule(vec![cond(
                0,
                SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
                libc::CLONE_THREAD as u64,
            )])],
        ),
        // Terminal input injection (TIOCSTI, TIOCLINUX) is no TUI's business.
        (
            libc::SYS_ioctl,
            vec![rule(vec![
                cond(1, SeccompCmpOp::Ne, libc::TIOCSTI),
                cond(1, SeccompCmpOp::Ne, libc::TIOCLINUX),
            ])],
        ),
        // Reading limits, never setting them.
        (
            libc::SYS_prlimit64,
            vec![rule(vec![
                SeccompCondition::new(2, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, 0)
                    .expect("arg 2"),
            ])],
        ),
        // The doctor's thread lowers its priority (nice 0..19), never raises it.
        (
            libc::SYS_setpriority,
            vec![rule(vec![cond(2, SeccompCmpOp::Le, 19)])],
        ),
        (libc::SYS_prctl, prctl),
        // Adding a filter only narrows further (the second filter below is added this way).
        (
            libc::SYS_seccomp,
            vec![rule(vec![eq(0, libc::SECCOMP_SET_MODE_FILTER as i64)])],
        ),
        (
            libc::SYS_kill,
            vec![rule(vec![eq(0, me as i64)]), rule(vec![eq(0, 0)])],
        ),
        (libc::SYS_tgkill, vec![rule(vec![eq(0, me as i64)])]),
    ]
}

/// The TUI's filters, in the order they are installed: the allow-list (EPERM otherwise), then
/// clone3 answered "not implemented": its flags are behind a pointer a filter cannot read,
/// and on ENOSYS the C library makes its threads with clone, which the list narrows. (EPERM
/// from the list would fail every new thread instead; of two filters the newest answers.)
pub fn filters(me: libc::pid_t) -> Result<Vec<seccompiler::BpfProgram>> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = super::ALLOWED
        .iter()
        .chain(ANY_ARGS)
        .map(|&s| (s, vec![]))
        .collect();
    // Narrowed rules replace the locked-down list's unconditional ones (clone, ioctl, prctl).
    rules.extend(narrowed(me));
    rules.remove(&libc::SYS_clone3);
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let allow_list = filter_with_rules(rules, eperm, SeccompAction::Allow)?;
    let no_clone3 = filter_with_rules(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
    )?;
    Ok(vec![allow_list, no_clone3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// The allow-list in a forked child: what a TUI never does fails with EPERM (raw IP
    /// sockets, an unknown netlink protocol, setns into a mount namespace, exec, fork, a
    /// writing open, TIOCSTI, signalling another process), and what it does still works
    /// (threads, its netlink sockets, a kube API socket, setns into a netns, reading files).
    #[test]
    fn the_tui_allow_list_refuses_what_the_tui_never_does_and_allows_the_rest() {
        let netns = std::fs::File::open("/proc/self/ns/net").unwrap();
        let mntns = std::fs::File::open("/proc/self/ns/mnt").unwrap();
        let (net_fd, mnt_fd) = (netns.as_raw_fd(), mntns.as_raw_fd());
        // SAFETY (in the child): raw syscalls on constant C strings and open descriptors.
        let failed = super::super::tests::bits_failed_in_child_under(
            // SAFETY: getpid has no arguments.
            &filters(unsafe { libc::getpid() }).unwrap(),
            || unsafe {
                let denied = super::super::tests::denied;
                let mut refused = Vec::new();
                let mut broken = Vec::new();
                let mut expect_denied = |what: &'static str, rc: i64| {
                    if !denied(rc) {
                        refused.push(what)
                    }
                };
                expect_denied(
                    "socket(AF_INET, SOCK_RAW)",
                    libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) as i64,
                );
                expect_denied(
                    "socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)",
                    libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 15) as i64,
                );
                expect_denied("setns(mnt)", libc::setns(mnt_fd, libc::CLONE_NEWNS) as i64);
                expect_denied("setns(any type)", libc::setns(mnt_fd, 0) as i64);
                let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
                expect_denied(
                    "execve",
                    libc::execv(c"/bin/true".as_ptr(), argv.as_ptr()) as i64,
                );
                expect_denied("fork", libc::fork() as i64);
                expect_denied(
                    "open for writing",
                    libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY) as i64,
                );
                expect_denied(
                    "open O_CREAT",
                    libc::open(
                        c"/tmp/hs-allow-test".as_ptr(),
                        libc::O_RDONLY | libc::O_CREAT,
                        0o600,
                    ) as i64,
                );
                let c = 0u8;
                expect_denied("TIOCSTI", libc::ioctl(0, libc::TIOCSTI, &c) as i64);
                expect_denied("kill(1)", libc::kill(1, 0) as i64);
                expect_denied("unshare", libc::unshare(libc::CLONE_NEWNET) as i64);
                expect_denied("ptrace", libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0));
                let mut ok = |what: &'static str, good: bool| {
                    if !good {
                        broken.push(what)
                    }
                };
                ok(
                    "a thread",
                    std::thread::spawn(|| 7).join().is_ok_and(|v| v == 7),
                );
                for p in NETLINK_PROTOCOLS {
                    ok(
                        "a netlink socket it reads",
                        libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, *p)
                            >= 0,
                    );
                }
                ok(
                    "a TCP socket",
                    libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) >= 0,
                );
                ok("setns(net)", libc::setns(net_fd, libc::CLONE_NEWNET) == 0);
                ok(
                    "open for reading",
                    libc::open(
                        c"/proc/self/status".as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC,
                    ) >= 0,
                );
                // The filter was built for the parent (the child's own pid differs).
                ok("kill(the TUI, 0)", libc::kill(libc::getppid(), 0) == 0);
                if refused.is_empty() && broken.is_empty() {
                    return 0;
                }
                // A raw write: the parent's stderr lock may have been held at the fork.
                let line = format!(
                    "allowed but should be refused: {refused:?}; refused but used: {broken:?}\n"
                );
                libc::write(2, line.as_ptr().cast(), line.len());
                1
            },
        );
        assert_eq!(failed, 0, "see the child's line above");
    }
}
