//! Sending hopscope's own static binary into a stock image, so `attach` needs no image anyone
//! has to publish: the bytes go over the pod's exec stream into an emptyDir, and the pod's own
//! `sha256sum` of what arrived must equal the sha256 of what was sent before anything runs it.
//!
//! Only static executables are sent: a dynamically linked one would look for its loader and
//! libraries in the base image and fail there with a bare "not found".

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use sha2::{Digest, Sha256};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The stock image the binary is sent into unless `--base-image` says otherwise: small,
/// everywhere, and it has the shell, `head` and `sha256sum` the upload needs.
pub const DEFAULT_BASE_IMAGE: &str = "docker.io/library/busybox:1.37";
/// Where the pod's emptyDir is mounted (the root filesystem stays read-only).
pub const BIN_DIR: &str = "/hopscope";
/// The uploaded executable, once its hash is checked.
pub const BIN_PATH: &str = "/hopscope/hopscope";
/// Bytes per websocket frame on the stdin channel.
const CHUNK: usize = 64 * 1024;
/// No chunk accepted for this long: the stream is dead.
const STALL: Duration = Duration::from_secs(30);
/// After the last byte, the pod has this long to hash it and answer.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);
/// Larger than any hopscope build by far; refuses to read /dev/zero into memory.
const MAX_BINARY: u64 = 256 << 20;
/// Output of the upload command kept for messages.
const MAX_OUTPUT: u64 = 64 * 1024;

/// The executable to send, read and hashed.
pub struct Payload {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// Lowercase hex.
    pub sha256: String,
    /// Kubernetes' name for its architecture (`amd64`, `arm64`, …).
    pub arch: String,
}

/// The binary to send: `--binary PATH`, else this very executable.
pub fn payload(explicit: Option<&Path>) -> Result<Payload> {
    let (path, what) = match explicit {
        Some(p) => (p.to_path_buf(), format!("--binary {}", p.display())),
        None => (
            PathBuf::from("/proc/self/exe"),
            format!(
                "this hopscope ({})",
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "/proc/self/exe".into())
            ),
        ),
    };
    let bytes = read_bounded(&path).with_context(|| format!("reading {what}"))?;
    let facts = elf_facts(&bytes).map_err(|e| anyhow!("{what}: {e}"))?;
    if let Some(interp) = facts.interpreter {
        bail!(
            "{what} is dynamically linked (it needs {interp}), so it cannot run in a stock \
             image: build the static one with packaging/build-static.sh and pass `--binary \
             target/static/hopscope`, or give `--image` an image that has hopscope in it"
        );
    }
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok(Payload {
        path,
        bytes,
        sha256,
        arch: facts.arch,
    })
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    f.take(MAX_BINARY + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BINARY {
        bail!("larger than {} MiB: not a hopscope build", MAX_BINARY >> 20);
    }
    Ok(bytes)
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What `payload` needs to know of an executable.
#[derive(Debug, PartialEq, Eq)]
pub struct ElfFacts {
    pub arch: String,
    /// The program interpreter (PT_INTERP) of a dynamically linked executable.
    pub interpreter: Option<String>,
}

pub fn elf_facts(bytes: &[u8]) -> Result<ElfFacts> {
    use object::elf;
    use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
    let file = ElfFile64::<object::Endianness>::parse(bytes)
        .map_err(|e| anyhow!("not a 64-bit ELF executable ({e})"))?;
    let endian = file.endian();
    let mut interpreter = None;
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) == elf::PT_INTERP {
            let raw = ph
                .data(endian, bytes)
                .map_err(|_| anyhow!("its program interpreter cannot be read"))?;
            let s = String::from_utf8_lossy(raw);
            interpreter = Some(s.trim_end_matches('\0').to_string());
        }
    }
    let arch = match file.elf_header().e_machine(endian) {
        elf::EM_X86_64 => "amd64",
        elf::EM_AARCH64 => "arm64",
        elf::EM_PPC64 => "ppc64le",
        elf::EM_S390 => "s390x",
        elf::EM_RISCV => "riscv64",
        m => return Err(anyhow!("an executable for an unknown machine ({m})")),
    };
    Ok(ElfFacts {
        arch: arch.into(),
        interpreter,
    })
}

/// The node runs what the binary was built for (`status.nodeInfo.architecture`).
pub fn check_arch(p: &Payload, node: &str, node_arch: Option<&str>) -> Result<()> {
    match node_arch {
        Some(a) if a != p.arch => bail!(
            "node {node} is {a}, but {} is built for {}: pass `--binary` with a static \
             {a} build (packaging/build-static.sh on an {a} machine)",
            p.path.display(),
            p.arch
        ),
        _ => Ok(()),
    }
}

/// What runs in the pod: the tools checked, `ready` said, then exactly `$1` bytes from stdin
/// into the emptyDir `$3`, their sha256 printed and compared with `$2`, and only on a match
/// made executable under its final name. Nothing is sent before `ready`, so a missing tool is
/// the whole answer rather than a stream cut while sending. `head -c` and not `cat`: the end
/// of the data needs no end of stdin, which the v4 protocol cannot send without closing the
/// whole stream (and with it the answer).
const SCRIPT: &str = r#"set -e
for t in head sha256sum chmod mv rm; do
  found=$(command -v "$t") || missing="$missing $t"
done
if [ -n "$missing" ]; then
  echo "hopscope: not in this image:$missing" >&2
  exit 127
fi
cd "$3"
echo ready
head -c "$1" > .hopscope.part
got=$(sha256sum .hopscope.part)
got=${got%% *}
echo "sha256 $got"
if [ "$got" != "$2" ]; then
  rm -f .hopscope.part
  echo "hopscope: sha256 of what arrived differs from what was sent" >&2
  exit 3
fi
chmod 755 .hopscope.part
mv -f .hopscope.part hopscope
"#;

pub fn upload_command(p: &Payload) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        SCRIPT.into(),
        "hopscope-upload".into(),
        p.bytes.len().to_string(),
        p.sha256.clone(),
        BIN_DIR.into(),
    ]
}

/// The sha256 the pod printed, if it got that far.
pub fn reported_sha(stdout: &str) -> Option<&str> {
    stdout.lines().rev().find_map(|l| l.strip_prefix("sha256 "))
}

/// Progress on stderr: a line that updates on a terminal, a first and last line otherwise.
struct Progress {
    tty: bool,
    total: usize,
    start: Instant,
    shown: Instant,
}

impl Progress {
    fn new(total: usize, to: &str) -> Progress {
        let tty = std::io::stderr().is_terminal();
        if !tty {
            eprintln!("hopscope: uploading hopscope ({}) to {to}", mb(total));
        }
        let start = Instant::now();
        Progress {
            tty,
            total,
            start,
            shown: start,
        }
    }

    fn sent(&mut self, n: usize) {
        if self.tty && (self.shown.elapsed() >= Duration::from_millis(100) || n == self.total) {
            self.shown = Instant::now();
            eprint!(
                "\r\x1b[2Khopscope: uploading hopscope: {} of {} ({}%)",
                mb(n),
                mb(self.total),
                n * 100 / self.total.max(1)
            );
        }
    }

    fn done(&self, sha: &str) {
        if self.tty {
            eprintln!();
        }
        let secs = self.start.elapsed().as_secs_f64();
        eprintln!(
            "hopscope: uploaded {} in {secs:.1}s ({}/s), sha256 {} checked in the pod",
            mb(self.total),
            mb((self.total as f64 / secs.max(0.001)) as usize),
            &sha[..12.min(sha.len())]
        );
    }
}

fn mb(n: usize) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}

async fn collect(r: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let mut buf = Vec::new();
    if let Some(r) = r {
        let _ = r.take(MAX_OUTPUT).read_to_end(&mut buf).await;
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Send the payload into the running pod and check it arrived whole. `image` is for messages.
pub async fn upload(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    image: &str,
    p: &Payload,
) -> Result<()> {
    let ns = pods.namespace().unwrap_or("default").to_string();
    let doing = format!("upload hopscope to pod {ns}/{pod}");
    let ap = AttachParams::default()
        .container(container)
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .tty(false)
        .max_stdin_buf_size(CHUNK);
    let mut proc = super::attach::timed(pods.exec(pod, upload_command(p), &ap))
        .await
        .map_err(|e| {
            anyhow!(super::attach::explain(
                &e,
                "create",
                "pods/exec",
                &ns,
                &doing
            ))
        })?;
    let mut stdin = proc.stdin().ok_or_else(|| anyhow!("{doing}: no stdin"))?;
    let mut stdout = proc.stdout().ok_or_else(|| anyhow!("{doing}: no stdout"))?;
    // `ready`, or the end of stdout: the command failed before reading anything.
    let mut said_first = Vec::new();
    let ready = tokio::time::timeout(super::attach::CALL_TIMEOUT, async {
        let mut b = [0u8; 512];
        loop {
            match stdout.read(&mut b).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => said_first.extend_from_slice(&b[..n]),
            }
            if said_first.windows(6).any(|w| w == b"ready\n") {
                return true;
            }
        }
    })
    .await;
    let out = tokio::spawn(collect(Some(stdout)));
    let err = tokio::spawn(collect(proc.stderr()));
    let status = proc.take_status();
    let mut status = std::pin::pin!(async move {
        match status {
            Some(s) => s.await,
            None => None,
        }
    });
    let mut progress = Progress::new(p.bytes.len(), &format!("pod {ns}/{pod}"));
    let mut sent = 0;
    let sending = async {
        match ready {
            Ok(true) => {}
            Ok(false) => return None,
            Err(_) => {
                return Some(format!(
                    "the pod did not start reading within {}s",
                    super::attach::CALL_TIMEOUT.as_secs()
                ));
            }
        }
        for chunk in p.bytes.chunks(CHUNK) {
            match tokio::time::timeout(STALL, stdin.write_all(chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Some(format!("the stream closed after {} ({e})", mb(sent))),
                Err(_) => {
                    return Some(format!(
                        "no progress for {}s after {}",
                        STALL.as_secs(),
                        mb(sent)
                    ));
                }
            }
            sent += chunk.len();
            progress.sent(sent);
        }
        None
    };
    // The command in the pod may end before it has read everything (a missing tool): its
    // answer then ends the sending, which would otherwise wait for room forever.
    let (mut broke, ended) = tokio::select! {
        broke = sending => (broke, None),
        s = &mut status => (None, Some(s)),
    };
    if progress.tty && (broke.is_some() || ended.is_some()) {
        eprintln!();
    }
    // stdin stays open until the answer: closing it over v4 closes the whole stream.
    let status = match ended {
        Some(None) => {
            broke = Some(format!("the stream ended after {}", mb(sent)));
            None
        }
        Some(s) => s,
        None if broke.is_some() => None,
        None => tokio::time::timeout(VERIFY_TIMEOUT, &mut status)
            .await
            .ok()
            .flatten(),
    };
    if status.is_none() {
        proc.abort();
    }
    let wait = Duration::from_secs(2);
    let stdout = String::from_utf8_lossy(&said_first).into_owned()
        + &tokio::time::timeout(wait, out)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
    let stderr = tokio::time::timeout(wait, err)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    drop(stdin);
    let _ = tokio::time::timeout(wait, proc.join()).await;

    let said = stderr.trim();
    let said = if said.is_empty() {
        String::new()
    } else {
        format!("; the pod said: {said}")
    };
    let Some(status) = status else {
        bail!(
            "{doing}: {}{said}",
            broke.unwrap_or_else(|| format!(
                "no answer within {}s after the last byte",
                VERIFY_TIMEOUT.as_secs()
            ))
        );
    };
    let arrived = reported_sha(&stdout);
    match arrived {
        Some(got) if got != p.sha256 => bail!(
            "{doing}: the binary arrived damaged: sent sha256 {}, the pod has {got} \
             ({} sent); it was not run",
            p.sha256,
            mb(sent)
        ),
        _ => {}
    }
    if status.status.as_deref() != Some("Success") {
        bail!(
            "{doing}: {}{said}; the base image {image} needs sh, head and sha256sum \
             (busybox, alpine, debian, ubuntu…): choose one with --base-image",
            if status.message.as_deref().unwrap_or("").is_empty() {
                "the upload command failed".to_string()
            } else {
                format!(
                    "the upload command failed: {}",
                    status.message.unwrap_or_default()
                )
            }
        );
    }
    if arrived != Some(p.sha256.as_str()) {
        bail!(
            "{doing}: the pod did not report the sha256 of what arrived (it said {:?}); it \
             was not run",
            stdout.trim()
        );
    }
    progress.done(&p.sha256);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-byte ELF64 header for `machine`, with one PT_INTERP program header when asked.
    fn elf(machine: u16, interp: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // 64-bit
        b[5] = 1; // little endian
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        if let Some(i) = interp {
            b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
            b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
            ph[8..16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
            let len = i.len() as u64 + 1;
            ph[32..40].copy_from_slice(&len.to_le_bytes()); // p_filesz
            ph[40..48].copy_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&ph);
            b.extend_from_slice(i.as_bytes());
            b.push(0);
        }
        b
    }

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        let s = elf_facts(&elf(62, None)).unwrap();
        assert_eq!(s.arch, "amd64");
        assert_eq!(s.interpreter, None);
        let d = elf_facts(&elf(183, Some("/lib/ld-linux-aarch64.so.1"))).unwrap();
        assert_eq!(d.arch, "arm64");
        assert_eq!(d.interpreter.as_deref(), Some("/lib/ld-linux-aarch64.so.1"));
        assert!(elf_facts(b"#!/bin/sh\n").is_err());
        assert!(elf_facts(&elf(3, None)).is_err());
    }

    #[test]
    fn the_sha_line_is_found() {
        assert_eq!(reported_sha("x\nsha256 abc\n"), Some("abc"));
        assert_eq!(reported_sha(""), None);
    }
}
