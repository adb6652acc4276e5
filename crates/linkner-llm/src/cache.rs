//! The answer cache: answers keyed by a 128-bit hash of what determines them, in a bounded
//! in-memory LRU, optionally appended to a JSONL file that later runs load.
//!
//! - **Keys** are [`CacheKey`]s: an xxh3-128 hash of the parts that decide an answer (for the
//!   OpenAI backend, the whole request body: model, prompt, answer mode, sampling settings;
//!   for [`Cached`](crate::layer::Cached) over any backend, the backend's name and every field
//!   of the request). The prompt itself is never kept as a key.
//! - **Memory is bounded**: at most `capacity` answers; the least recently used one goes first.
//!   A stored answer's raw model text is cut to [`MAX_RAW_CHARS`].
//! - **The file** is written by one background thread fed through a bounded queue, so no
//!   caller ever blocks on the disk. A failed write (disk full, file removed, queue full) is
//!   logged and counted ([`AnswerCache::write_failures`]); the answer itself is never turned
//!   into a failure.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{LlmError, Result};

/// Longest raw model text kept with a cached answer (in chars); longer texts are cut.
pub const MAX_RAW_CHARS: usize = 256;

/// Lines the file writer may have queued before new writes are dropped (and counted).
const WRITE_QUEUE: usize = 4096;

/// A cache key: a stable 128-bit hash (xxh3) of the parts that determine an answer.
///
/// Build one with [`CacheKey::builder`]; every part is length-prefixed, so `("ab", "c")` and
/// `("a", "bc")` differ. Stable across runs and platforms (the file stores it as 32 hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub u128);

impl CacheKey {
    /// A key builder.
    pub fn builder() -> CacheKeyBuilder {
        CacheKeyBuilder(Xxh3::new())
    }

    /// The key as 32 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        format!("{:032x}", self.0)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(s: &str) -> Option<CacheKey> {
        (s.len() == 32)
            .then(|| u128::from_str_radix(s, 16).ok())
            .flatten()
            .map(CacheKey)
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Builds a [`CacheKey`] from parts.
#[derive(Clone)]
pub struct CacheKeyBuilder(Xxh3);

impl std::fmt::Debug for CacheKeyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKeyBuilder")
    }
}

impl CacheKeyBuilder {
    /// Adds bytes (length-prefixed).
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.update(&(b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }

    /// Adds a string.
    pub fn str(self, s: &str) -> Self {
        self.bytes(s.as_bytes())
    }

    /// Adds a number.
    pub fn u64(mut self, n: u64) -> Self {
        self.0.update(&n.to_le_bytes());
        self
    }

    /// The key.
    pub fn finish(self) -> CacheKey {
        CacheKey(self.0.digest128())
    }
}

/// Version of what a cached answer holds and of how responses are parsed into it. Part of
/// every key [`crate::layer::Cached`] stores under, so answers parsed by an earlier version are
/// never reused. 2: answers carry their label mass (log-probability mode); 1: before.
pub const ANSWER_FORMAT_VERSION: u32 = 2;

/// What the cache stores for one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// Class index.
    pub class: usize,
    /// Confidence, when the mode gives one.
    pub confidence: Option<f32>,
    /// Distribution over classes, when the mode gives one.
    pub distribution: Option<Vec<f32>>,
    /// Mass on the answer vocabulary before renormalising ([`crate::Answer::label_mass`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_mass: Option<f32>,
    /// Raw model output (at most [`MAX_RAW_CHARS`] chars).
    pub raw: String,
}

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    answer: CachedAnswer,
}

/// The bounded LRU map: answers with their last-use tick, and the ticks in order.
#[derive(Debug, Default)]
struct Lru {
    map: HashMap<CacheKey, (CachedAnswer, u64)>,
    order: BTreeMap<u64, CacheKey>,
    tick: u64,
}

impl Lru {
    fn get(&mut self, key: &CacheKey) -> Option<CachedAnswer> {
        self.tick += 1;
        let tick = self.tick;
        let (answer, t) = self.map.get_mut(key)?;
        self.order.remove(t);
        *t = tick;
        self.order.insert(tick, *key);
        Some(answer.clone())
    }

    fn put(&mut self, key: CacheKey, answer: CachedAnswer, capacity: usize) {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, old)) = self.map.insert(key, (answer, tick)) {
            self.order.remove(&old);
        }
        self.order.insert(tick, key);
        while self.map.len() > capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
        }
    }
}

enum WriterMsg {
    Line(String),
    Flush(SyncSender<()>),
}

/// The background thread that appends lines to the cache file.
#[derive(Debug)]
struct Writer {
    path: PathBuf,
    tx: Option<SyncSender<WriterMsg>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(path: PathBuf, file: std::fs::File, failures: Arc<AtomicU64>) -> Result<Writer> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<WriterMsg>(WRITE_QUEUE);
        let p = path.clone();
        let thread = std::thread::Builder::new()
            .name("linkner-answer-cache".into())
            .spawn(move || write_loop(&p, file, rx, &failures))
            .map_err(|e| LlmError::Cache {
                path: path.clone(),
                message: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Writer {
            path,
            tx: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written what is queued.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(path: &Path, file: std::fs::File, rx: Receiver<WriterMsg>, failures: &AtomicU64) {
    let mut out = std::io::BufWriter::new(file);
    let mut warned = false;
    let mut fail = |e: &dyn std::fmt::Display, failures: &AtomicU64| {
        failures.fetch_add(1, Ordering::Relaxed);
        if !warned {
            tracing::warn!(path = %path.display(), error = %e,
                "cannot write the LLM answer cache file; answers are still returned (further \
                 write failures are counted in the backend's stats)");
            warned = true;
        } else {
            tracing::debug!(path = %path.display(), error = %e, "answer cache write failed");
        }
    };
    let mut pending = 0u64;
    loop {
        // Write what is queued, flushing when the queue runs dry (or on request).
        let msg = match rx.try_recv() {
            Ok(m) => m,
            Err(_) => {
                if pending > 0 {
                    if let Err(e) = out.flush() {
                        fail(&e, failures);
                    }
                    pending = 0;
                }
                match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                }
            }
        };
        match msg {
            WriterMsg::Line(line) => {
                if let Err(e) = out.write_all(line.as_bytes()) {
                    fail(&e, failures);
                } else {
                    pending += 1;
                }
            }
            WriterMsg::Flush(done) => {
                if let Err(e) = out.flush() {
                    fail(&e, failures);
                }
                pending = 0;
                let _ = done.send(());
            }
        }
    }
    if let Err(e) = out.flush() {
        fail(&e, failures);
    }
}

/// A bounded in-memory answer cache (LRU) with an optional JSONL file behind it.
#[derive(Debug)]
pub struct AnswerCache {
    lru: Mutex<Lru>,
    capacity: usize,
    writer: Option<Writer>,
    write_failures: Arc<AtomicU64>,
}

impl Default for AnswerCache {
    fn default() -> Self {
        AnswerCache::in_memory()
    }
}

impl AnswerCache {
    /// Default number of answers kept in memory (about 20–40 MB at most).
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// An empty in-memory cache of [`AnswerCache::DEFAULT_CAPACITY`] answers.
    pub fn in_memory() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// An empty in-memory cache of at most `capacity` answers (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        AnswerCache {
            lru: Mutex::new(Lru::default()),
            capacity: capacity.max(1),
            writer: None,
            write_failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A cache of [`AnswerCache::DEFAULT_CAPACITY`] answers backed by a JSONL file (see
    /// [`AnswerCache::with_file_and_capacity`]).
    pub fn with_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_file_and_capacity(path, Self::DEFAULT_CAPACITY)
    }

    /// A cache backed by a JSONL file: existing lines are loaded (the most recent `capacity`
    /// answers are kept; a torn last line, as left by a crash, is dropped; lines whose key is
    /// not a hash — from an older version — are skipped; any other bad line is an error), and
    /// new answers are appended by a background thread. When the file holds many more lines
    /// than the cache kept, it is rewritten with the kept ones, so it stays bounded too.
    pub fn with_file_and_capacity(path: impl AsRef<Path>, capacity: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let err = |m: String| LlmError::Cache {
            path: path.clone(),
            message: m,
        };
        let mut cache = Self::with_capacity(capacity);
        let mut rewrite = false;
        let meta = std::fs::metadata(&path).ok();
        if meta.as_ref().is_some_and(std::fs::Metadata::is_file) {
            let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
            let lines: Vec<&str> = text.lines().collect();
            let n = lines.len();
            let mut valid = 0usize;
            let lru = cache.lru.get_mut().unwrap_or_else(PoisonError::into_inner);
            for (i, line) in lines.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Line>(line) {
                    Ok(l) => match CacheKey::from_hex(&l.key) {
                        Some(k) => {
                            valid += 1;
                            lru.put(k, l.answer, cache.capacity);
                        }
                        None => rewrite = true,
                    },
                    Err(_) if i + 1 == n && !text.ends_with('\n') => rewrite = true,
                    Err(e) => return Err(err(format!("line {}: {e}", i + 1))),
                }
            }
            if valid > 2 * lru.map.len().max(512) {
                rewrite = true;
            }
        } else if meta.is_none()
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        if rewrite {
            // Keep the loaded answers, oldest first, so the file's order is the LRU order.
            let lru = cache.lru.get_mut().unwrap_or_else(PoisonError::into_inner);
            let mut keep = String::new();
            for key in lru.order.values() {
                if let Some((answer, _)) = lru.map.get(key) {
                    keep.push_str(&line_json(key, answer).map_err(|e| err(e.to_string()))?);
                }
            }
            let tmp = path.with_extension("jsonl.tmp");
            std::fs::write(&tmp, keep).map_err(|e| err(e.to_string()))?;
            std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| err(e.to_string()))?;
        cache.writer = Some(Writer::start(path, file, cache.write_failures.clone())?);
        Ok(cache)
    }

    /// The most answers kept in memory.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The cache file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        self.writer.as_ref().map(|w| w.path.as_path())
    }

    /// Number of cached answers.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // The map stays consistent even if a panic poisoned the lock mid-way through a get.
        self.lru.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached answer for `key` (marks it most recently used).
    pub fn get(&self, key: &CacheKey) -> Option<CachedAnswer> {
        self.lock().get(key)
    }

    /// Stores an answer in memory and queues it for the file, if any. Never fails and never
    /// blocks on the disk: a write that cannot be queued or done is logged and counted in
    /// [`AnswerCache::write_failures`].
    pub fn put(&self, key: CacheKey, mut answer: CachedAnswer) {
        if answer.raw.chars().count() > MAX_RAW_CHARS {
            answer.raw = answer.raw.chars().take(MAX_RAW_CHARS).collect();
        }
        if let Some(w) = &self.writer {
            match line_json(&key, &answer) {
                Ok(line) => self.send(w, WriterMsg::Line(line)),
                Err(e) => self.write_failed(w, &e),
            }
        }
        self.lock().put(key, answer, self.capacity);
    }

    fn send(&self, w: &Writer, msg: WriterMsg) {
        match w.tx.as_ref().map(|tx| tx.try_send(msg)) {
            Some(Ok(())) => {}
            Some(Err(TrySendError::Full(_))) => self.write_failed(w, &"the write queue is full"),
            Some(Err(TrySendError::Disconnected(_))) | None => {
                self.write_failed(w, &"the writer thread has stopped")
            }
        }
    }

    fn write_failed(&self, w: &Writer, e: &dyn std::fmt::Display) {
        let n = self.write_failures.fetch_add(1, Ordering::Relaxed);
        if n == 0 {
            tracing::warn!(path = %w.path.display(), error = %e,
                "cannot write the LLM answer cache file; answers are still returned");
        }
    }

    /// Answers that could not be written to the file so far.
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }

    /// Waits until every answer queued so far is written to the file (a no-op without one).
    /// Blocks the calling thread: from async code, call it through
    /// `tokio::task::spawn_blocking`. Dropping the cache also writes what is queued.
    pub fn flush(&self) {
        if let Some(w) = &self.writer {
            let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
            let sent =
                w.tx.as_ref()
                    .is_some_and(|tx| tx.send(WriterMsg::Flush(done_tx)).is_ok());
            if sent {
                let _ = done_rx.recv();
            }
        }
    }
}

fn line_json(key: &CacheKey, answer: &CachedAnswer) -> serde_json::Result<String> {
    let mut s = serde_json::to_string(&Line {
        key: key.to_hex(),
        answer: answer.clone(),
    })?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(class: usize) -> CachedAnswer {
        CachedAnswer {
            class,
            confidence: Some(0.5),
            distribution: None,
            label_mass: None,
            raw: "x".into(),
        }
    }

    fn key(s: &str) -> CacheKey {
        CacheKey::builder().str(s).finish()
    }

    #[test]
    fn keys_are_stable_and_length_prefixed() {
        let a = CacheKey::builder().str("ab").str("c").finish();
        let b = CacheKey::builder().str("a").str("bc").finish();
        assert_ne!(a, b);
        assert_eq!(a, CacheKey::builder().str("ab").str("c").finish());
        assert_eq!(CacheKey::from_hex(&a.to_hex()), Some(a));
        assert_eq!(CacheKey::from_hex("nothex"), None);
        // Pinned: the file format depends on the hash staying the same across versions.
        assert_eq!(
            CacheKey::builder().str("linkner").finish().to_hex(),
            "d7622dbe00940dcb9ca27e2dab756135"
        );
    }

    #[test]
    fn the_lru_keeps_at_most_capacity_answers_and_evicts_the_least_recently_used() {
        let c = AnswerCache::with_capacity(3);
        c.put(key("a"), ans(1));
        c.put(key("b"), ans(2));
        c.put(key("c"), ans(3));
        assert!(c.get(&key("a")).is_some()); // a is now the most recent
        c.put(key("d"), ans(4)); // evicts b
        assert_eq!(c.len(), 3);
        assert!(c.get(&key("b")).is_none());
        assert_eq!(c.get(&key("a")).unwrap().class, 1);
        assert_eq!(c.get(&key("d")).unwrap().class, 4);
        for i in 0..10_000 {
            c.put(key(&i.to_string()), ans(i % 5));
        }
        assert_eq!(c.len(), 3);
        let inner = c.lock();
        assert_eq!(inner.order.len(), 3);
    }

    #[test]
    fn long_raw_texts_are_cut() {
        let c = AnswerCache::in_memory();
        let mut a = ans(1);
        a.raw = "é".repeat(10_000);
        c.put(key("a"), a);
        assert_eq!(c.get(&key("a")).unwrap().raw.chars().count(), MAX_RAW_CHARS);
    }

    #[test]
    fn disk_cache_round_trips_and_tolerates_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cache.jsonl");
        {
            let c = AnswerCache::with_file(&path).unwrap();
            c.put(key("a"), ans(1));
            c.put(key("b"), ans(2));
            c.flush();
            assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        }
        // A crash mid-write leaves a torn last line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"key\":\"c\",\"ans")
            .unwrap();
        let c = AnswerCache::with_file(&path).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key("b")).unwrap().class, 2);
        c.put(key("d"), ans(3));
        drop(c); // dropping writes what is queued
        let c = AnswerCache::with_file(&path).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&key("d")).unwrap().class, 3);
        assert_eq!(c.write_failures(), 0);
    }

    #[test]
    fn a_file_with_far_more_lines_than_the_capacity_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        {
            let c = AnswerCache::with_file_and_capacity(&path, 5_000).unwrap();
            for i in 0..5_000 {
                c.put(key(&i.to_string()), ans(i % 5));
                // The write queue holds 4,096 lines and `put` never blocks: on a loaded
                // machine the writer thread may lag behind a tight loop, so wait for it now
                // and then (this test is about compaction, not about a full queue).
                if i % 1_000 == 999 {
                    c.flush();
                }
            }
            assert_eq!(c.write_failures(), 0);
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            5_000
        );
        let c = AnswerCache::with_file_and_capacity(&path, 100).unwrap();
        assert_eq!(c.len(), 100);
        // The most recent answers were kept, and the file now holds only them.
        assert_eq!(c.get(&key("4999")).unwrap().class, 4);
        assert!(c.get(&key("0")).is_none());
        drop(c);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 100);
    }

    #[test]
    fn old_string_keys_are_skipped_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        std::fs::write(&path, "{\"key\":\"model\\u001fmode\\u001fsys\\u001fuser\",\"answer\":{\"class\":1,\"confidence\":null,\"distribution\":null,\"raw\":\"\"}}\n").unwrap();
        let c = AnswerCache::with_file(&path).unwrap();
        assert!(c.is_empty());
    }

    #[test]
    fn corrupt_middle_line_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        std::fs::write(&path, "garbage\n{\"key\":\"a\",\"answer\":{\"class\":1,\"confidence\":null,\"distribution\":null,\"raw\":\"\"}}\n").unwrap();
        assert!(matches!(
            AnswerCache::with_file(&path),
            Err(LlmError::Cache { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_failed_write_is_counted_and_the_answer_still_cached() {
        // /dev/full is not a regular file (nothing is loaded from it) and fails every write.
        let c = AnswerCache::with_file("/dev/full").unwrap();
        c.put(key("a"), ans(1));
        c.flush();
        assert!(c.write_failures() >= 1);
        assert_eq!(c.get(&key("a")).unwrap().class, 1);
    }
}
