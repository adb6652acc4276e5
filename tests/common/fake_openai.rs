//! A fake OpenAI-compatible chat-completions server for the linker's tests: raw HTTP/1.1 over a
//! tokio `TcpListener` on 127.0.0.1:0. Each request's body is handed to a script that returns
//! the answer text and a delay; the server counts requests and records how many were being
//! answered at the same time (the measured concurrency).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server answers to one request body: the assistant's text and how long to wait first.
pub type Script = Arc<dyn Fn(&str) -> (String, Duration) + Send + Sync>;

/// A running fake server (it stops when the test's runtime ends).
pub struct FakeOpenAi {
    /// Base URL (`http://127.0.0.1:PORT/v1`).
    pub url: String,
    /// Requests received.
    pub hits: Arc<AtomicUsize>,
    /// Most requests being answered at once.
    pub max_concurrent: Arc<AtomicUsize>,
    /// Request bodies, in arrival order.
    pub bodies: Arc<Mutex<Vec<String>>>,
}

/// Starts a server answering with `script`.
pub async fn start(script: Script) -> FakeOpenAi {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let current = Arc::new(AtomicUsize::new(0));
    let max_concurrent = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (h, c, m, b) = (
        hits.clone(),
        current.clone(),
        max_concurrent.clone(),
        bodies.clone(),
    );
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (h, c, m, b, script) = (h.clone(), c.clone(), m.clone(), b.clone(), script.clone());
            tokio::spawn(async move {
                let mut sock = sock;
                // Keep-alive: answer requests on this connection until the client closes it.
                while let Some(body) = read_request(&mut sock).await {
                    h.fetch_add(1, Ordering::SeqCst);
                    b.lock().unwrap().push(body.clone());
                    let now = c.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    let (content, delay) = script(&body);
                    tokio::time::sleep(delay).await;
                    let json = serde_json::json!({
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 1},
                    })
                    .to_string();
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                        json.len()
                    );
                    c.fetch_sub(1, Ordering::SeqCst);
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    FakeOpenAi {
        url: format!("http://{addr}/v1"),
        hits,
        max_concurrent,
        bodies,
    }
}

/// Reads one HTTP request; returns its body (`None` when the connection is closed).
async fn read_request(sock: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = sock.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string());
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
