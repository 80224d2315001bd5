//! `trace --follow` locks down while it follows (the packets it decodes are anyone's bytes),
//! yet reads each node's counters once more when the following ends. That re-read is done by
//! a helper, `hopscope snapshot --json --when-told`, started per node before the lock-down
//! with the rights a read needs: it waits for a line on its stdin, then reads the node and
//! prints the snapshot document, which the locked-down run only parses.

use crate::model::NodeState;
use crate::source::Target;
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

/// One node's re-read, waiting to be asked.
pub struct Reread {
    child: Child,
    node: String,
}

impl Reread {
    /// Start the helper for `target` (named `node` in errors). It reads nothing until asked.
    pub fn start(target: &Target, node: &str) -> Result<Reread> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("/proc/self/exe");
        cmd.args(["snapshot", "--json", "--when-told", "--no-kube"]);
        match target {
            Target::Current => {}
            Target::Netns(n) => {
                cmd.args(["--netns", n]);
            }
            Target::Pid(p) => {
                cmd.args(["--pid", &p.to_string()]);
            }
        }
        // Its own process group: the Ctrl-C that ends the following must not end it too.
        let child = cmd
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the re-read of {node}"))?;
        Ok(Reread {
            child,
            node: node.to_string(),
        })
    }

    /// Ask, and parse the answer. Only reads and writes descriptors already open (allowed by
    /// the lock-down); the helper is not waited for (it exits on its own).
    pub fn finish(mut self) -> Result<NodeState> {
        let node = &self.node;
        let mut stdin = self.child.stdin.take().context("the helper's stdin")?;
        stdin
            .write_all(b"\n")
            .with_context(|| format!("asking for the re-read of {node}"))?;
        drop(stdin);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let max = crate::input::limit::STATE;
        if let Some(o) = self.child.stdout.take() {
            o.take(max + 1)
                .read_to_end(&mut out)
                .with_context(|| format!("reading the re-read of {node}"))?;
        }
        if out.len() as u64 > max {
            bail!("the re-read of {node} is larger than a snapshot may be");
        }
        if let Some(e) = self.child.stderr.take() {
            let _ = e.take(64 << 10).read_to_end(&mut err);
        }
        let text = String::from_utf8_lossy(&out);
        if text.trim().is_empty() {
            bail!(
                "re-reading {node} after following failed: {}",
                String::from_utf8_lossy(&err).trim()
            );
        }
        super::trace::parse_state(&text).with_context(|| format!("the re-read of {node}"))
    }
}
