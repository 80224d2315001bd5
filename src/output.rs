//! What every command's output shares, so scripts can rely on it: the JSON envelope (schema
//! name, version, when it was taken), control characters escaped in text (an interface named
//! `\x1b[2J` must not clear the operator's screen), a closed pipe ending output quietly, error
//! chains printed once, and the exit codes (docs/exit-codes.md).

use serde::Serialize;
use std::io::{self, Write};
use std::time::Instant;

/// A JSON document kind and the version of its schema (docs/schema/NAME.vVERSION.json).
/// A change to a document that a script could notice is a new version here and a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    pub name: &'static str,
    pub version: u32,
}

pub const SNAPSHOT: Schema = Schema {
    name: "snapshot",
    version: 1,
};
pub const TRACE: Schema = Schema {
    name: "trace",
    version: 1,
};
/// One per line of `capture --json` (packet, rates and summary lines alike).
pub const CAPTURE: Schema = Schema {
    name: "capture",
    version: 1,
};

pub const DOCTOR: Schema = Schema {
    name: "doctor",
    version: 1,
};

/// Every schema hopscope writes, for tests that check each has its file.
pub const SCHEMAS: &[Schema] = &[SNAPSHOT, TRACE, CAPTURE, DOCTOR];

impl Schema {
    /// The schema file's name under docs/schema/.
    pub fn file_name(&self) -> String {
        format!("{}.v{}.json", self.name, self.version)
    }
}

/// When a document's facts were read, and how long reading them took.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    taken_at: jiff::Timestamp,
    started: Instant,
}

impl Stamp {
    /// Call before reading anything: the document says this moment.
    pub fn now() -> Stamp {
        Stamp {
            taken_at: jiff::Timestamp::now(),
            started: Instant::now(),
        }
    }

    /// `body` with the envelope fields in front of its own (`body` must serialize as an
    /// object). Call when the facts are all read: the elapsed time is taken here.
    pub fn document<'a, T: Serialize + ?Sized>(
        &self,
        schema: Schema,
        body: &'a T,
    ) -> Document<'a, T> {
        Document {
            schema: schema.name,
            schema_version: schema.version,
            taken_at: self.taken_at.to_string(),
            elapsed_ms: (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            body,
        }
    }
}

/// The envelope every JSON document of hopscope carries (docs/json.md), its body flattened in.
#[derive(Debug, Serialize)]
pub struct Document<'a, T: Serialize + ?Sized> {
    pub schema: &'static str,
    pub schema_version: u32,
    /// RFC 3339, UTC: when reading started.
    pub taken_at: String,
    /// Milliseconds from then until the document was made.
    pub elapsed_ms: f64,
    #[serde(flatten)]
    pub body: &'a T,
}

/// A document written by another version of hopscope: refuse a schema this one cannot read.
pub fn check_version(doc: &serde_json::Value, schema: Schema) -> Result<(), String> {
    match doc.get("schema_version").and_then(|v| v.as_u64()) {
        // Written before the envelope existed: the same body as version 1.
        None => Ok(()),
        Some(v) if v <= u64::from(schema.version) => Ok(()),
        Some(v) => Err(format!(
            "it is a {} document of schema version {v}; this hopscope reads up to {}",
            schema.name, schema.version
        )),
    }
}

/// Exit statuses (docs/exit-codes.md). Usage errors are clap's 2; a signal ends with 128+N.
pub mod exit {
    /// Done; for `trace`, the flow is delivered (or leaves the last node given on the wire).
    pub const OK: u8 = 0;
    /// Could not do what was asked: an error message says why.
    pub const ERROR: u8 = 1;
    /// The command line is wrong (unknown option, bad value): the message lists what is valid.
    pub const USAGE: u8 = 2;
    /// `trace`: the predicted path stops (no route, no SA, a drop rule, …).
    pub const TRACE_STOPS: u8 = 3;
    /// `trace --follow`: the flow's packets were not seen at every observable hop.
    pub const TRACE_NOT_SEEN: u8 = 4;
}

/// `e` and its causes on one line, each cause once: libraries often repeat their source in
/// their own message (`reading x: No such file (os error 2): No such file (os error 2)`).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Print `hopscope: ERROR` on stderr, control characters escaped.
pub fn print_error(e: &anyhow::Error) {
    let mut err = Escaped::new(io::stderr().lock());
    let _ = writeln!(err, "hopscope: {}", error_chain(e));
}

/// Text with its control characters written as escapes (`\x1b`, `\u{9b}`); newlines and tabs
/// stay. For text meant for a terminal.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out.into()
}

fn needs_escape(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

fn push_escape(out: &mut String, c: char) {
    use std::fmt::Write as _;
    let n = u32::from(c);
    let _ = if n < 0x80 {
        write!(out, "\\x{n:02x}")
    } else {
        write!(out, "\\u{{{n:x}}}")
    };
}

/// A writer that escapes control characters on their way to `inner` (as `escape_controls`).
/// Bytes that are not UTF-8 pass through; a C1 control split across two writes is held back
/// until its second byte comes.
pub struct Escaped<W: Write> {
    inner: W,
    /// The first byte (0xC2) of a two-byte character whose second byte has not come yet.
    pending: bool,
}

impl<W: Write> Escaped<W> {
    pub fn new(inner: W) -> Self {
        Escaped {
            inner,
            pending: false,
        }
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for Escaped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(buf.len() + 16);
        let mut start = 0;
        if std::mem::take(&mut self.pending) {
            match buf.first() {
                Some(&b) if (0x80..0xa0).contains(&b) => {
                    out.extend_from_slice(format!("\\u{{{b:x}}}").as_bytes());
                    start = 1;
                }
                _ => out.push(0xc2),
            }
        }
        let mut i = start;
        while i < buf.len() {
            let b = buf[i];
            if (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f {
                out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
            } else if b == 0xc2 {
                match buf.get(i + 1) {
                    Some(&n) if (0x80..0xa0).contains(&n) => {
                        out.extend_from_slice(format!("\\u{{{n:x}}}").as_bytes());
                        i += 1;
                    }
                    Some(_) => out.push(b),
                    None => self.pending = true,
                }
            } else {
                out.push(b);
            }
            i += 1;
        }
        self.inner.write_all(&out)
    }

    fn flush(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.pending) {
            self.inner.write_all(&[0xc2])?;
        }
        self.inner.flush()
    }
}

/// A closed pipe (`| head`) ends output without an error: the reader has what it wanted.
pub fn ok_if_closed(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// Is stdout a pipe or socket whose reader has gone? (poll says POLLERR/POLLHUP at once, so
/// an idle `capture | head -1` ends without waiting for a packet to write.)
pub fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n == 1 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_in_strings_and_streams() {
        let evil = "eth0\x1b[2J\x1b]0;owned\x07\u{9b}31m ok\n\tnext";
        let want = "eth0\\x1b[2J\\x1b]0;owned\\x07\\u{9b}31m ok\n\tnext";
        assert_eq!(escape_controls(evil), want);
        assert_eq!(escape_controls("plain é ✓"), "plain é ✓");
        // Byte by byte through the writer: the C1 character is split across writes.
        let mut w = Escaped::new(Vec::new());
        for b in evil.as_bytes() {
            w.write_all(&[*b]).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(String::from_utf8(w.inner).unwrap(), want);
        let mut w = Escaped::new(Vec::new());
        write!(w, "{evil} é").unwrap();
        assert_eq!(String::from_utf8(w.inner).unwrap(), format!("{want} é"));
    }

    #[test]
    fn error_causes_are_printed_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        #[derive(Debug)]
        struct Repeats(std::io::Error);
        impl std::fmt::Display for Repeats {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "failed to read: {}", self.0)
            }
        }
        impl std::error::Error for Repeats {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = anyhow::Error::new(Repeats(io)).context("reading kubeconfig /x");
        let text = error_chain(&e);
        assert_eq!(text.matches("not found").count(), 1, "{text}");
        assert!(
            text.starts_with("reading kubeconfig /x: failed to read"),
            "{text}"
        );
    }

    #[test]
    fn documents_carry_the_envelope_first() {
        let body = serde_json::json!({"a": 1});
        let v = serde_json::to_value(Stamp::now().document(TRACE, &body)).unwrap();
        assert_eq!(v["schema"], "trace");
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["a"], 1);
        assert!(v["taken_at"].as_str().unwrap().ends_with('Z'));
        assert!(check_version(&v, TRACE).is_ok());
        let newer = serde_json::json!({"schema_version": 99});
        assert!(check_version(&newer, TRACE).is_err());
    }
}
