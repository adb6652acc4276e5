//! Measured concurrency for the linker's tests: [`Overlap`] counts the calls in progress and
//! keeps the largest number seen at once, overall and in distinct keys (which task, chunk or
//! document a call belongs to), and how many calls started while a call of another `Overlap`
//! was in progress (an LLM call during a tagger call). [`SlowTagger`] and [`ObservedLlm`] wrap
//! a tagger or an LLM so that each call takes a fixed time and is counted. A pipeline that ran
//! its calls one at a time would show a maximum of 1, one key at a time and no LLM call during
//! a tagger call.
//!
//! Included with `#[path = "common/overlap.rs"] mod overlap;` by the tests that use it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linkner::async_trait;
use linkner::core::{Candidate, LabelSchema, Sentence};
use linkner::core::{LocalTagger, PredictOptions, TaggerError};
use linkner::llm::{Answer, ClassifyRequest, LlmClassifier, LlmError};

#[derive(Default)]
struct State {
    now: usize,
    max: usize,
    calls: usize,
    by_key: HashMap<u64, usize>,
    max_keys: usize,
    max_per_key: usize,
    met: usize,
}

/// Counts calls in progress (overall and per key) and keeps the maxima.
#[derive(Default)]
pub struct Overlap {
    state: Mutex<State>,
}

/// A call in progress; it leaves its [`Overlap`] when dropped (also when its future is
/// cancelled).
pub struct Entered<'a> {
    overlap: &'a Overlap,
    key: u64,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let mut s = self.overlap.state.lock().unwrap();
        s.now -= 1;
        let n = s.by_key.get_mut(&self.key).expect("entered key");
        *n -= 1;
        if *n == 0 {
            s.by_key.remove(&self.key);
        }
    }
}

impl Overlap {
    pub fn new() -> Arc<Overlap> {
        Arc::new(Overlap::default())
    }

    /// A call of `key` starts.
    pub fn enter(&self, key: u64) -> Entered<'_> {
        let mut s = self.state.lock().unwrap();
        s.calls += 1;
        s.now += 1;
        s.max = s.max.max(s.now);
        let n = {
            let n = s.by_key.entry(key).or_default();
            *n += 1;
            *n
        };
        s.max_per_key = s.max_per_key.max(n);
        s.max_keys = s.max_keys.max(s.by_key.len());
        Entered { overlap: self, key }
    }

    /// A call of `key` starts; it is also counted in [`met`](Overlap::met) when a call of
    /// `other` is in progress. Each side registers itself before it looks at the other, so
    /// of two calls that overlap in time, the later one always sees the earlier.
    pub fn enter_beside(&self, key: u64, other: Option<&Overlap>) -> Entered<'_> {
        let entered = self.enter(key);
        if other.is_some_and(Overlap::busy) {
            self.state.lock().unwrap().met += 1;
        }
        entered
    }

    /// Whether a call is in progress.
    pub fn busy(&self) -> bool {
        self.state.lock().unwrap().now > 0
    }

    /// Most calls in progress at once.
    pub fn max(&self) -> usize {
        self.state.lock().unwrap().max
    }

    /// Most distinct keys with a call in progress at once.
    pub fn max_keys(&self) -> usize {
        self.state.lock().unwrap().max_keys
    }

    /// Most calls of one key in progress at once.
    pub fn max_per_key(&self) -> usize {
        self.state.lock().unwrap().max_per_key
    }

    /// Calls made.
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    /// Calls that started while a call of the `other` overlap of
    /// [`enter_beside`](Overlap::enter_beside) was in progress.
    pub fn met(&self) -> usize {
        self.state.lock().unwrap().met
    }
}

/// A tagger whose calls take `delay` (a blocking sleep, like a real forward pass) and are
/// counted by `overlap` (and, against `beside`, in its `met`).
pub struct SlowTagger<T> {
    pub inner: T,
    pub delay: Duration,
    pub overlap: Arc<Overlap>,
    pub beside: Option<Arc<Overlap>>,
}

impl<T> SlowTagger<T> {
    pub fn new(inner: T, delay: Duration, overlap: &Arc<Overlap>) -> Self {
        SlowTagger {
            inner,
            delay,
            overlap: overlap.clone(),
            beside: None,
        }
    }

    /// Also counts the calls that start while a call of `other` is in progress.
    pub fn beside(mut self, other: &Arc<Overlap>) -> Self {
        self.beside = Some(other.clone());
        self
    }
}

impl<T: LocalTagger> LocalTagger for SlowTagger<T> {
    fn schema(&self) -> &LabelSchema {
        self.inner.schema()
    }

    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>, TaggerError> {
        let _in = self.overlap.enter_beside(0, self.beside.as_deref());
        std::thread::sleep(self.delay);
        self.inner.tag_sentences(sentences, options)
    }
}

/// Which key an LLM request counts under.
pub type KeyOf = Box<dyn Fn(&ClassifyRequest) -> u64 + Send + Sync>;

/// An LLM whose calls (the trait's own `classify_batch`, one `classify` per request) are
/// counted by `overlap` under the key `key_of` gives them (and, against `beside`, in its
/// `met`), and answered by `inner`, after `delay` when it is not zero.
pub struct ObservedLlm<L> {
    pub inner: L,
    pub delay: Duration,
    pub overlap: Arc<Overlap>,
    pub beside: Option<Arc<Overlap>>,
    pub key_of: KeyOf,
}

impl<L> ObservedLlm<L> {
    pub fn new(inner: L, overlap: &Arc<Overlap>) -> Self {
        ObservedLlm {
            inner,
            delay: Duration::ZERO,
            overlap: overlap.clone(),
            beside: None,
            key_of: Box::new(|_| 0),
        }
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Also counts the calls that start while a call of `other` is in progress.
    pub fn beside(mut self, other: &Arc<Overlap>) -> Self {
        self.beside = Some(other.clone());
        self
    }

    pub fn keyed(
        mut self,
        key_of: impl Fn(&ClassifyRequest) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.key_of = Box::new(key_of);
        self
    }
}

#[async_trait]
impl<L: LlmClassifier> LlmClassifier for ObservedLlm<L> {
    fn name(&self) -> String {
        format!("observed {}", self.inner.name())
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer, LlmError> {
        let _in = self
            .overlap
            .enter_beside((self.key_of)(request), self.beside.as_deref());
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.classify(request).await
    }
}

/// An LLM that confirms class 1 for every request (used inside an [`ObservedLlm`] when the
/// answers do not matter).
pub struct ConfirmFirst;

#[async_trait]
impl LlmClassifier for ConfirmFirst {
    fn name(&self) -> String {
        "confirm-first".into()
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer, LlmError> {
        Answer::for_class(request.schema(), 1)
    }
}
