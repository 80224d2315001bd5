//! `hopscope bundle -o FILE.tar.gz`: what a ticket needs of a node in one archive that is safe
//! to attach — each node's state (JSON and text), a keyed hash of each SA's keys instead of the
//! keys (so two nodes' keys can be compared without them), the doctor's findings, the
//! iptables rules, and a short recording. Keys are in it only with `--show-keys`.

use super::writer::{self, Plan};
use crate::doctor::KeyHasher;
use crate::model::{Netfilter, NodeState};
use crate::source::{self, Target};
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The archive to write (a .tar.gz; what is in it: docs/record.md).
    #[arg(short = 'o', long = "output", value_name = "FILE.tar.gz")]
    pub out: PathBuf,
    /// How long the recording in the bundle runs (0: none).
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub duration: f64,
    /// Capture frames on this interface for the recording (repeatable).
    #[arg(short = 'i', long = "interface", value_name = "IF")]
    pub interfaces: Vec<String>,
    /// BPF capture filter for the recording's frames (e.g. "esp or icmp").
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,
    /// The secret the key hashes are keyed with. Bundles made with the same secret (one per
    /// incident, say) can be compared key by key; without it, a random one: the hashes compare
    /// only within this bundle.
    #[arg(
        long,
        value_name = "TEXT",
        env = "HOPSCOPE_HASH_SECRET",
        hide_env_values = true
    )]
    pub hash_secret: Option<String>,
    /// Put the XFRM keys into the bundle (snapshot and recording). Then it is a secret: do not
    /// attach it to a ticket.
    #[arg(long)]
    pub show_keys: bool,
}

/// One SA's identity and the keyed hash of its keys.
#[derive(Debug, Serialize)]
pub struct KeyHash {
    pub src: String,
    pub dst: String,
    pub proto: String,
    pub spi: String,
    pub reqid: u32,
    pub mark: Option<String>,
    /// HMAC-SHA256 (truncated) of the algorithm names and keys under the bundle's secret.
    pub key_hash: String,
}

/// The keyed hash of every SA of `st`.
pub fn key_hashes(st: &NodeState, keys: &KeyHasher) -> Vec<KeyHash> {
    st.xfrm_states
        .iter()
        .map(|x| KeyHash {
            src: x.src.clone(),
            dst: x.dst.clone(),
            proto: format!("{:?}", x.proto).to_lowercase(),
            spi: format!("0x{:08x}", x.spi),
            reqid: x.reqid,
            mark: x.mark.map(|m| format!("0x{:x}/0x{:x}", m.value, m.mask)),
            key_hash: keys.of(x),
        })
        .collect()
}

/// The files of one node: `DIR/snapshot.json`, `snapshot.txt`, `key-hashes.json`,
/// `netfilter.json` (or why the rules were not read).
pub fn node_files(
    dir: &str,
    st: &NodeState,
    netfilter: &Result<Netfilter>,
    keys: &KeyHasher,
    show_keys: bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    let stamp = crate::output::Stamp::now();
    let mut json = Vec::new();
    crate::view::json::write(st, &stamp, show_keys, true, &Default::default(), &mut json)?;
    json.push(b'\n');
    let mut files = vec![
        (format!("{dir}/snapshot.json"), json),
        (
            format!("{dir}/snapshot.txt"),
            crate::view::text::render(st, show_keys, &Default::default()).into_bytes(),
        ),
        (
            format!("{dir}/key-hashes.json"),
            serde_json::to_vec_pretty(&key_hashes(st, keys))?,
        ),
    ];
    files.push(match netfilter {
        Ok(n) => (
            format!("{dir}/netfilter.json"),
            serde_json::to_vec_pretty(n)?,
        ),
        Err(e) => (
            format!("{dir}/netfilter-not-read.txt"),
            format!("the iptables rules were not read: {e:#}\n").into_bytes(),
        ),
    });
    Ok(files)
}

/// A directory name for a node: its netns name or hostname, path characters replaced.
fn dir_name(st: &NodeState, taken: &[String]) -> String {
    let base: String = st
        .node
        .name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = if base.is_empty() || base.starts_with('.') {
        format!("node{base}")
    } else {
        base
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

fn readme(nodes: &[String], recorded: Option<&str>, show_keys: bool, shared: bool) -> String {
    let mut s = format!(
        "hopscope bundle, made by hopscope {} on {}.\n\n",
        env!("CARGO_PKG_VERSION"),
        jiff::Timestamp::now()
    );
    s += "What is in it:\n";
    for n in nodes {
        s += &format!(
            "  {n}/snapshot.json, snapshot.txt   the node's state (hopscope snapshot --json, and as text)\n\
             \x20 {n}/key-hashes.json              a keyed hash of each SA's keys\n\
             \x20 {n}/netfilter.json               the iptables rules as read\n"
        );
    }
    s += "  doctor.json, doctor.txt          the doctor's findings (hopscope doctor)\n";
    match recorded {
        Some(r) => {
            s += &format!(
                "  recording.hsrec                  {r}: hopscope replay recording.hsrec\n"
            )
        }
        None => s += "  (no recording: --duration 0)\n",
    }
    s += "\nWhat is not in it:\n";
    if show_keys {
        s += "  Nothing is held back: made with --show-keys, the XFRM keys ARE in it. It is a secret.\n";
    } else {
        s += "  XFRM keys: written as \"redacted\" in the snapshots and the recording. Compare keys by\n\
              \x20 key-hashes.json instead: ";
        s += if shared {
            "keyed with the secret given (--hash-secret), so bundles made with the same secret\n\
             \x20 compare key by key.\n"
        } else {
            "keyed with a random secret, so they compare only within this bundle\n\
             \x20 (give the same --hash-secret to bundles of several nodes to compare them).\n"
        };
    }
    s += "  Kubernetes objects beyond the names the recording learnt; pods' network namespaces\n\
          \x20 beyond the state the recording holds of them; frames on interfaces that were not\n\
          \x20 captured (-i).\n";
    s
}

/// A secret for the key hashes of one bundle.
fn random_secret() -> Result<Vec<u8>> {
    use std::io::Read;
    let mut b = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom for the key hashes' secret (or give --hash-secret)")?;
    Ok(b)
}

/// Write `files` as a gzipped tar to `out` (through a temporary name: a cut-off run leaves no
/// half archive under the name asked for).
fn write_archive(out: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    let part = out.with_extension("part");
    let f = std::fs::File::create(&part).with_context(|| format!("{}", part.display()))?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(mtime);
        h.set_cksum();
        tar.append_data(&mut h, format!("hopscope-bundle/{name}"), &bytes[..])
            .with_context(|| format!("{}: {name}", part.display()))?;
    }
    let gz = tar.into_inner()?;
    gz.finish()?.sync_all()?;
    std::fs::rename(&part, out).with_context(|| format!("{}", out.display()))?;
    Ok(())
}

/// `hopscope bundle`. Returns the signal that cut the recording short (0: none).
pub fn run(args: &BundleArgs, targets: Vec<Target>, kube: &crate::kube::KubeArgs) -> Result<i32> {
    anyhow::ensure!(
        args.duration.is_finite() && (0.0..=3600.0).contains(&args.duration),
        "--duration: between 0 and 3600 seconds"
    );
    if let Some(f) = &args.filter {
        crate::capture::check_filter(f, crate::capture::LinkType::Ethernet)?;
    }
    let secret = match &args.hash_secret {
        Some(s) => s.as_bytes().to_vec(),
        None => random_secret()?,
    };
    let keys = KeyHasher::new(secret);
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for t in &targets {
        let st = source::collect(t)?;
        let dir = dir_name(&st, &dirs);
        files.extend(node_files(
            &dir,
            &st,
            &source::collect_netfilter(t),
            &keys,
            args.show_keys,
        )?);
        dirs.push(dir);
    }
    // The doctor as `hopscope doctor --no-kube` runs it (its key hashes are its own).
    let doctor = crate::cmd::doctor::DoctorArgs {
        json: true,
        window: None,
        no_kube: true,
        from: None,
    };
    match crate::cmd::doctor::run(&doctor, &targets, &[], Default::default) {
        Ok((report, _)) => {
            files.push(("doctor.json".into(), serde_json::to_vec_pretty(&report)?));
            files.push(("doctor.txt".into(), report.render().into_bytes()));
        }
        Err(e) => files.push((
            "doctor-failed.txt".into(),
            format!("the doctor could not run: {e:#}\n").into_bytes(),
        )),
    }
    let mut signal = 0;
    let recorded = if args.duration > 0.0 {
        let rec = args.out.with_extension("hsrec.part");
        eprintln!(
            "hopscope: recording {} s for the bundle (Ctrl-C ends it early)",
            args.duration
        );
        let (targets, pods) = crate::source::pods::with_pods(targets.clone());
        signal = writer::run(&Plan {
            out: rec.clone(),
            targets,
            pods,
            interfaces: args.interfaces.clone(),
            filter: args.filter.clone(),
            duration: Some(Duration::from_secs_f64(args.duration)),
            show_keys: args.show_keys,
            limit_bytes: 16 << 20,
            interval: Duration::from_secs(1),
            snaplen: 262_144,
            note: Some("hopscope bundle".into()),
            progress: true,
            kube: kube.clone(),
        })?;
        let bytes = std::fs::read(&rec).with_context(|| format!("{}", rec.display()))?;
        let _ = std::fs::remove_file(&rec);
        files.push(("recording.hsrec".into(), bytes));
        Some(if signal == 0 {
            format!("{} s recorded", args.duration)
        } else {
            "recorded until interrupted".to_string()
        })
    } else {
        None
    };
    files.insert(
        0,
        (
            "README.txt".into(),
            readme(
                &dirs,
                recorded.as_deref(),
                args.show_keys,
                args.hash_secret.is_some(),
            )
            .into_bytes(),
        ),
    );
    write_archive(&args.out, &files)?;
    eprintln!(
        "hopscope: bundle of {} written to {} ({} files{}; README.txt says what is in it)",
        dirs.join(", "),
        args.out.display(),
        files.len(),
        if args.show_keys {
            "; WITH XFRM KEYS: a secret"
        } else {
            "; no keys"
        }
    );
    Ok(signal)
}
