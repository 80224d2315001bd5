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

#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
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

pub struct State {
    pub mode: Mode,
    /// List responses by collection path (`/api/v1/pods`).
    pub lists: BTreeMap<String, Value>,
    /// Collection paths that answer a plain `404 page not found` (no such API group).
    pub missing: Vec<String>,
    /// Events a watch on that collection path sends next (`{"type","object"}`).
    pub watch_queue: BTreeMap<String, VecDeque<Value>>,
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
            log: vec![],
            created: BTreeMap::new(),
            pod_statuses: vec![json!({"phase": "Running"})],
            pod_gets: 0,
            refuse: vec![],
            events: json!({"kind": "EventList", "apiVersion": "v1", "metadata": {"resourceVersion": "1600"}, "items": []}),
            attach: AttachReply::DialError,
            ws_received: vec![],
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
                    websocket(&mut c, st, &ws_key, &stdout, exit)
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
    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
        let ev = st
            .lock()
            .unwrap()
            .watch_queue
            .get_mut(path)
            .and_then(|q| q.pop_front());
        match ev {
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

/// The attach stream as the API server relays it from the kubelet (remotecommand, v5).
fn websocket(
    c: &mut TcpStream,
    st: &Arc<Mutex<State>>,
    key: &str,
    stdout: &str,
    exit: i32,
) -> std::io::Result<()> {
    write!(
        c,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n",
        ws_accept(key)
    )?;
    c.flush()?;
    // Record what the client sends (stdin on 0, terminal size on 4, its close of stdin).
    let r = c.try_clone()?;
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
    // Give the client a moment to send stdin / its terminal size, as a running process would.
    std::thread::sleep(Duration::from_millis(300));
    let mut out = vec![1u8];
    out.extend_from_slice(stdout.as_bytes());
    ws_frame(c, 0x2, &out)?;
    let st = if exit == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
               "message": format!("command terminated with non-zero exit code: error executing command [hopscope], exit code {exit}"),
               "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": exit.to_string()}]}})
    };
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
