//! Least privilege at run time. hopscope runs as root on production nodes and parses bytes
//! shaped by whatever else runs there, so a long run gives up what it no longer needs once it
//! has opened it, as tcpdump does with -Z:
//!
//! - every process is non-dumpable from its first instruction (a core dump of `capture
//!   --decrypt` or the TUI would hold the XFRM keys; nor can another process of the same user
//!   ptrace it or read its memory);
//! - `capture`, once its capture handles, netns descriptors and `-w` file are open, locks down
//!   (`lock_down`): it becomes `nobody` when it is root (every thread loses every capability,
//!   as with tcpdump -Z), or drops its capabilities otherwise; sets no_new_privs; and installs
//!   a seccomp filter on every thread that allows only reading the descriptors it holds and
//!   writing the ones it holds (stdout, stderr, the file the user named): no open, no socket,
//!   no exec, no setns, no netlink request, no ptrace. What it refuses fails with EPERM.
//!
//! - `trace --follow` locks down the same way once its captures are open; the node's re-read
//!   after following is done by a helper process (`hopscope snapshot`) started before;
//! - the TUI keeps reading the node for its whole run (netlink dumps, captures picked later,
//!   `:netns`, `iptables-save` for its traces), so it cannot lock down that far
//!   (`limit_live`): the tools run in a privileged helper forked first (`broker`), which keeps
//!   the capabilities they need and a filter refusing what none of them does (modules, mounts,
//!   ptrace, bpf(), keyrings, clocks, identities, …); the TUI itself keeps only what its own
//!   reads need, sets no_new_privs, and installs an allow-list of the syscalls it makes
//!   (`tui_allow`: no exec, no fork, no writing open, setns only into a netns, sockets only of
//!   the families and netlink protocols it reads).
//!
//! `--no-sandbox` skips both (non-dumpable stays). docs/security.md says what each mode keeps.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

pub(crate) mod broker;
mod tui_allow;

/// No core dumps, no ptrace or /proc/PID/mem by others of the same user. Never fails the run:
/// a kernel that refuses only leaves the process as it was, and that is said.
pub fn non_dumpable() {
    // SAFETY: prctl/setrlimit with constant arguments; they only change this process.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            eprintln!(
                "hopscope: warning: cannot make the process non-dumpable: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// What `lock_down` did, for the run's first lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// `uid 65534 (nobody), no capabilities` or `capabilities dropped (this thread)`.
    pub identity: String,
}

impl std::fmt::Display for Locked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sandboxed: {}, no_new_privs, seccomp (read/write what is open)",
            self.identity
        )
    }
}

/// The user a root run becomes (no capabilities, owns nothing).
const NOBODY: libc::uid_t = 65534;

/// Give up everything a run that has opened its descriptors no longer needs (see the module
/// comment). Must be called once every handle, socket and output file is open.
/// Calling it again (trace --follow, then trace's printing) returns what the first call did.
pub fn lock_down() -> Result<Locked> {
    static DONE: std::sync::Mutex<Option<Locked>> = std::sync::Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = done.as_ref() {
        return Ok(l.clone());
    }
    let locked = lock_down_once()?;
    *done = Some(locked.clone());
    Ok(locked)
}

fn lock_down_once() -> Result<Locked> {
    let identity = drop_identity()?;
    // SAFETY: constant arguments; affects only this thread (seccomp's TSYNC spreads it).
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        bail!(
            "cannot set no_new_privs: {}",
            std::io::Error::last_os_error()
        );
    }
    // Changing uids makes a process dumpable again (if the sysctl says so): not us.
    non_dumpable();
    let filter = read_write_only().context("building the seccomp filter")?;
    seccompiler::apply_filter_all_threads(&filter)
        .context("installing the seccomp filter (--no-sandbox runs without it)")?;
    Ok(Locked { identity })
}

/// Root becomes nobody: the kernel clears every capability of every thread (glibc and musl
/// apply set*id to all threads). Without root, or as a root that may not change its ids (the
/// attach pod drops CAP_SETUID and CAP_SETGID), this thread's capabilities are dropped.
fn drop_identity() -> Result<String> {
    let may_change_ids = [caps::Capability::CAP_SETUID, caps::Capability::CAP_SETGID]
        .iter()
        .all(|c| caps::has_cap(None, caps::CapSet::Effective, *c).unwrap_or(false));
    // SAFETY: plain syscalls without pointers (setgroups gets an empty list).
    unsafe {
        if libc::geteuid() == 0 && may_change_ids {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(NOBODY, NOBODY, NOBODY) != 0
                || libc::setresuid(NOBODY, NOBODY, NOBODY) != 0
            {
                bail!(
                    "cannot become nobody: {} (--no-sandbox runs as root)",
                    std::io::Error::last_os_error()
                );
            }
            return Ok(format!("uid {NOBODY} (nobody), no capabilities"));
        }
    }
    for set in [
        caps::CapSet::Ambient,
        caps::CapSet::Inheritable,
        caps::CapSet::Effective,
        caps::CapSet::Permitted,
    ] {
        caps::clear(None, set).with_context(|| format!("dropping the {set:?} capabilities"))?;
    }
    // Capabilities are per thread: threads started earlier (capture readers) keep theirs, but
    // the seccomp filter leaves them nothing to use them on (no open, socket, setns, exec).
    Ok("capabilities dropped (this thread)".into())
}

/// Syscalls a locked-down run makes: memory, threads and time, signals, reading and writing
/// descriptors it already holds, polling them, asking a capture socket for its statistics.
/// Anything else (open, socket, connect, sendto, execve, setns, ptrace, mount, …) fails.
const ALLOWED: &[libc::c_long] = &[
    // descriptors already open
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_pread64,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_fcntl,
    libc::SYS_ioctl,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_dup,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_select,
    libc::SYS_pselect6,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_shutdown,
    libc::SYS_pipe2,
    libc::SYS_eventfd2,
    // memory
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    // threads, time, signals
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_getrandom,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_prctl,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_restart_syscall,
];

fn read_write_only() -> Result<seccompiler::BpfProgram> {
    let eperm = seccompiler::SeccompAction::Errno(libc::EPERM as u32);
    filter(ALLOWED, eperm, seccompiler::SeccompAction::Allow)
}

/// A filter whose `listed` syscalls get `on_listed`, every other one `otherwise`.
fn filter(
    listed: &[libc::c_long],
    otherwise: seccompiler::SeccompAction,
    on_listed: seccompiler::SeccompAction,
) -> Result<seccompiler::BpfProgram> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        listed.iter().map(|&s| (s, vec![])).collect();
    filter_with_rules(rules, otherwise, on_listed)
}

/// A filter whose syscalls in `rules` get `on_listed` when one of their rules matches (or
/// always, for an empty list of rules), every other call `otherwise`.
fn filter_with_rules(
    rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>>,
    otherwise: seccompiler::SeccompAction,
    on_listed: seccompiler::SeccompAction,
) -> Result<seccompiler::BpfProgram> {
    let arch: seccompiler::TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| anyhow::anyhow!("seccomp on {}: {e:?}", std::env::consts::ARCH))?;
    let filter = seccompiler::SeccompFilter::new(rules, otherwise, on_listed, arch)?;
    Ok(filter.try_into()?)
}

/// What the TUI and its broker keep: CAP_NET_ADMIN (XFRM, IPVS and conntrack dumps,
/// iptables-save), CAP_NET_RAW (captures picked later, iptables-legacy-save), CAP_SYS_ADMIN
/// (`setns` into the watched netns, for the monitor, captures and `:netns`), CAP_SYS_PTRACE
/// (opening another process's /proc/PID/ns/net for `--pid`, and the broker the TUI's thread
/// netns), CAP_SYS_CHROOT (the broker: the node's own iptables-save through /proc/1/root in a
/// pod) and CAP_DAC_READ_SEARCH (the kubeconfig and node files it re-reads may belong to
/// another user). Every other capability goes, from the bounding set too.
const LIVE_KEEPS: &[caps::Capability] = &[
    caps::Capability::CAP_NET_ADMIN,
    caps::Capability::CAP_NET_RAW,
    caps::Capability::CAP_SYS_ADMIN,
    caps::Capability::CAP_SYS_PTRACE,
    caps::Capability::CAP_SYS_CHROOT,
    caps::Capability::CAP_DAC_READ_SEARCH,
];

/// Syscalls neither the TUI nor the tools it runs (iptables-save, nft, ipset) ever make; each
/// fails with EPERM once `limit_live` ran. CAP_SYS_ADMIN is kept for setns, and these are
/// most of what else it would allow.
const LIVE_NEVER: &[libc::c_long] = &[
    // other processes' memory
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    // the kernel itself: modules, kexec, reboot, raw I/O, BPF programs, perf, keyrings
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_syslog,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    // mounts and new namespaces (setns into existing ones stays allowed)
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    // the machine's clock and names
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_vhangup,
    // identities
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setgroups,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
];

fn never_used_live() -> Result<seccompiler::BpfProgram> {
    let eperm = seccompiler::SeccompAction::Errno(libc::EPERM as u32);
    filter(LIVE_NEVER, seccompiler::SeccompAction::Allow, eperm)
}

/// What only the broker needs once it runs the tools: the TUI itself drops it.
const BROKER_ONLY: &[caps::Capability] = &[caps::Capability::CAP_SYS_CHROOT];

/// What `limit_live` did, for docs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// The capabilities the TUI kept (names), in every set that had them.
    pub kept: Vec<String>,
    /// The privileged helper's pid.
    pub broker: u32,
}

/// Least privilege for a run that keeps reading the node (the TUI): keep only `LIVE_KEEPS`
/// (in every capability set, the bounding set too when it may be changed) and no_new_privs;
/// fork the broker, which keeps that and gets the `LIVE_NEVER` filter; then the TUI drops
/// `BROKER_ONLY` and installs its allow-list (`tui_allow`). Capabilities and filters are per
/// thread and fork copies one: call it before the run starts any thread, so every later
/// thread (monitor, captures, names) inherits it.
pub fn limit_live(tools: broker::Tools) -> Result<Limited> {
    use caps::{CapSet, Capability};
    let keep: caps::CapsHashSet = LIVE_KEEPS.iter().copied().collect();
    let had = caps::read(None, CapSet::Permitted).context("reading the capabilities")?;
    // The bounding set first (dropping from it needs CAP_SETPCAP, dropped just after): what
    // this process runs (iptables-save as root) gets no more than it keeps.
    if had.contains(&Capability::CAP_SETPCAP) {
        for cap in caps::all().difference(&keep) {
            if caps::has_cap(None, CapSet::Bounding, *cap).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, *cap)
                    .with_context(|| format!("dropping {cap} from the bounding set"))?;
            }
        }
    }
    let kept: caps::CapsHashSet = had.intersection(&keep).copied().collect();
    // A non-root run's tools get its capabilities through the ambient set: keep what is kept
    // there too (and in the inheritable set, which the ambient set needs).
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        let now = caps::read(None, set).with_context(|| format!("reading the {set:?} set"))?;
        for cap in now.difference(&kept) {
            caps::drop(None, set, *cap)
                .with_context(|| format!("dropping {cap} from the {set:?} set"))?;
        }
    }
    // SAFETY: constant arguments; affects this thread and the threads and programs it starts.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        bail!(
            "cannot set no_new_privs: {}",
            std::io::Error::last_os_error()
        );
    }
    let broker_filter = never_used_live().context("building the broker's seccomp filter")?;
    let broker = broker::start(&broker_filter, tools)?;
    let mut kept = kept;
    for cap in BROKER_ONLY {
        kept.remove(cap);
        for set in [
            CapSet::Ambient,
            CapSet::Inheritable,
            CapSet::Effective,
            CapSet::Permitted,
        ] {
            caps::drop(None, set, *cap)
                .with_context(|| format!("dropping {cap} from the {set:?} set"))?;
        }
    }
    // SAFETY: getpid has no arguments.
    let me = unsafe { libc::getpid() };
    for filter in tui_allow::filters(me).context("building the TUI's seccomp allow-list")? {
        seccompiler::apply_filter_all_threads(&filter)
            .context("installing the seccomp filter (--no-sandbox runs without it)")?;
    }
    let mut kept: Vec<String> = kept.iter().map(|c| c.to_string()).collect();
    kept.sort();
    Ok(Limited { kept, broker })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `checks` in a forked child under no_new_privs and `filters` (so the filters stay
    /// there) and returns the child's exit code: the bits of the checks that failed. A panic
    /// in the child is caught there and ends it with `_exit(99)`: unwound, the forked copy of
    /// this test thread would go on as a second test runner (ending in `exit`, status 0 — a
    /// pass — after running exit handlers over state copied from threads that are not there).
    pub(super) fn bits_failed_in_child_under(
        filters: &[seccompiler::BpfProgram],
        checks: impl FnOnce() -> i32,
    ) -> i32 {
        // SAFETY: the child only makes raw syscalls and exits; the parent waits for it.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || filters
                        .iter()
                        .any(|f| seccompiler::apply_filter(f).is_err())
                {
                    libc::_exit(100);
                }
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(checks));
                libc::_exit(code.unwrap_or(99));
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            assert!(libc::WIFEXITED(status), "child died: {status}");
            libc::WEXITSTATUS(status)
        }
    }

    /// A raw syscall's return refused with EPERM (by the filter).
    pub(super) fn denied(rc: i64) -> bool {
        // SAFETY: errno of this thread, read right after the call.
        rc < 0 && unsafe { *libc::__errno_location() } == libc::EPERM
    }

    /// In a child: open, socket and execve fail with EPERM; writing to a descriptor already
    /// open still works.
    #[test]
    fn the_filter_refuses_opening_anything_new() {
        let filter = read_write_only().unwrap();
        // SAFETY (in the child): raw syscalls on constant C strings.
        let bits = bits_failed_in_child_under(&[filter], || unsafe {
            let mut code = 0;
            if !denied(libc::open(c"/etc/hostname".as_ptr(), libc::O_RDONLY) as i64) {
                code |= 1;
            }
            if !denied(libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0) as i64) {
                code |= 2;
            }
            let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
            if !denied(libc::execv(c"/bin/true".as_ptr(), argv.as_ptr()) as i64) {
                code |= 4;
            }
            if libc::write(2, c"".as_ptr().cast(), 0) != 0 {
                code |= 8;
            }
            code
        });
        assert_eq!(bits, 0, "bits: 1 open, 2 socket, 4 exec, 8 write");
    }

    /// The TUI's filter, in a child: mount, unshare, ptrace and init_module fail with EPERM
    /// (as root, without the filter, they work or fail with ENOENT/EFAULT); what the TUI does
    /// (open, a netlink socket, fork and exec of a tool) still works.
    #[test]
    fn the_live_filter_refuses_what_the_tui_never_does_and_allows_the_rest() {
        let filter = never_used_live().unwrap();
        // SAFETY (in the child): raw syscalls on constant C strings; the grandchild only execs.
        let bits = bits_failed_in_child_under(&[filter], || unsafe {
            let mut code = 0;
            let null = std::ptr::null::<libc::c_char>();
            // A target that does not exist: ENOENT without the filter, never a mount.
            let nowhere = c"/nonexistent-hopscope-test".as_ptr();
            if !denied(libc::mount(null, nowhere, null, 0, std::ptr::null()) as i64) {
                code |= 1;
            }
            if !denied(libc::unshare(libc::CLONE_NEWNS) as i64) {
                code |= 2;
            }
            if !denied(libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0)) {
                code |= 4;
            }
            if !denied(libc::syscall(libc::SYS_init_module, null, 0, null)) {
                code |= 8;
            }
            let fd = libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY);
            let nl = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0);
            if fd < 0 || nl < 0 {
                code |= 16;
            }
            let child = libc::fork();
            if child == 0 {
                let argv = [c"/bin/true".as_ptr(), null];
                libc::execv(c"/bin/true".as_ptr(), argv.as_ptr());
                libc::_exit(1);
            }
            let mut st = 0;
            libc::waitpid(child, &mut st, 0);
            if !libc::WIFEXITED(st) || libc::WEXITSTATUS(st) != 0 {
                code |= 32;
            }
            code
        });
        assert_eq!(
            bits, 0,
            "bits: 1 mount, 2 unshare, 4 ptrace, 8 init_module, 16 open/socket, 32 exec"
        );
    }
}
