//! The shared tier of the answer cache: a [`SharedStore`] several processes read and write
//! (replicas of `linkner serve`, later runs), behind the in-memory [`AnswerCache`].
//!
//! The [`Cached`](crate::layer::Cached) layer looks a request up in memory first; on a miss it
//! asks the shared store (an answer found there is copied into memory), and only on a miss
//! there it calls the LLM, whose answer it writes to both tiers. The shared tier is a best
//! effort, never a source of failures:
//!
//! - every operation is bounded by the tier's [`timeout`](SharedTier::timeout) (200 ms by
//!   default); an error, a timeout or a value that does not decode is a **miss** for a read
//!   and a counted failure for a write, never an [`LlmError`](crate::LlmError) — the LLM is
//!   asked and the answer returned as if there were no shared tier;
//! - after a failure the tier is skipped for a [`cooldown`](SharedTier::cooldown) (1 s by
//!   default), so a store that went away costs each call nothing instead of a timeout; the
//!   first operation after the cool-down probes it again, and the tier is back as soon as the
//!   store answers;
//! - [`Stats`](crate::Stats) counts the tier's hits, misses and errors
//!   (`shared_cache_hits`, `shared_cache_misses`, `shared_cache_errors`).
//!
//! [`RedisStore`](crate::RedisStore) (feature `redis`, on with `openai`) is the built-in
//! store; any other one implements [`SharedStore`] and is given to
//! [`Reliability::shared_store`](crate::layer::Reliability::shared_store).
//!
//! [`AnswerCache`]: crate::AnswerCache

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::cache::{CacheKey, CachedAnswer};

/// Why a shared-store operation did not complete. Never returned to a caller of
/// [`LlmClassifier::classify`](crate::LlmClassifier::classify): the
/// [`Cached`](crate::layer::Cached) layer logs and counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or the exchange failed (refused, reset, closed, an
    /// error reply).
    #[error("shared answer store unavailable: {0}")]
    Unavailable(String),
    /// The operation took longer than the tier's timeout.
    #[error("shared answer store did not answer within {0:?}")]
    Timeout(Duration),
    /// The stored value is not an answer this version reads (another format, corrupted).
    #[error("undecodable value in the shared answer store: {0}")]
    Invalid(String),
    /// The store is misconfigured (a bad URL, …).
    #[error("shared answer store misconfigured: {0}")]
    Config(String),
}

/// A store of answers shared by processes: the second tier of the answer cache, behind the
/// in-memory one. Implementations are cheap to share (`Arc`), safe to call concurrently,
/// and need not bound their own time: the [`Cached`](crate::layer::Cached) layer wraps every
/// call in the tier's timeout (a future dropped at the timeout must leave the store usable).
#[async_trait]
pub trait SharedStore: Send + Sync + std::fmt::Debug {
    /// What the store is, for logs (e.g. `redis://127.0.0.1:6379/0`, without credentials).
    fn describe(&self) -> String;

    /// The answer stored under `key`: `Ok(None)` when there is none, [`StoreError::Invalid`]
    /// when the stored value does not decode.
    async fn get(&self, key: CacheKey) -> Result<Option<CachedAnswer>, StoreError>;

    /// Stores `answer` under `key` (replacing what was there).
    async fn put(&self, key: CacheKey, answer: &CachedAnswer) -> Result<(), StoreError>;

    /// Checks that the store answers (for a readiness probe). The default says yes.
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A [`SharedStore`] with the bounds the [`Cached`](crate::layer::Cached) layer applies to
/// it: a timeout per operation and a cool-down after a failure.
#[derive(Debug, Clone)]
pub struct SharedTier {
    /// The store.
    pub store: Arc<dyn SharedStore>,
    /// Longest time one operation (a read or a write) may take; past it, the operation is a
    /// failure.
    pub timeout: Duration,
    /// How long the tier is skipped after a failure (`Duration::ZERO`: never skipped; at
    /// most a day).
    pub cooldown: Duration,
}

impl SharedTier {
    /// Default time limit of one operation.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
    /// Default cool-down after a failure.
    pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);

    /// `store` with the default timeout and cool-down.
    pub fn new(store: impl SharedStore + 'static) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A store already shared (e.g. by several backends), with the default timeout and
    /// cool-down.
    pub fn from_arc(store: Arc<dyn SharedStore>) -> Self {
        SharedTier {
            store,
            timeout: Self::DEFAULT_TIMEOUT,
            cooldown: Self::DEFAULT_COOLDOWN,
        }
    }

    /// Sets the time limit of one operation.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Sets the cool-down after a failure.
    pub fn cooldown(mut self, d: Duration) -> Self {
        self.cooldown = d;
        self
    }
}
