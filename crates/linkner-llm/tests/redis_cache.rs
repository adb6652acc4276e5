//! The shared answer cache against a real `redis-server` (Debian's package; `bash
//! scripts/setup-services.sh` installs it). Each test starts its own server as a child process
//! on a free loopback port, without persistence, and kills it by pid at the end (a Drop
//! guard). A missing `redis-server` fails the tests: they never skip.
//!
//! Two cache stacks over one Redis stand for two replicas (or a process and its restart):
//! each has its own in-memory cache, its own connection and its own counting backend.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use linkner_core::LabelSchema;
use linkner_llm::layer::{CacheKeyer, LlmClassifierExt, Reliability, Reliable, RequestKeyer};
use linkner_llm::{
    Answer, AnswerCache, ClassifyRequest, LlmClassifier, LlmConfig, LlmError, OpenAiBuilder,
    RedisStore, SharedStore, SharedTier, StoreError, async_trait,
};

#[path = "support/fake_server.rs"]
mod fake_server;

// ---------------------------------------------------------------------------------------------
// A real redis-server, as a child process.

/// A `redis-server` child on a loopback port; killed (SIGKILL) when dropped.
struct RedisServer {
    child: Option<Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

fn redis_server_binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("redis-server"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "redis-server is not installed: the shared answer cache is tested against a real \
             one. Run `bash scripts/setup-services.sh` (Debian package redis-server)."
        )
    })
}

/// A port nothing listens on now (bound on port 0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    fn start() -> RedisServer {
        Self::start_on(free_port())
    }

    /// Starts a server on `port` and waits until it answers PING (at most 10 s).
    fn start_on(port: u16) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(redis_server_binary())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server");
        let mut server = RedisServer {
            child: Some(child),
            port,
            _dir: dir,
        };
        let t = Instant::now();
        loop {
            if let Ok(pong) = resp(port, &["PING"])
                && pong == "+PONG"
            {
                return server;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("redis-server on port {port} exited at start: {status}");
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "redis-server on port {port} did not answer PING within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL, by its pid) and reaps it: Redis going away mid-run.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal to the server by its pid (`STOP`: it hangs, `CONT`: it goes on).
    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} {pid}");
    }

    /// One raw command to this server.
    fn cmd(&self, args: &[&str]) -> String {
        resp(self.port, args).unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A stopped server must be continued to die cleanly in every case.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill();
    }
}

/// Sends one command in RESP and returns the first line of the reply (for a bulk string, its
/// content). Independent of the client under test.
fn resp(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(out.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    if let Some(n) = line.strip_prefix('$')
        && let Ok(n) = n.parse::<usize>()
    {
        let mut buf = vec![0u8; n + 2];
        r.read_exact(&mut buf)?;
        buf.truncate(n);
        return Ok(String::from_utf8_lossy(&buf).into_owned());
    }
    Ok(line)
}

// ---------------------------------------------------------------------------------------------
// Replicas: a counting backend inside the full stack, with the shared tier.

/// A deterministic backend that counts its calls: the class is the entity's length modulo
/// the number of classes, with a one-hot distribution.
struct Counting {
    calls: AtomicUsize,
}

#[async_trait]
impl LlmClassifier for Counting {
    fn name(&self) -> String {
        "counting".into()
    }

    async fn classify(&self, r: &ClassifyRequest) -> Result<Answer, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let class = expected_class(r);
        let mut a = Answer::for_class(r.schema(), class)?;
        let mut d = vec![0.0; r.schema().num_classes()];
        d[class] = 1.0;
        a.distribution = Some(d);
        a.confidence = Some(0.75);
        a.raw = format!("answer {class}");
        Ok(a)
    }
}

fn expected_class(r: &ClassifyRequest) -> usize {
    r.entity().chars().count() % r.schema().num_classes()
}

struct Replica {
    backend: Arc<Counting>,
    llm: Reliable<Arc<Counting>>,
}

impl Replica {
    /// A replica with its own memory cache and its own connection to `url`.
    fn new(url: &str, cooldown: Duration) -> Replica {
        let store = RedisStore::open(url).unwrap();
        Self::with_tier(SharedTier::new(store).cooldown(cooldown))
    }

    fn with_tier(tier: SharedTier) -> Replica {
        let backend = Arc::new(Counting {
            calls: AtomicUsize::new(0),
        });
        let llm = backend.clone().reliable(
            Reliability::default()
                .cache(AnswerCache::in_memory())
                .shared_store(tier),
        );
        Replica { backend, llm }
    }

    fn llm_calls(&self) -> usize {
        self.backend.calls.load(Ordering::SeqCst)
    }

    /// Classifies `r`; the answer must be the backend's.
    async fn ask(&self, r: &ClassifyRequest) -> Answer {
        let a = self.llm.classify(r).await.unwrap();
        check(r, &a);
        a
    }
}

fn check(r: &ClassifyRequest, a: &Answer) {
    let class = expected_class(r);
    assert_eq!(a.class, class, "{}", r.entity());
    assert_eq!(a.confidence, Some(0.75));
    assert_eq!(a.raw, format!("answer {class}"));
    assert_eq!(a.distribution.as_ref().unwrap()[class], 1.0);
}

fn req(entity: &str) -> ClassifyRequest {
    ClassifyRequest::find(
        format!("Yesterday {entity} spoke in Rome ."),
        entity,
        Arc::new(LabelSchema::conll03()),
    )
    .unwrap()
}

fn entities(prefix: &str, n: usize) -> Vec<ClassifyRequest> {
    // Lengths vary, so the classes do too.
    (0..n)
        .map(|i| req(&format!("{prefix}{}{i}", "x".repeat(i % 7))))
        .collect()
}

const COOLDOWN: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn two_replicas_share_answers_through_redis() {
    let redis = RedisServer::start();
    let a = Replica::new(&redis.url(), COOLDOWN);
    let b = Replica::new(&redis.url(), COOLDOWN);
    let reqs = entities("Smith", 20);
    for r in &reqs {
        assert!(!a.ask(r).await.cached);
    }
    assert_eq!(a.llm_calls(), 20);
    let sa = a.llm.stats().unwrap();
    assert_eq!(
        (
            sa.shared_cache_hits,
            sa.shared_cache_misses,
            sa.shared_cache_errors
        ),
        (0, 20, 0),
        "{sa:?}"
    );
    // The second replica answers everything from Redis, without its backend.
    for r in &reqs {
        assert!(b.ask(r).await.cached);
    }
    assert_eq!(b.llm_calls(), 0);
    // Then from its own memory.
    for r in &reqs {
        assert!(b.ask(r).await.cached);
    }
    let sb = b.llm.stats().unwrap();
    assert_eq!(
        (sb.calls, sb.cache_hits, sb.failures, sb.shared_cache_hits),
        (40, 40, 0, 20),
        "{sb:?}"
    );
    assert_eq!((sb.shared_cache_misses, sb.shared_cache_errors), (0, 0));
    // One string per answer under the versioned prefix, the answer as JSON.
    assert_eq!(redis.cmd(&["DBSIZE"]), ":20");
    let key = linkner_llm::layer::versioned_key(
        RequestKeyer {
            namespace: "counting".into(),
        }
        .key(&reqs[3])
        .unwrap(),
    );
    let redis_key = format!("linkner:answer:v1:{}", key.to_hex());
    let stored: serde_json::Value = serde_json::from_str(&redis.cmd(&["GET", &redis_key])).unwrap();
    assert_eq!(stored["class"], expected_class(&reqs[3]));
    assert_eq!(redis.cmd(&["TTL", &redis_key]), ":-1"); // no expiry unless asked
    // A restart (a new stack, empty memory) reuses the answers as well.
    let restarted = Replica::new(&redis.url(), COOLDOWN);
    for r in &reqs {
        assert!(restarted.ask(r).await.cached);
    }
    assert_eq!(restarted.llm_calls(), 0);
}

#[tokio::test]
async fn an_expiry_is_set_when_asked() {
    let redis = RedisServer::start();
    let store = RedisStore::open(&redis.url())
        .unwrap()
        .with_prefix("test:")
        .with_ttl(Some(Duration::from_secs(600)));
    store.check().await.unwrap();
    let r = Replica::with_tier(SharedTier::new(store));
    r.ask(&req("Smith")).await;
    let keys = redis.cmd(&["KEYS", "test:*"]);
    assert_eq!(keys, "*1", "one key under the prefix");
    let key = linkner_llm::layer::versioned_key(
        RequestKeyer {
            namespace: "counting".into(),
        }
        .key(&req("Smith"))
        .unwrap(),
    );
    let ttl = redis.cmd(&["TTL", &format!("test:{}", key.to_hex())]);
    let secs: i64 = ttl.trim_start_matches(':').parse().unwrap();
    assert!((590..=600).contains(&secs), "{ttl}");
}

#[tokio::test]
async fn redis_going_away_mid_run_falls_back_to_the_llm_and_loses_nothing() {
    let mut redis = RedisServer::start();
    let a = Replica::new(&redis.url(), COOLDOWN);
    let before = entities("Before", 10);
    for r in &before {
        a.ask(r).await;
    }
    redis.kill();
    // Sequential calls: every one answered by the backend, each quickly (a failure costs at
    // most one timeout, and the cool-down skips Redis after it).
    let after = entities("After", 30);
    let t = Instant::now();
    for r in &after {
        let t1 = Instant::now();
        assert!(!a.ask(r).await.cached);
        assert!(t1.elapsed() < Duration::from_secs(1), "{:?}", t1.elapsed());
    }
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Concurrent calls (a batch) too.
    let batch = entities("Batch", 40);
    let t = Instant::now();
    let out = a.llm.classify_batch(&batch).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    for (r, o) in batch.iter().zip(&out) {
        check(r, o.as_ref().unwrap());
    }
    // What was answered before is still answered, from memory.
    for r in &before {
        assert!(a.ask(r).await.cached);
    }
    assert_eq!(a.llm_calls(), 10 + 30 + 40);
    let s = a.llm.stats().unwrap();
    assert_eq!(s.failures, 0, "{s:?}");
    assert_eq!(s.calls, 10 + 30 + 40 + 10);
    assert!(s.shared_cache_errors >= 1, "{s:?}");
    assert_eq!(s.shared_cache_hits, 0);
    // Every read of the shared tier was a miss: the 10 first ones, then one per call after.
    assert_eq!(s.shared_cache_misses, 10 + 30 + 40, "{s:?}");
    // A replica started while Redis is down works too.
    let b = Replica::new(&redis.url(), COOLDOWN);
    for r in &before {
        assert!(!b.ask(r).await.cached);
    }
    assert_eq!(b.llm_calls(), 10);
    assert_eq!(b.llm.stats().unwrap().failures, 0);
}

#[tokio::test]
async fn a_hung_redis_costs_one_timeout_then_is_skipped() {
    let redis = RedisServer::start();
    let timeout = Duration::from_millis(200);
    let a = Replica::with_tier(
        SharedTier::new(RedisStore::open(&redis.url()).unwrap())
            .timeout(timeout)
            .cooldown(Duration::from_secs(30)),
    );
    a.ask(&req("Smith")).await;
    redis.signal("STOP");
    let t = Instant::now();
    let first = a.ask(&req("Jones")).await;
    let first_took = t.elapsed();
    assert!(!first.cached);
    // The read timed out; the write was skipped (cool-down): one timeout, not two.
    assert!(
        first_took >= timeout && first_took < timeout * 2,
        "{first_took:?}"
    );
    let t = Instant::now();
    for r in entities("Later", 20) {
        assert!(!a.ask(&r).await.cached);
    }
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    let s = a.llm.stats().unwrap();
    assert_eq!(s.failures, 0);
    // The timeout, the skipped write, then a skipped read and write per later call.
    assert_eq!(s.shared_cache_errors, 2 + 2 * 20, "{s:?}");
    redis.signal("CONT");
}

#[tokio::test]
async fn a_restarted_redis_is_shared_again() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let a = Replica::new(&redis.url(), COOLDOWN);
    let b = Replica::new(&redis.url(), COOLDOWN);
    a.ask(&req("Smith")).await;
    assert!(b.ask(&req("Smith")).await.cached);
    redis.kill();
    a.ask(&req("Jones")).await;
    assert!(!b.ask(&req("Jones")).await.cached);
    assert!(a.llm.stats().unwrap().shared_cache_errors >= 1);
    // The same port again, empty (no persistence).
    let redis = RedisServer::start_on(port);
    let t = Instant::now();
    let mut rounds = 0;
    loop {
        rounds += 1;
        let r = req(&format!("Restart{rounds}"));
        let calls = b.llm_calls();
        a.ask(&r).await;
        if b.ask(&r).await.cached {
            assert_eq!(b.llm_calls(), calls);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the replicas did not share answers within 15 s of Redis coming back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back_after = t.elapsed();
    // From then on, every answer is shared.
    for r in entities("Shared", 10) {
        a.ask(&r).await;
        assert!(b.ask(&r).await.cached);
    }
    // The new server holds what was written since it started: the 10, the round that was
    // shared, and any earlier round that only one replica reached.
    let keys: usize = redis.cmd(&["DBSIZE"])[1..].parse().unwrap();
    assert!(
        (11..=10 + rounds).contains(&keys),
        "{keys} keys, {rounds} rounds"
    );
    let (sa, sb) = (a.llm.stats().unwrap(), b.llm.stats().unwrap());
    assert_eq!((sa.failures, sb.failures), (0, 0));
    assert!(sb.shared_cache_hits >= 1 + 1 + 10, "{sb:?}");
    eprintln!("shared again {back_after:?} after the restart ({rounds} rounds)");
}

#[tokio::test]
async fn a_foreign_value_in_redis_is_a_miss_not_a_panic() {
    let redis = RedisServer::start();
    let keyer = RequestKeyer {
        namespace: "counting".into(),
    };
    // The key the Cached layer stores under: the keyer's, versioned by the answer format.
    let key = |r: &ClassifyRequest| linkner_llm::layer::versioned_key(keyer.key(r).unwrap());
    let rkey = |r: &ClassifyRequest| format!("linkner:answer:v1:{}", key(r).to_hex());
    let cases = [
        ("NotJson", "not json"),
        ("WrongShape", r#"{"class": "PER"}"#),
        ("Empty", ""),
        (
            "OutOfSchema",
            r#"{"class": 99, "confidence": null, "distribution": null, "raw": ""}"#,
        ),
    ];
    for (entity, value) in cases {
        assert_eq!(redis.cmd(&["SET", &rkey(&req(entity)), value]), "+OK");
    }
    // A key of another Redis type (a list): WRONGTYPE on GET.
    assert_eq!(redis.cmd(&["RPUSH", &rkey(&req("AList")), "x"]), ":1");
    let a = Replica::new(&redis.url(), COOLDOWN);
    let names = ["NotJson", "WrongShape", "Empty", "OutOfSchema", "AList"];
    for e in names {
        assert!(!a.ask(&req(e)).await.cached, "{e}");
    }
    assert_eq!(a.llm_calls(), 5);
    let s = a.llm.stats().unwrap();
    assert_eq!(s.failures, 0);
    assert_eq!(
        (s.shared_cache_hits, s.shared_cache_misses),
        (0, 5),
        "{s:?}"
    );
    // Four undecodable values (the out-of-schema class decodes, and is only a miss).
    assert_eq!(s.shared_cache_errors, 4, "{s:?}");
    // An undecodable value is no reason to stop using Redis: the fresh answers replaced them,
    // and another replica reads those.
    let b = Replica::new(&redis.url(), COOLDOWN);
    for e in names {
        assert!(b.ask(&req(e)).await.cached, "{e}");
    }
    assert_eq!(b.llm_calls(), 0);
    // The store itself reports a bad value as `Invalid`.
    let store = RedisStore::open(&redis.url()).unwrap();
    redis.cmd(&["SET", &rkey(&req("Bad")), "{"]);
    let err = store.get(key(&req("Bad"))).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_redis_from_the_start_is_only_misses() {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let store = RedisStore::open(&url).unwrap();
    assert!(store.check().await.is_err());
    let a = Replica::new(&url, COOLDOWN);
    let t = Instant::now();
    for r in entities("Nobody", 20) {
        assert!(!a.ask(&r).await.cached);
    }
    assert!(a.ask(&req("Nobody0")).await.cached); // memory still works
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let s = a.llm.stats().unwrap();
    assert_eq!((s.failures, s.shared_cache_hits), (0, 0));
    assert!(s.shared_cache_errors >= 1);
}

#[tokio::test]
async fn the_openai_backend_shares_through_cache_redis_url() {
    let redis = RedisServer::start();
    let server =
        fake_server::FakeServer::start(fake_server::Script::seq(vec![fake_server::ok("location")]))
            .await;
    let config = |model: &str| -> LlmConfig {
        serde_json::from_value(serde_json::json!({
            "base_url": server.url,
            "model": model,
            "mode": {"type": "free_text"},
            "cache_redis_url": redis.url(),
            "cache_redis_ttl_s": 3600,
        }))
        .unwrap()
    };
    let build = |c: LlmConfig| OpenAiBuilder::from_config(c).build().unwrap();
    let rome = ClassifyRequest::find(
        "Rome is the capital of Italy .",
        "Rome",
        Arc::new(LabelSchema::conll03()),
    )
    .unwrap();
    let first = build(config("fake"));
    first.shared().unwrap().store.check().await.unwrap();
    let a = first.classify(&rome).await.unwrap();
    assert!(!a.cached);
    assert_eq!(server.hits(), 1);
    // Another replica (another classifier, same settings): no request to the server.
    let second = build(config("fake"));
    let b = second.classify(&rome).await.unwrap();
    assert!(b.cached);
    assert_eq!((a.class, server.hits()), (b.class, 1));
    assert_eq!(second.stats().unwrap().shared_cache_hits, 1);
    // Another model is another key.
    let other = build(config("other"));
    assert!(!other.classify(&rome).await.unwrap().cached);
    assert_eq!(server.hits(), 2);
    // A URL that is not Redis's is refused, naming the field.
    let mut bad = config("fake");
    bad.reliability.cache_redis_url = Some("http://127.0.0.1:1".into());
    match OpenAiBuilder::from_config(bad).build() {
        Err(LlmError::InvalidSetting { field, .. }) => assert_eq!(field, "cache_redis_url"),
        other => panic!("expected an invalid setting, got {other:?}"),
    }
}

/// A custom store behind the same layer: a store that always fails never fails a call.
#[tokio::test]
async fn a_custom_store_that_always_fails_never_fails_a_call() {
    #[derive(Debug)]
    struct Broken;

    #[async_trait]
    impl SharedStore for Broken {
        fn describe(&self) -> String {
            "broken".into()
        }
        async fn get(
            &self,
            _: linkner_llm::CacheKey,
        ) -> Result<Option<linkner_llm::cache::CachedAnswer>, StoreError> {
            Err(StoreError::Unavailable("always".into()))
        }
        async fn put(
            &self,
            _: linkner_llm::CacheKey,
            _: &linkner_llm::cache::CachedAnswer,
        ) -> Result<(), StoreError> {
            Err(StoreError::Unavailable("always".into()))
        }
    }

    let a = Replica::with_tier(SharedTier::new(Broken).cooldown(Duration::ZERO));
    for r in entities("Any", 5) {
        a.ask(&r).await;
    }
    let s = a.llm.stats().unwrap();
    assert_eq!((s.failures, s.shared_cache_misses), (0, 5));
    // No cool-down: every read and write was tried and failed.
    assert_eq!(s.shared_cache_errors, 10, "{s:?}");
}
