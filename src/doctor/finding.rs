//! What the doctor says: findings (severity, what, evidence, cause, fix, the object named),
//! the one-line verdict and the exit status. Plain data, shared by the text, the JSON and the
//! TUI's Health pane.

use serde::Serialize;
use std::fmt;

/// How bad a finding is. The exit status is the worst one: ok/info 0, warn 1, fail 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Info,
    Warn,
    Fail,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Fail => "fail",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The node object a finding is about, by its index in the node's state (the TUI jumps there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "index", rename_all = "snake_case")]
pub enum Object {
    Sa(usize),
    Policy(usize),
    Route(usize),
    Rule(usize),
    Link(usize),
    Counter(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The node (netns name or hostname) the finding is on.
    pub node: String,
    pub severity: Severity,
    /// Stable id, documented in docs/doctor.md.
    pub id: &'static str,
    /// What is wrong (or right), in one sentence.
    pub what: String,
    /// The objects that show it, as `ip` prints them (keys never).
    pub evidence: Vec<String>,
    /// The likely cause.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cause: String,
    /// What to do: a command or a Cilium setting. The doctor never applies it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Object>,
    /// The xfrm_stat counter this finding explains, and by how much it rose in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<CounterRise>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CounterRise {
    pub name: String,
    pub delta: u64,
}

impl Finding {
    pub fn new(node: &str, severity: Severity, id: &'static str, what: String) -> Finding {
        Finding {
            node: node.to_string(),
            severity,
            id,
            what,
            evidence: vec![],
            cause: String::new(),
            fix: String::new(),
            object: None,
            counter: None,
        }
    }
    pub fn evidence(mut self, e: impl Into<String>) -> Finding {
        self.evidence.push(e.into());
        self
    }
    pub fn cause(mut self, c: impl Into<String>) -> Finding {
        self.cause = c.into();
        self
    }
    pub fn fix(mut self, f: impl Into<String>) -> Finding {
        self.fix = f.into();
        self
    }
    pub fn object(mut self, o: Object) -> Finding {
        self.object = Some(o);
        self
    }
    pub fn counter(mut self, name: &str, delta: u64) -> Finding {
        self.counter = Some(CounterRise {
            name: name.to_string(),
            delta,
        });
        self
    }
}

/// Everything the doctor concluded about a set of nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Node names in the order given.
    pub nodes: Vec<String>,
    /// Grouped by node (in `nodes` order), worst first within a node.
    pub findings: Vec<Finding>,
    pub verdict: String,
    pub worst: Severity,
    /// 0: nothing above info; 1: a warning; 2: a failure.
    pub exit_code: u8,
}

impl Report {
    pub fn new(nodes: Vec<String>, mut findings: Vec<Finding>) -> Report {
        let pos = |n: &str| nodes.iter().position(|x| x == n).unwrap_or(usize::MAX);
        findings.sort_by(|a, b| {
            pos(&a.node)
                .cmp(&pos(&b.node))
                .then(b.severity.cmp(&a.severity))
        });
        let worst = findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok);
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        let (fails, warns) = (count(Severity::Fail), count(Severity::Warn));
        let verdict = match worst {
            Severity::Fail | Severity::Warn => {
                let first = findings.iter().find(|f| f.severity == worst).unwrap();
                format!(
                    "{}: {fails} fail, {warns} warn on {} node(s); first: {}: {}",
                    worst.name().to_uppercase(),
                    nodes.len(),
                    first.node,
                    first.what
                )
            }
            _ => format!(
                "OK: nothing wrong found on {} node(s) ({} checks passed, {} notes)",
                nodes.len(),
                count(Severity::Ok),
                count(Severity::Info)
            ),
        };
        let exit_code = match worst {
            Severity::Fail => 2,
            Severity::Warn => 1,
            _ => 0,
        };
        Report {
            nodes,
            findings,
            verdict,
            worst,
            exit_code,
        }
    }

    pub fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    /// The text report: a block per node, one line per finding, its evidence, cause and fix
    /// indented under it; the verdict last.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for n in &self.nodes {
            let _ = writeln!(out, "== {n} ==");
            for f in self.findings.iter().filter(|f| &f.node == n) {
                let rise = f
                    .counter
                    .as_ref()
                    .map(|c| format!(" [{} +{}]", c.name, c.delta))
                    .unwrap_or_default();
                let _ = writeln!(out, "{:<4} {:<22} {}{rise}", f.severity, f.id, f.what);
                for e in &f.evidence {
                    let _ = writeln!(out, "       evidence: {e}");
                }
                if !f.cause.is_empty() {
                    let _ = writeln!(out, "       cause: {}", f.cause);
                }
                if !f.fix.is_empty() {
                    let _ = writeln!(out, "       fix: {}", f.fix);
                }
            }
        }
        let _ = writeln!(out, "verdict: {}", self.verdict);
        out
    }
}
