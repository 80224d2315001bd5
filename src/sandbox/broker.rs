//! The TUI's privileged helper (privilege separation, as OpenSSH and tcpdump do it): the tools
//! a `:trace` needs (iptables-save, nft, ipset) run as root with the capabilities they need,
//! which the TUI's seccomp allow-list must not grant it (no execve, no chroot). So before the
//! TUI locks down, it forks this broker; the broker runs only the read-only tools netfilter
//! names (`source::netfilter::is_read_tool`), each inside the netns of the TUI thread that
//! asked, and sends their output back over a socketpair. Anything else it refuses.
//!
//! A request is the asking thread's id, the tool and its arguments; the broker opens that
//! thread's netns itself (/proc/TUI/task/TID/ns/net: only the TUI's own threads, never a path
//! from the UI). The answer is the wait status, stdout and stderr, or why it was refused.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Output};
use std::sync::{Mutex, OnceLock};

/// The TUI's end of the socketpair, once the broker runs.
static CLIENT: OnceLock<Mutex<UnixStream>> = OnceLock::new();

/// A request (a tool and a few arguments) is small; an answer is a whole rule set.
const MAX_REQUEST: usize = 64 << 10;
/// iptables-save of a 100k-rule kube-proxy node is ~20 MB; far above that is not a tool's
/// answer.
const MAX_ANSWER: usize = 256 << 20;

/// What the broker may run and how, handed in by the TUI's start-up (the I/O layer's read-only
/// netfilter tools), so this mechanism itself knows no tool.
#[derive(Clone, Copy)]
pub struct Tools {
    /// Whether `tool args` is one of the read-only dumps.
    pub allowed: fn(&str, &[&str]) -> bool,
    /// Run it inside the netns `ns` (a descriptor the broker opened itself).
    pub run_in: fn(&std::fs::File, &str, &[&str]) -> Result<Output, String>,
}

/// Fork the broker. Call before the process starts any thread (fork copies only the caller)
/// and before the TUI drops what the tools need. The broker keeps this process's capabilities
/// and gets the `broker_filter` seccomp filter; it exits when the TUI does.
pub fn start(broker_filter: &seccompiler::BpfProgram, tools: Tools) -> Result<u32> {
    let (tui, broker) = UnixStream::pair().context("the broker's socketpair")?;
    // SAFETY: no other thread exists (see above), so the child may run ordinary code.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(std::io::Error::last_os_error()).context("forking the broker"),
        0 => {
            drop(tui);
            let code = match serve(broker, broker_filter, tools) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("hopscope: broker: {e:#}");
                    1
                }
            };
            // SAFETY: leaves the forked copy without running the TUI's exit handlers.
            unsafe { libc::_exit(code) }
        }
        pid => {
            drop(broker);
            let _ = CLIENT.set(Mutex::new(tui));
            Ok(pid as u32)
        }
    }
}

/// Run `tool args` through the broker when one runs (None: run it here). The calling thread's
/// netns is the one the tool runs in.
pub fn run_tool(tool: &str, args: &[&str]) -> Option<Result<Output, String>> {
    let client = CLIENT.get()?;
    let mut stream = client.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: gettid has no arguments.
    let tid = unsafe { libc::gettid() };
    let mut request = vec![tid.to_string().into_bytes(), tool.as_bytes().to_vec()];
    request.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let answer = write_fields(&mut *stream, &request)
        .and_then(|()| read_fields(&mut *stream, MAX_ANSWER))
        .map_err(|e| format!("{tool}: the privileged helper did not answer: {e}"));
    Some(answer.and_then(|fields| match fields.as_slice() {
        [ok, status, stdout, stderr] if ok == b"ok" && status.len() == 4 => Ok(Output {
            status: ExitStatus::from_raw(i32::from_le_bytes(
                status[..].try_into().expect("4 bytes"),
            )),
            stdout: stdout.clone(),
            stderr: stderr.clone(),
        }),
        [err, why] if err == b"err" => Err(String::from_utf8_lossy(why).into_owned()),
        _ => Err(format!("{tool}: the privileged helper answered garbage")),
    }))
}

/// The broker's loop: one request, one answer, until the TUI closes its end.
fn serve(mut stream: UnixStream, filter: &seccompiler::BpfProgram, tools: Tools) -> Result<()> {
    // SAFETY: constant arguments; a broker outliving the TUI would be an orphan root process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::prctl(libc::PR_SET_NAME, c"hs-broker".as_ptr(), 0, 0, 0);
    }
    // SAFETY: getppid has no arguments.
    let tui = unsafe { libc::getppid() };
    seccompiler::apply_filter(filter).context("installing the broker's seccomp filter")?;
    loop {
        let fields = match read_fields(&mut stream, MAX_REQUEST) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e).context("reading a request"),
        };
        let answer = match answer(tui, &fields, tools) {
            Ok(out) => vec![
                b"ok".to_vec(),
                out.status.into_raw().to_le_bytes().to_vec(),
                out.stdout,
                out.stderr,
            ],
            Err(why) => vec![b"err".to_vec(), why.into_bytes()],
        };
        write_fields(&mut stream, &answer).context("answering")?;
    }
}

/// Check a request and run it: [tid, tool, args…] from the TUI process `tui`.
fn answer(tui: libc::pid_t, fields: &[Vec<u8>], tools: Tools) -> Result<Output, String> {
    let text: Vec<&str> = fields
        .iter()
        .map(|f| std::str::from_utf8(f))
        .collect::<Result<_, _>>()
        .map_err(|_| "refused: a request that is not text".to_string())?;
    let [tid, tool, args @ ..] = text.as_slice() else {
        return Err("refused: an empty request".into());
    };
    let tid: u32 = tid
        .parse()
        .map_err(|_| format!("refused: {tid:?} is not a thread id"))?;
    if !(tools.allowed)(tool, args) {
        return Err(format!(
            "refused: {tool} {} is not one of the read-only tools the privileged helper runs",
            args.join(" ")
        ));
    }
    let ns = netns_of(tui, tid).map_err(|e| format!("{tool}: {e:#}"))?;
    (tools.run_in)(&ns, tool, args)
}

/// The netns of thread `tid` of the TUI (and only of the TUI: its task directory).
fn netns_of(tui: libc::pid_t, tid: u32) -> Result<std::fs::File> {
    let path = format!("/proc/{tui}/task/{tid}/ns/net");
    std::fs::File::open(&path).with_context(|| format!("{path} (not a thread of the TUI?)"))
}

/// A message: the number of fields, then each field's length and bytes (u32, little-endian).
fn write_fields(w: &mut impl Write, fields: &[Vec<u8>]) -> std::io::Result<()> {
    let mut msg = (fields.len() as u32).to_le_bytes().to_vec();
    for f in fields {
        msg.extend_from_slice(&(f.len() as u32).to_le_bytes());
        msg.extend_from_slice(f);
    }
    w.write_all(&msg)
}

/// Read one message of at most `max` bytes in all (more is an error, not an allocation).
fn read_fields(r: &mut impl Read, max: usize) -> std::io::Result<Vec<Vec<u8>>> {
    let mut word = [0u8; 4];
    let mut next = |r: &mut dyn Read| -> std::io::Result<usize> {
        r.read_exact(&mut word)?;
        Ok(u32::from_le_bytes(word) as usize)
    };
    let count = next(r)?;
    let mut total = 0usize;
    let mut fields = Vec::new();
    for _ in 0..count {
        let len = next(r)?;
        total = total.saturating_add(len).saturating_add(4);
        if total > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a message over {max} bytes"),
            ));
        }
        let mut f = vec![0; len];
        r.read_exact(&mut f)?;
        fields.push(f);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refuses a request the way `answer` does, for tests without a broker process.
    fn check(fields: &[&str]) -> Result<Output, String> {
        let fields: Vec<Vec<u8>> = fields.iter().map(|f| f.as_bytes().to_vec()).collect();
        // SAFETY: getpid has no arguments.
        answer(
            unsafe { libc::getpid() },
            &fields,
            crate::source::netfilter::BROKER_TOOLS,
        )
    }

    #[test]
    fn a_message_reads_back_and_an_oversized_one_is_refused() {
        let fields = vec![b"123".to_vec(), b"nft".to_vec(), vec![], b"-j".to_vec()];
        let mut buf = Vec::new();
        write_fields(&mut buf, &fields).unwrap();
        assert_eq!(read_fields(&mut buf.as_slice(), 1000).unwrap(), fields);
        let e = read_fields(&mut buf.as_slice(), 10).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        // A length claiming 4 GiB is refused before any allocation.
        let huge = [1u32.to_le_bytes(), u32::MAX.to_le_bytes()].concat();
        assert!(read_fields(&mut huge.as_slice(), MAX_ANSWER).is_err());
        assert!(read_fields(&mut &buf[..buf.len() - 1], 1000).is_err());
    }

    #[test]
    fn only_the_read_only_tools_and_the_tuis_own_threads_are_accepted() {
        // SAFETY: gettid has no arguments.
        let me = unsafe { libc::gettid() }.to_string();
        for bad in [
            vec![me.as_str(), "sh", "-c", "id"],
            vec![me.as_str(), "nft", "flush", "ruleset"],
            vec![me.as_str(), "iptables-legacy-save", "-M", "/bin/sh"],
            vec![me.as_str(), "/usr/sbin/iptables-legacy-save"],
            vec![me.as_str(), "ipset", "destroy"],
        ] {
            let e = check(&bad).unwrap_err();
            assert!(e.starts_with("refused:"), "{bad:?}: {e}");
        }
        assert!(check(&[]).unwrap_err().contains("empty"));
        assert!(
            check(&["1/../../self", "nft"])
                .unwrap_err()
                .contains("thread id")
        );
        // A thread that is not ours: pid 1's own id is never one of this process's tasks.
        let e = check(&["1", "nft", "-j", "list", "ruleset"]).unwrap_err();
        assert!(e.contains("not a thread of the TUI"), "{e}");
    }
}
