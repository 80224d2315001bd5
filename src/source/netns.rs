//! Reading another network namespace without moving the caller: work runs on a
//! short-lived thread that setns()es itself; sockets opened there stay bound to that netns.

use crate::model::NetnsInfo;
use anyhow::{Context, Result, anyhow, bail};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Where named netns are looked up: $HOPSCOPE_NETNS_DIR if set (the `attach` pod mounts no
/// host path and points it at the node's /run/netns through /proc/1/root), else /run/netns.
pub fn run_dir() -> String {
    std::env::var("HOPSCOPE_NETNS_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| NETNS_RUN_DIR.into())
}

/// Where to read from: the caller's own netns, a named/pathed one, or a process's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Target {
    #[default]
    Current,
    /// A name under /run/netns, or a path to a netns file (e.g. /proc/PID/ns/net).
    Netns(String),
    Pid(u32),
}

pub struct Opened {
    pub file: Option<File>,
    pub info: NetnsInfo,
}

pub fn list_named() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn known_list() -> String {
    let names = list_named();
    if names.is_empty() {
        format!("no named netns exist in {}", run_dir())
    } else {
        format!("known: {}", names.join(", "))
    }
}

pub fn open(target: &Target) -> Result<Opened> {
    match target {
        Target::Current => Ok(Opened {
            file: None,
            info: NetnsInfo::default(),
        }),
        Target::Netns(spec) => {
            let (path, name) = if spec.contains('/') {
                (spec.clone(), None)
            } else {
                (format!("{}/{spec}", run_dir()), Some(spec.clone()))
            };
            if !Path::new(&path).exists() {
                bail!(
                    "netns {spec:?} not found ({path} does not exist); {}",
                    known_list()
                );
            }
            let file = File::open(&path).with_context(|| format!("cannot open netns {path}"))?;
            if !is_netns(&file) {
                bail!(
                    "{path} is not a network namespace (a name under {NETNS_RUN_DIR}, or a file \
                     such as /proc/PID/ns/net); {}",
                    known_list()
                );
            }
            Ok(Opened {
                file: Some(file),
                info: NetnsInfo {
                    name,
                    path: Some(path),
                    pid: None,
                },
            })
        }
        Target::Pid(pid) => {
            let path = format!("/proc/{pid}/ns/net");
            let file = File::open(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    anyhow!(
                        "no process with pid {pid} (or it has exited); {}",
                        known_list()
                    )
                } else {
                    anyhow!("cannot open {path}: {e} (needs root or CAP_SYS_PTRACE)")
                }
            })?;
            Ok(Opened {
                file: Some(file),
                info: NetnsInfo {
                    name: None,
                    path: Some(path),
                    pid: Some(*pid),
                },
            })
        }
    }
}

/// Whether an open file is a network namespace (the kernel says so: NS_GET_NSTYPE). Anything
/// else would only fail later, in setns() on a reader thread, long after the user typed it.
fn is_netns(f: &File) -> bool {
    // _IO(0xb7, 0x3) from linux/nsfs.h; answers the CLONE_NEW* type of a namespace file.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: an ioctl without argument on a valid fd; it only answers.
    let t = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE) };
    t == libc::CLONE_NEWNET
}

/// What identifies a namespace: its nsfs inode.
pub type NetnsId = (u64, u64);

pub fn identity(f: &File) -> Option<NetnsId> {
    f.metadata().ok().map(|m| (m.dev(), m.ino()))
}

/// Why the netns `target` names is no longer the one identified by `id` (deleted, created
/// again under the same name, its process exited); None while it still is.
pub fn gone(target: &Target, id: NetnsId) -> Option<String> {
    let path = match target {
        Target::Current => return None,
        Target::Netns(spec) if spec.contains('/') => spec.clone(),
        Target::Netns(spec) => format!("{NETNS_RUN_DIR}/{spec}"),
        Target::Pid(p) => format!("/proc/{p}/ns/net"),
    };
    match std::fs::metadata(&path) {
        Ok(m) if (m.dev(), m.ino()) == id => None,
        Ok(_) => Some(format!("{path} now names another netns")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(match target {
            Target::Pid(p) => format!("process {p} exited"),
            _ => format!("{path} was deleted"),
        }),
        Err(_) => None,
    }
}

/// Run `f` inside the netns (or right here for the current one).
pub fn run_in<T: Send>(file: Option<&File>, f: impl FnOnce() -> T + Send) -> Result<T> {
    let Some(file) = file else { return Ok(f()) };
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on this thread only; the fd is valid for the scope.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EPERM) {
                    bail!(
                        "entering another netns needs CAP_SYS_ADMIN: {}",
                        super::caps::how_to_fix(super::caps::CAP_SYS_ADMIN)
                    );
                }
                bail!("setns failed: {e} (is it a network namespace file?)");
            }
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow!("netns reader thread panicked"))?
    })
}
