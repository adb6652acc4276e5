//! A misbehaving OpenAI-compatible server for fault-injection tests: raw HTTP/1.1 over a tokio
//! `TcpListener` on `127.0.0.1:0`, one connection per request (`Connection: close`).
//!
//! Shared by `linkner-llm`'s `fault_injection` test and, through `#[path]`, by the linker's and
//! the CLI's tests:
//!
//! ```ignore
//! #[path = "../crates/linkner-llm/tests/support/fake_server.rs"] // from tests/ at the root
//! mod fake_server;
//! use fake_server::{FakeServer, Fault, Script};
//!
//! // In async code (the server runs on the current tokio runtime):
//! let s = FakeServer::start(Script::seq(vec![Fault::Reset, fake_server::ok("person")])).await;
//! // In a plain #[test] (e.g. around a CLI subprocess): the server gets its own thread.
//! let s = FakeServer::start_in_thread(Script::first_attempt(Fault::cut_short(), fake_server::ok("person")));
//! // s.url is the base URL (`http://127.0.0.1:PORT/v1`); s.hits(), s.requests(),
//! // s.max_concurrent() tell what the server saw.
//! ```
//!
//! What a request gets is decided by a [`Script`]: a fixed sequence (the last entry repeats),
//! "the first attempt of every distinct request body fails, later ones succeed", a seeded mix
//! (e.g. 30 % faults), or any function of the [`Seen`] request.
//!
//! Faults ([`Fault`]): a 200 answer after a delay, any status with `Retry-After` (seconds or an
//! HTTP date), a hang, a reset, a slow drip, a malformed body, a body cut before its
//! `Content-Length`, a huge body (announced or chunked, streamed from a fixed buffer so the
//! server's own memory stays flat), and a close without answer. Every request loop is bounded;
//! dropping the [`FakeServer`] stops it and every connection it holds.
//!
//! Requirements of the including crate: `tokio` (net, io-util, time, rt, sync, macros) and
//! `serde_json`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // a test helper, used in part by each test

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the fake server does with one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 200 with this JSON body, after a delay.
    Ok(String, Duration),
    /// This status, an optional `Retry-After` value (sent as given: `"2"` or an HTTP date),
    /// and this body.
    Status(u16, Option<String>, String),
    /// Read the request and never answer (until the server is dropped, at most 10 min).
    Hang,
    /// Read the request and reset the connection (TCP RST).
    Reset,
    /// Read the request and close the connection without a byte of answer.
    Close,
    /// Headers announcing a 1000-byte body, then one byte per interval.
    Drip(Duration),
    /// 200 with a complete body (per its `Content-Length`) that is not valid JSON.
    Malformed,
    /// 200 announcing this body's full length, sending only its first `keep` bytes, then
    /// closing the connection.
    CutShort(String, usize),
    /// 200 with a body of this many bytes of JSON-ish filler, streamed in 64 KiB writes;
    /// `chunked` sends no `Content-Length` (chunked transfer encoding).
    Huge {
        /// Body size in bytes.
        bytes: u64,
        /// Use chunked encoding instead of announcing the length.
        chunked: bool,
    },
}

impl Fault {
    /// A valid answer cut in the middle (the usual "connection dropped mid-body").
    pub fn cut_short() -> Fault {
        let body = chat("person");
        let keep = body.len() / 2;
        Fault::CutShort(body, keep)
    }

    /// A status with a `Retry-After` of `secs` seconds.
    pub fn status_retry_after(code: u16, secs: u64) -> Fault {
        Fault::Status(code, Some(secs.to_string()), "{\"error\":\"busy\"}".into())
    }
}

/// What the server saw of one request (given to a [`Script`]).
#[derive(Clone, Debug)]
pub struct Seen {
    /// 0 for the first request the server got, 1 for the second, …
    pub n: usize,
    /// How many earlier requests had exactly the same body (0 on a first attempt).
    pub repeats: usize,
    /// The request's body (JSON text).
    pub body: String,
}

/// Decides the [`Fault`] of each request.
#[derive(Clone)]
pub struct Script(Arc<dyn Fn(&Seen) -> Fault + Send + Sync>);

impl Script {
    /// The n-th request gets `faults[n]`; the last entry repeats.
    pub fn seq(faults: Vec<Fault>) -> Script {
        assert!(!faults.is_empty(), "an empty script");
        Script(Arc::new(move |s: &Seen| {
            faults[s.n.min(faults.len() - 1)].clone()
        }))
    }

    /// Every request gets `fault`.
    pub fn always(fault: Fault) -> Script {
        Script::seq(vec![fault])
    }

    /// The first attempt of every distinct request body gets `first`, every repeat `then`.
    pub fn first_attempt(first: Fault, then: Fault) -> Script {
        Script(Arc::new(move |s: &Seen| {
            if s.repeats == 0 {
                first.clone()
            } else {
                then.clone()
            }
        }))
    }

    /// A seeded mix: each request independently gets one of `faults` (uniformly) with
    /// probability `rate`, else `ok`. Deterministic for a seed and a request order.
    pub fn mixed(rate: f64, seed: u64, faults: Vec<Fault>, ok: Fault) -> Script {
        Script::mixed_with(rate, seed, faults, move |_| ok.clone())
    }

    /// [`Script::mixed`] whose good answer depends on the request (`ok` of what it saw).
    pub fn mixed_with(
        rate: f64,
        seed: u64,
        faults: Vec<Fault>,
        ok: impl Fn(&Seen) -> Fault + Send + Sync + 'static,
    ) -> Script {
        assert!(!faults.is_empty(), "no faults to mix");
        Script(Arc::new(move |s: &Seen| {
            // splitmix64 of (seed, n): no RNG state shared between connections.
            let mut z = seed ^ (s.n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 11) as f64 / (1u64 << 53) as f64;
            if u < rate {
                faults[(z % faults.len() as u64) as usize].clone()
            } else {
                ok(s)
            }
        }))
    }

    /// Any function of the request.
    pub fn from_fn(f: impl Fn(&Seen) -> Fault + Send + Sync + 'static) -> Script {
        Script(Arc::new(f))
    }
}

/// A running fake server; dropping it stops it.
pub struct FakeServer {
    /// Base URL, `http://127.0.0.1:PORT/v1`.
    pub url: String,
    hits: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    max_concurrent: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    script: Script,
    hits: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    bodies: Mutex<HashMap<String, usize>>,
    current: AtomicUsize,
    max_concurrent: Arc<AtomicUsize>,
}

impl FakeServer {
    /// Starts the server on the current tokio runtime.
    pub async fn start(script: Script) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let s = Self::with_listener(&listener, stop);
        tokio::spawn(serve(listener, s.shared(script), stop_rx));
        s
    }

    /// Starts the server on a thread of its own (its own tokio runtime): for plain `#[test]`s
    /// and tests that run the CLI as a subprocess.
    pub fn start_in_thread(script: Script) -> FakeServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let addr = std_listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let max_concurrent = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            script,
            hits: hits.clone(),
            requests: requests.clone(),
            bodies: Mutex::new(HashMap::new()),
            current: AtomicUsize::new(0),
            max_concurrent: max_concurrent.clone(),
        });
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                ready_tx.send(()).unwrap();
                serve(listener, shared, stop_rx).await;
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        ready_rx.recv().unwrap();
        FakeServer {
            url: format!("http://{addr}/v1"),
            hits,
            requests,
            max_concurrent,
            stop,
            thread: Some(thread),
        }
    }

    fn with_listener(listener: &TcpListener, stop: watch::Sender<bool>) -> FakeServer {
        FakeServer {
            url: format!("http://{}/v1", listener.local_addr().unwrap()),
            hits: Arc::new(AtomicUsize::new(0)),
            requests: Arc::new(Mutex::new(Vec::new())),
            max_concurrent: Arc::new(AtomicUsize::new(0)),
            stop,
            thread: None,
        }
    }

    fn shared(&self, script: Script) -> Arc<Shared> {
        Arc::new(Shared {
            script,
            hits: self.hits.clone(),
            requests: self.requests.clone(),
            bodies: Mutex::new(HashMap::new()),
            current: AtomicUsize::new(0),
            max_concurrent: self.max_concurrent.clone(),
        })
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The requests received so far (head and body, as text).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// The most requests the server was answering at once.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((sock, _)) = accepted else {
            return;
        };
        let shared = shared.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = handle(sock, &shared) => {}
                _ = stop.changed() => {}
            }
        });
    }
}

async fn handle(sock: TcpStream, shared: &Shared) {
    let Some(req) = read_request(&sock).await else {
        return;
    };
    let n = shared.hits.fetch_add(1, Ordering::SeqCst);
    let body = req
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    let repeats = {
        let mut bodies = shared.bodies.lock().unwrap();
        let c = bodies.entry(body.clone()).or_insert(0);
        *c += 1;
        *c - 1
    };
    shared.requests.lock().unwrap().push(req);
    let now = shared.current.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_concurrent.fetch_max(now, Ordering::SeqCst);
    let fault = (shared.script.0)(&Seen { n, repeats, body });
    respond(sock, fault).await;
    shared.current.fetch_sub(1, Ordering::SeqCst);
}

/// Reads one HTTP request (headers and Content-Length body) as text.
async fn read_request(sock: &TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        sock.readable().await.ok()?;
        match sock.try_read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        }
        if buf.len() > 16 << 20 {
            return None;
        }
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(text);
            }
        }
    }
}

async fn respond(mut sock: TcpStream, fault: Fault) {
    match fault {
        Fault::Ok(body, delay) => {
            tokio::time::sleep(delay).await;
            let _ = sock.write_all(http(200, None, &body).as_bytes()).await;
        }
        Fault::Status(code, retry_after, body) => {
            let _ = sock
                .write_all(http(code, retry_after.as_deref(), &body).as_bytes())
                .await;
        }
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        Fault::Reset => {
            // Linger 0: closing sends a TCP reset (it does not block with a zero timeout).
            #[allow(deprecated)]
            let _ = sock.set_linger(Some(Duration::ZERO));
            drop(sock);
            return;
        }
        Fault::Close => {}
        Fault::Drip(every) => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n";
            let _ = sock.write_all(head.as_bytes()).await;
            for _ in 0..1000 {
                if sock.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        }
        Fault::Malformed => {
            let _ = sock
                .write_all(http(200, None, "{\"choices\": [ {\"message\": ").as_bytes())
                .await;
        }
        Fault::CutShort(body, keep) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock
                .write_all(&body.as_bytes()[..keep.min(body.len())])
                .await;
            let _ = sock.flush().await;
            // Close the socket for good: the client sees the body end early.
            drop(sock);
            return;
        }
        Fault::Huge { bytes, chunked } => {
            let head = if chunked {
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_string()
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {bytes}\r\nConnection: close\r\n\r\n"
                )
            };
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b' '; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                let ok = if chunked {
                    let mut piece = format!("{n:x}\r\n").into_bytes();
                    piece.extend_from_slice(&block[..n]);
                    piece.extend_from_slice(b"\r\n");
                    sock.write_all(&piece).await.is_ok()
                } else {
                    sock.write_all(&block[..n]).await.is_ok()
                };
                if !ok {
                    return; // the client gave up: fine
                }
                left -= n as u64;
            }
            if chunked {
                let _ = sock.write_all(b"0\r\n\r\n").await;
            }
        }
    }
    let _ = sock.shutdown().await;
}

/// An HTTP/1.1 response with `Content-Length` and `Connection: close`.
pub fn http(code: u16, retry_after: Option<&str>, body: &str) -> String {
    let ra = retry_after
        .map(|s| format!("Retry-After: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n{ra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A chat-completions body whose message content is `content` (free text / constrained modes).
pub fn chat(content: &str) -> String {
    json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 3,
                  "prompt_tokens_details": {"cached_tokens": 80}},
    })
    .to_string()
}

/// A 200 answer with `content`, at once.
pub fn ok(content: &str) -> Fault {
    Fault::Ok(chat(content), Duration::ZERO)
}

/// A chat-completions body for the log-probability mode: the first token's alternatives with
/// their probabilities.
pub fn logprob_chat(tops: &[(&str, f64)]) -> String {
    let top: Vec<_> = tops
        .iter()
        .map(|(t, p)| json!({"token": t, "logprob": p.ln()}))
        .collect();
    json!({
        "choices": [{"message": {"content": tops[0].0},
                     "logprobs": {"content": [{"token": tops[0].0, "logprob": tops[0].1.ln(),
                                               "top_logprobs": top}]}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 1},
        "timings": {"cache_n": 40},
    })
    .to_string()
}
