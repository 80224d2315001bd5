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
//! `--no-sandbox` skips the lock-down (non-dumpable stays). docs/security.md says what each
//! mode keeps.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

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
pub fn lock_down() -> Result<Locked> {
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
/// apply set*id to all threads). Without root, this thread's capabilities are dropped.
fn drop_identity() -> Result<String> {
    // SAFETY: plain syscalls without pointers (setgroups gets an empty list).
    unsafe {
        if libc::geteuid() == 0 {
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
    let arch: seccompiler::TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| anyhow::anyhow!("seccomp on {}: {e:?}", std::env::consts::ARCH))?;
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        ALLOWED.iter().map(|&s| (s, vec![])).collect();
    let filter = seccompiler::SeccompFilter::new(
        rules,
        seccompiler::SeccompAction::Errno(libc::EPERM as u32),
        seccompiler::SeccompAction::Allow,
        arch,
    )?;
    Ok(filter.try_into()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a child (the filter stays there): open, socket and execve fail with EPERM; writing
    /// to a descriptor already open still works.
    #[test]
    fn the_filter_refuses_opening_anything_new() {
        let filter = read_write_only().unwrap();
        // SAFETY: the child only makes raw syscalls and exits; the parent waits for it.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                let mut code = 0;
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || seccompiler::apply_filter(&filter).is_err()
                {
                    libc::_exit(10);
                }
                let denied = |rc: i64| rc < 0 && *libc::__errno_location() == libc::EPERM;
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
                libc::_exit(code);
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            assert!(libc::WIFEXITED(status), "child died: {status}");
            assert_eq!(
                libc::WEXITSTATUS(status),
                0,
                "bits: 1 open, 2 socket, 4 exec, 8 write"
            );
        }
    }
}
