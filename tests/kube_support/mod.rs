//! A fake Kubernetes API server for the kube tests: plain HTTP/1.1 on 127.0.0.1, std only.
//!
//! Why std-only and not hyper/axum: the fake must misbehave on purpose (accept and never
//! answer, hold a watch open and push events when the test says so, refuse an upgrade), and a
//! thread per connection with blocking writes makes each of those one line; it needs no async
//! runtime in the tests and no extra dev-dependency. It speaks the shape kube-rs sends and a
//! real API server answers: list objects (`kind: PodList`, `metadata.resourceVersion`),
//! `?watch=true` as a chunked stream of `{"type":…,"object":…}` lines, `Status` objects for
//! errors, a plain-text `404 page not found` for an API group that does not exist (no CRD).
//! The objects are recorded in tests/fixtures/kube/ in the JSON a cluster returns.
//!
//! `pods/exec` and `pods/attach` speak the remotecommand websocket subprotocols as the API
//! server relays them from the kubelet: `v5.channel.k8s.io` or `v4.channel.k8s.io` (whichever
//! the client offers and the test allows), one byte of channel before every binary frame —
//! 0 stdin, 1 stdout, 2 stderr, 3 the error channel with the exit `Status`, 4 resize, and on
//! v5 the 255 close signal — and an empty frame on each output channel when the stream opens.
//! An exec really runs its command, in a chroot that stands for the container's filesystem
//! (`Container::busybox`: the default base image's tools), so what the client sends is what
//! those tools get.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kube")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// How the whole server behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Every request: 500 with a Status (etcd timing out).
    Fail500,
    /// Accept, read the request, never answer.
    Hang,
    /// Gone (a restarting API server, a dropped network): every connection is closed at once,
    /// without an answer, and the watches open are cut off mid-stream.
    Down,
}

/// What the attach (websocket upgrade) request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachReply {
    /// 500 Status "error dialing backend" (the kubelet cannot be reached).
    DialError,
    /// 403 Status: no `create` on `pods/attach`.
    Forbidden,
    /// Read the upgrade request and never answer (a connection that died on the way).
    Hang,
    /// Accept the websocket upgrade (v5.channel.k8s.io), send `stdout` on channel 1, then the
    /// exit status on channel 3 as the kubelet does, then close.
    Stream { stdout: String, exit: i32 },
}

/// The container an exec runs in: a directory to chroot into, laid out like the base image.
pub struct Container {
    pub root: PathBuf,
}

impl Container {
    /// busybox's applets as `/bin/*` (the default base image) and an empty `/hopscope` (the
    /// pod's emptyDir); `None` where there is no static busybox or no root to chroot.
    pub fn busybox(under: &Path, applets: &[&str]) -> Option<Container> {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())?;
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let root = under.join("container");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("hopscope")).unwrap();
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        for a in applets {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        Some(Container { root })
    }

    /// A file of the container, by its path there (`/hopscope/hopscope`).
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }
}

/// The applets the upload and the idle pod use (`sh -c` with `head`, `sha256sum`, …).
pub const APPLETS: [&str; 7] = ["sh", "head", "sha256sum", "chmod", "mv", "rm", "sleep"];

pub struct State {
    pub mode: Mode,
    /// List responses by collection path (`/api/v1/pods`).
    pub lists: BTreeMap<String, Value>,
    /// Collection paths that answer a plain `404 page not found` (no such API group).
    pub missing: Vec<String>,
    /// Events a watch on that collection path sends next (`{"type","object"}`); an event of
    /// type `END` is not sent but ends the watch there (the server's own timeout).
    pub watch_queue: BTreeMap<String, VecDeque<Value>>,
    /// A watch on that path from a resourceVersion below this one is too old (the watch cache
    /// moved on after an etcd compaction): the API server answers 200 and one ERROR event with
    /// the 410 Expired Status, and ends the stream.
    pub expired_below: BTreeMap<String, u64>,
    /// `METHOD path?query` of every request, in order.
    pub log: Vec<String>,
    /// Pods created with POST, by name (with the status they currently show).
    pub created: BTreeMap<String, Value>,
    /// The statuses a created pod shows on successive GETs; the last one repeats.
    pub pod_statuses: Vec<Value>,
    pub pod_gets: usize,
    /// (method, path suffix) → the Status to answer with.
    pub refuse: Vec<(String, String, Value)>,
    pub events: Value,
    pub attach: AttachReply,
    /// Websocket messages the client sent on the attach stream: (channel, payload).
    pub ws_received: Vec<(u8, Vec<u8>)>,
    /// The attach stream answers only once the client sent a frame on this channel (stdin 0,
    /// terminal size 4), as a process that reads it would; at most 10 s. None: at once.
    pub attach_waits_for: Option<u8>,
    /// Subprotocols the server accepts, in its order of preference.
    pub protocols: Vec<String>,
    /// Where an exec runs; without one, exec answers 500 "container not found".
    pub container: Option<Container>,
    /// The command of every exec, in order.
    pub execs: Vec<Vec<String>>,
    /// Flip the stdin byte at this offset on its way to an exec'd command (a damaged upload).
    pub corrupt_stdin_at: Option<usize>,
    /// The subprotocol of each websocket stream, in order.
    pub negotiated: Vec<String>,
    /// Frames and bytes that came on the stdin channel of execs.
    pub stdin_frames: usize,
    pub stdin_bytes: usize,
}

pub struct FakeApi {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    dir: PathBuf,
}

impl FakeApi {
    /// A server with the seed cluster's objects (tests/fixtures/kube).
    pub fn start() -> FakeApi {
        let mut lists = BTreeMap::new();
        lists.insert("/api/v1/pods".into(), fixture("pods.json"));
        lists.insert("/api/v1/nodes".into(), fixture("nodes.json"));
        lists.insert("/api/v1/services".into(), fixture("services.json"));
        lists.insert(
            "/apis/cilium.io/v2/ciliumnodes".into(),
            fixture("ciliumnodes.json"),
        );
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Normal,
            lists,
            missing: vec![],
            watch_queue: BTreeMap::new(),
            expired_below: BTreeMap::new(),
            log: vec![],
            created: BTreeMap::new(),
            pod_statuses: vec![json!({"phase": "Running"})],
            pod_gets: 0,
            refuse: vec![],
            events: json!({"kind": "EventList", "apiVersion": "v1", "metadata": {"resourceVersion": "1600"}, "items": []}),
            attach: AttachReply::DialError,
            ws_received: vec![],
            attach_waits_for: None,
            protocols: vec!["v5.channel.k8s.io".into(), "v4.channel.k8s.io".into()],
            container: None,
            execs: vec![],
            corrupt_stdin_at: None,
            negotiated: vec![],
            stdin_frames: 0,
            stdin_bytes: 0,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (st, sp) = (st.clone(), sp.clone());
                        std::thread::spawn(move || {
                            let _ = serve(conn, &st, &sp);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        let dir = std::env::temp_dir().join(format!("hopscope-kube-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = FakeApi {
            port,
            state,
            stop,
            dir,
        };
        std::fs::write(
            fake.kubeconfig(),
            kubeconfig(&format!("http://127.0.0.1:{port}")),
        )
        .unwrap();
        fake
    }

    /// A kubeconfig whose current context points at this server.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A directory for the test to put files in (removed with the server).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn log(&self) -> Vec<String> {
        self.with(|s| s.log.clone())
    }

    /// Wait until a request matching `pred` was logged (at most `limit`).
    pub fn wait_for(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.log().iter().any(|l| pred(l)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn push_watch_event(&self, path: &str, kind: &str, object: Value) {
        self.with(|s| {
            s.watch_queue
                .entry(path.into())
                .or_default()
                .push_back(json!({"type": kind, "object": object}))
        });
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- cluster:
    server: {server}
  name: kind-cilium-ipsec-native-routing
contexts:
- context:
    cluster: kind-cilium-ipsec-native-routing
    namespace: default
    user: kind-cilium-ipsec-native-routing
  name: kind-cilium-ipsec-native-routing
current-context: kind-cilium-ipsec-native-routing
users:
- name: kind-cilium-ipsec-native-routing
  user:
    token: fake-token-for-tests
"
    )
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn respond(c: &mut TcpStream, code: u16, body: &str, ctype: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    };
    write!(
        c,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    c.flush()
}

fn json_reply(c: &mut TcpStream, code: u16, v: &Value) -> std::io::Result<()> {
    respond(c, code, &v.to_string(), "application/json")
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            v.replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%2F", "/")
        })
    })
}

fn serve(mut c: TcpStream, st: &Arc<Mutex<State>>, stop: &AtomicBool) -> std::io::Result<()> {
    let mut r = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut len = 0usize;
    let mut upgrade = false;
    let mut ws_key = String::new();
    let mut offered: Vec<String> = vec![];
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("upgrade:") {
            upgrade = true;
        }
        if lower.starts_with("sec-websocket-key:") {
            ws_key = h["sec-websocket-key:".len()..].trim().to_string();
        }
        if let Some(v) = lower.strip_prefix("sec-websocket-protocol:") {
            offered = v.split(',').map(|p| p.trim().to_string()).collect();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (path, query) = (path.to_string(), query.to_string());
    let mode = {
        let mut s = st.lock().unwrap();
        s.log.push(format!("{method} {target}"));
        s.mode
    };
    match mode {
        Mode::Hang => {
            let end = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
            return Ok(());
        }
        Mode::Fail500 => {
            return json_reply(&mut c, 500, &fixture("status-500.json"));
        }
        Mode::Down => return Ok(()),
        Mode::Normal => {}
    }
    let refused = st
        .lock()
        .unwrap()
        .refuse
        .iter()
        .find(|(m, suffix, _)| *m == method && path.ends_with(suffix.as_str()))
        .map(|(_, _, v)| v.clone());
    if let Some(v) = refused {
        let code = v["code"].as_u64().unwrap_or(403) as u16;
        return json_reply(&mut c, code, &v);
    }

    // Collections: list or watch.
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let watching = query_param(&query, "watch").as_deref() == Some("true");
    if st.lock().unwrap().missing.contains(&path) {
        return respond(
            &mut c,
            404,
            "404 page not found\n",
            "text/plain; charset=utf-8",
        );
    }
    let list = st.lock().unwrap().lists.get(&path).cloned();
    if let (Some(list), "GET") = (&list, method.as_str()) {
        if watching {
            return watch(&mut c, st, stop, &path, &query);
        }
        let mut list = list.clone();
        if let Some(sel) = query_param(&query, "fieldSelector")
            && let Some(name) = sel.strip_prefix("metadata.name=")
        {
            let items: Vec<Value> = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["metadata"]["name"] == name)
                .cloned()
                .collect();
            list["items"] = Value::Array(items);
        }
        return json_reply(&mut c, 200, &list);
    }

    match (method.as_str(), &segs[..]) {
        // One node.
        ("GET", ["api", "v1", "nodes", name]) => {
            let nodes = st.lock().unwrap().lists["/api/v1/nodes"].clone();
            match nodes["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["metadata"]["name"] == *name)
            {
                Some(n) => json_reply(&mut c, 200, &with_kind(n, "v1", "Node")),
                None => json_reply(
                    &mut c,
                    404,
                    &status(404, "NotFound", &format!("nodes \"{name}\" not found")),
                ),
            }
        }
        // Namespaced collections: pods, services, events.
        ("GET", ["api", "v1", "namespaces", ns, coll]) => {
            if *coll == "events" {
                let ev = st.lock().unwrap().events.clone();
                return json_reply(&mut c, 200, &ev);
            }
            let all = st
                .lock()
                .unwrap()
                .lists
                .get(&format!("/api/v1/{coll}"))
                .cloned();
            let Some(mut all) = all else {
                return respond(&mut c, 404, "404 page not found\n", "text/plain");
            };
            let items: Vec<Value> = all["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["metadata"]["namespace"] == *ns)
                .cloned()
                .collect();
            all["items"] = Value::Array(items);
            json_reply(&mut c, 200, &all)
        }
        ("POST", ["api", "v1", "namespaces", ns, "pods"]) => {
            let mut pod: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
            pod["metadata"]["uid"] = json!("5b7e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4");
            pod["metadata"]["resourceVersion"] = json!("1590");
            pod["metadata"]["creationTimestamp"] = json!("2024-05-21T03:30:00Z");
            pod["metadata"]["namespace"] = json!(ns);
            pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            st.lock().unwrap().created.insert(name, pod.clone());
            json_reply(&mut c, 201, &pod)
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => {
            let mut s = st.lock().unwrap();
            if let Some(mut pod) = s.created.get(*name).cloned() {
                let i = s.pod_gets.min(s.pod_statuses.len() - 1);
                s.pod_gets += 1;
                pod["status"] = s.pod_statuses[i].clone();
                return json_reply(&mut c, 200, &pod);
            }
            let found = s.lists["/api/v1/pods"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["metadata"]["name"] == *name && p["metadata"]["namespace"] == *ns)
                .cloned();
            drop(s);
            match found {
                Some(p) => json_reply(&mut c, 200, &with_kind(&p, "v1", "Pod")),
                None => json_reply(
                    &mut c,
                    404,
                    &status(404, "NotFound", &format!("pods \"{name}\" not found")),
                ),
            }
        }
        ("GET", ["api", "v1", "namespaces", ns, "services", name]) => {
            let s = st.lock().unwrap();
            let found = s.lists["/api/v1/services"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["metadata"]["name"] == *name && p["metadata"]["namespace"] == *ns)
                .cloned();
            drop(s);
            match found {
                Some(p) => json_reply(&mut c, 200, &with_kind(&p, "v1", "Service")),
                None => json_reply(
                    &mut c,
                    404,
                    &status(404, "NotFound", &format!("services \"{name}\" not found")),
                ),
            }
        }
        ("GET", ["api", "v1", "namespaces", _ns, "pods", _name, "attach"]) => {
            let reply = st.lock().unwrap().attach.clone();
            match reply {
                AttachReply::Stream { stdout, exit } if upgrade => {
                    let Some(proto) = handshake(&mut c, st, &ws_key, &offered)? else {
                        return Ok(());
                    };
                    websocket(&mut c, st, &proto, &stdout, exit)
                }
                AttachReply::Stream { .. } => json_reply(
                    &mut c,
                    400,
                    &status(400, "BadRequest", "Upgrade request required"),
                ),
                AttachReply::DialError => {
                    json_reply(&mut c, 500, &fixture("status-500-attach.json"))
                }
                AttachReply::Hang => {
                    let end = Instant::now() + Duration::from_secs(60);
                    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Ok(())
                }
                AttachReply::Forbidden => json_reply(
                    &mut c,
                    403,
                    &status(
                        403,
                        "Forbidden",
                        "pods \"x\" is forbidden: User \"limited\" cannot create resource \"pods/attach\" in API group \"\" in the namespace \"default\"",
                    ),
                ),
            }
        }
        ("GET" | "POST", ["api", "v1", "namespaces", _ns, "pods", _name, "exec"]) => {
            let argv: Vec<String> = query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("command="))
                .map(percent_decode)
                .collect();
            let has = |k: &str| query_param(&query, k).as_deref() == Some("true");
            st.lock().unwrap().execs.push(argv.clone());
            if !upgrade {
                return json_reply(
                    &mut c,
                    400,
                    &status(400, "BadRequest", "Upgrade request required"),
                );
            }
            let root = st
                .lock()
                .unwrap()
                .container
                .as_ref()
                .map(|c| c.root.clone());
            let Some(root) = root else {
                return json_reply(
                    &mut c,
                    500,
                    &status(500, "InternalError", "container not found (\"hopscope\")"),
                );
            };
            let Some(proto) = handshake(&mut c, st, &ws_key, &offered)? else {
                return Ok(());
            };
            exec(c, st, &proto, &root, &argv, has("stderr"))
        }
        ("DELETE", ["api", "v1", "namespaces", _ns, "pods", name]) => {
            let removed = st.lock().unwrap().created.remove(*name);
            match removed {
                Some(mut p) => {
                    p["metadata"]["deletionTimestamp"] = json!("2024-05-21T03:31:00Z");
                    json_reply(&mut c, 200, &p)
                }
                None => json_reply(
                    &mut c,
                    404,
                    &status(404, "NotFound", &format!("pods \"{name}\" not found")),
                ),
            }
        }
        _ => respond(&mut c, 404, "404 page not found\n", "text/plain"),
    }
}

fn with_kind(v: &Value, api_version: &str, kind: &str) -> Value {
    let mut v = v.clone();
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    v
}

/// A watch: chunked JSON lines, from the queue, until the asked timeout or the test ends.
fn watch(
    c: &mut TcpStream,
    st: &Arc<Mutex<State>>,
    stop: &AtomicBool,
    path: &str,
    query: &str,
) -> std::io::Result<()> {
    write!(
        c,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )?;
    c.flush()?;
    let secs: u64 = query_param(query, "timeoutSeconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
        .min(60);
    let end = Instant::now() + Duration::from_secs(secs);
    let from: Option<u64> = query_param(query, "resourceVersion").and_then(|v| v.parse().ok());
    let expired = st.lock().unwrap().expired_below.get(path).copied();
    if let (Some(from), Some(below)) = (from, expired)
        && from < below
    {
        let status = json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {from} ({below})"),
            "reason": "Expired", "code": 410}});
        let line = status.to_string() + "\n";
        write!(c, "{:x}\r\n{line}\r\n0\r\n\r\n", line.len())?;
        return c.flush();
    }
    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
        let mut s = st.lock().unwrap();
        if s.mode == Mode::Down {
            // Cut off: no end chunk.
            return Ok(());
        }
        let ev = s.watch_queue.get_mut(path).and_then(|q| q.pop_front());
        drop(s);
        match ev {
            Some(ev) if ev["type"] == "END" => break,
            Some(ev) => {
                let line = ev.to_string() + "\n";
                write!(c, "{:x}\r\n{line}\r\n", line.len())?;
                c.flush()?;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    write!(c, "0\r\n\r\n")?;
    c.flush()
}

/// RFC 6455 accept key: base64(SHA-1(key + GUID)).
fn ws_accept(key: &str) -> String {
    use sha1::Digest;
    let d = sha1::Sha1::digest(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes());
    base64(&d)
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One unmasked binary frame (server to client).
fn ws_frame(c: &mut TcpStream, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n < 65536 => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    c.write_all(&f)?;
    c.flush()
}

/// The websocket upgrade with the first subprotocol of ours the client offered; without one
/// in common, the API server's 400 (and `None`).
fn handshake(
    c: &mut TcpStream,
    st: &Arc<Mutex<State>>,
    key: &str,
    offered: &[String],
) -> std::io::Result<Option<String>> {
    let ours = st.lock().unwrap().protocols.clone();
    let Some(proto) = ours.into_iter().find(|p| offered.contains(p)) else {
        json_reply(
            c,
            400,
            &status(400, "BadRequest", "no supported subprotocol offered"),
        )?;
        return Ok(None);
    };
    write!(
        c,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {proto}\r\n\r\n",
        ws_accept(key)
    )?;
    c.flush()?;
    st.lock().unwrap().negotiated.push(proto.clone());
    Ok(Some(proto))
}

/// The exit as the kubelet reports it on the error channel (3).
fn exit_status(exit: i32) -> Value {
    if exit == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
               "message": format!("command terminated with non-zero exit code: error executing command [hopscope], exit code {exit}"),
               "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": exit.to_string()}]}})
    }
}

/// The attach stream as the API server relays it from the kubelet (remotecommand).
fn websocket(
    c: &mut TcpStream,
    st: &Arc<Mutex<State>>,
    _proto: &str,
    stdout: &str,
    exit: i32,
) -> std::io::Result<()> {
    // Record what the client sends (stdin on 0, terminal size on 4, its close of stdin).
    let r = c.try_clone()?;
    let waits_for = st.lock().unwrap().attach_waits_for;
    let seen = st.clone();
    let st = st.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        while let Ok((opcode, payload)) = read_frame(&mut r) {
            if opcode == 0x2 && !payload.is_empty() {
                st.lock()
                    .unwrap()
                    .ws_received
                    .push((payload[0], payload[1..].to_vec()));
            }
            if opcode == 0x8 {
                break;
            }
        }
    });
    if let Some(ch) = waits_for {
        let t0 = std::time::Instant::now();
        while !seen.lock().unwrap().ws_received.iter().any(|m| m.0 == ch)
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(10)); // the poll interval
        }
    }
    let mut out = vec![1u8];
    out.extend_from_slice(stdout.as_bytes());
    ws_frame(c, 0x2, &out)?;
    let st = exit_status(exit);
    let mut msg = vec![3u8];
    msg.extend_from_slice(st.to_string().as_bytes());
    ws_frame(c, 0x2, &msg)?;
    ws_frame(c, 0x8, &[0x03, 0xe8])
}

/// One client frame (masked, as RFC 6455 requires of clients): (opcode, unmasked payload).
fn read_frame(r: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h)?;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b)?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        r.read_exact(&mut b)?;
        len = u64::from_be_bytes(b);
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask)?;
    }
    let mut p = vec![0u8; len as usize];
    r.read_exact(&mut p)?;
    if masked {
        for (i, b) in p.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((opcode, p))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(h, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            x => out.push(x),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One exec, run for real in the container's chroot: frames on channel 0 become the command's
/// stdin (255 0 closes it on v5), its stdout and stderr become frames on 1 and 2, and its exit
/// the `Status` on 3. A command the container does not have is the runtime's own failure.
fn exec(
    c: TcpStream,
    st: &Arc<Mutex<State>>,
    proto: &str,
    root: &Path,
    argv: &[String],
    separate_stderr: bool,
) -> std::io::Result<()> {
    let w = Arc::new(Mutex::new(c.try_clone()?));
    let send = |w: &Arc<Mutex<TcpStream>>, ch: u8, data: &[u8]| {
        let mut m = vec![ch];
        m.extend_from_slice(data);
        ws_frame(&mut w.lock().unwrap(), 0x2, &m)
    };
    // The stream opens with an empty message on each channel the client reads.
    for ch in [1u8, 2, 3] {
        send(&w, ch, &[])?;
    }
    let prog = argv.first().cloned().unwrap_or_default();
    let found = if prog.contains('/') {
        root.join(prog.trim_start_matches('/'))
    } else {
        root.join("bin").join(&prog)
    };
    let runnable = std::fs::metadata(&found)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    if !runnable {
        let msg = format!(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{prog}\": executable file not found in $PATH: unknown"
        );
        let v = json!({"metadata": {}, "status": "Failure", "message": msg});
        send(&w, 3, v.to_string().as_bytes())?;
        ws_frame(&mut w.lock().unwrap(), 0x8, &[0x03, 0xe8])?;
        // The closing handshake: what the client still sends is read until its close.
        let mut r = BufReader::new(c);
        r.get_ref().set_read_timeout(Some(Duration::from_secs(5)))?;
        while let Ok((opcode, _)) = read_frame(&mut r) {
            if opcode == 0x8 {
                break;
            }
        }
        return Ok(());
    }
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chroot (coreutils)");
    let mut child = std::process::Command::new(chroot)
        .arg(root)
        .args(argv)
        .env_clear()
        .env("PATH", "/bin")
        .current_dir("/")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stdin = Arc::new(Mutex::new(child.stdin.take()));
    let (st2, stdin2, v5) = (st.clone(), stdin.clone(), proto.starts_with("v5"));
    let mut r = BufReader::new(c);
    std::thread::spawn(move || {
        let mut offset = 0usize;
        while let Ok((opcode, payload)) = read_frame(&mut r) {
            if opcode == 0x8 {
                break;
            }
            if opcode != 0x2 || payload.is_empty() {
                continue;
            }
            let (ch, mut data) = (payload[0], payload[1..].to_vec());
            match ch {
                0 => {
                    let at = st2.lock().unwrap().corrupt_stdin_at;
                    if let Some(k) = at
                        && (offset..offset + data.len()).contains(&k)
                    {
                        data[k - offset] ^= 0xff;
                    }
                    offset += data.len();
                    {
                        let mut s = st2.lock().unwrap();
                        s.stdin_frames += 1;
                        s.stdin_bytes += data.len();
                    }
                    if let Some(i) = stdin2.lock().unwrap().as_mut() {
                        let _ = i.write_all(&data);
                    }
                }
                255 if v5 && data == [0] => {
                    stdin2.lock().unwrap().take();
                }
                _ => {}
            }
            let mut s = st2.lock().unwrap();
            // Keep what tests look at, not megabytes of upload.
            if ch != 0 || s.ws_received.iter().map(|m| m.1.len()).sum::<usize>() < 1 << 16 {
                s.ws_received.push((ch, data));
            }
        }
    });
    let pump = |mut from: Box<dyn Read + Send>, ch: u8, w: Arc<Mutex<TcpStream>>| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut m = vec![ch];
                m.extend_from_slice(&buf[..n]);
                if ws_frame(&mut w.lock().unwrap(), 0x2, &m).is_err() {
                    break;
                }
            }
        })
    };
    let out = pump(Box::new(child.stdout.take().unwrap()), 1, w.clone());
    let err_ch = if separate_stderr { 2 } else { 1 };
    let err = pump(Box::new(child.stderr.take().unwrap()), err_ch, w.clone());
    let _ = out.join();
    let _ = err.join();
    let code = child.wait()?.code().unwrap_or(128);
    stdin.lock().unwrap().take();
    send(&w, 3, exit_status(code).to_string().as_bytes())?;
    ws_frame(&mut w.lock().unwrap(), 0x8, &[0x03, 0xe8])
}
