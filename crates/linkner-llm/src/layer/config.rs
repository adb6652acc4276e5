//! [`ReliabilityConfig`]: the serialisable settings of the reliability layers, so that any
//! backend — the OpenAI one or your own — gets its retries, deadline, in-flight bound, circuit
//! breaker and answer cache from a file.
//!
//! ```
//! use linkner_llm::layer::{LlmClassifierExt, ReliabilityConfig};
//! # use linkner_llm::{async_trait, Answer, ClassifyRequest, LlmClassifier, LlmError};
//! # struct Mine;
//! # #[async_trait]
//! # impl LlmClassifier for Mine {
//! #     fn name(&self) -> String { "mine".into() }
//! #     async fn classify(&self, r: &ClassifyRequest) -> Result<Answer, LlmError> {
//! #         Answer::for_class(r.schema(), 1)
//! #     }
//! # }
//! let settings: ReliabilityConfig =
//!     serde_json::from_str(r#"{"max_retries": 1, "max_in_flight": 8, "deadline_s": 30}"#)?;
//! let backend = Mine.reliable(settings.build()?);
//! # let _ = backend;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BreakerPolicy, Reliability, RetryPolicy};
use crate::cache::AnswerCache;
use crate::error::{LlmError, Result};
#[cfg(feature = "redis")]
use crate::redis_store::RedisStore;
use crate::shared::SharedTier;

/// Serialisable settings of the reliability layers ([`Reliability`]): one per-entity deadline,
/// retries with backoff, the in-flight bound, the circuit breaker and the answer cache (in
/// memory, a JSONL file, a shared Redis tier). Missing fields take their defaults (those of
/// the OpenAI backend); unknown fields are refused. [`build`](ReliabilityConfig::build) checks
/// every value (the error names the field) and makes the [`Reliability`] to wrap any backend
/// in ([`LlmClassifierExt::reliable`](super::LlmClassifierExt::reliable)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ReliabilityConfig {
    /// Overall time for one entity across all its attempts and backoffs, seconds (`null`: no
    /// limit). Time spent waiting for an in-flight slot does not count.
    pub deadline_s: Option<f64>,
    /// Retries after the first attempt for retryable failures.
    pub max_retries: u32,
    /// First backoff delay, milliseconds (doubles every retry, with jitter).
    pub backoff_base_ms: u64,
    /// Largest backoff delay, milliseconds.
    pub backoff_max_ms: u64,
    /// Largest `Retry-After` honoured, seconds (longer requests are capped to this).
    pub max_retry_after_s: f64,
    /// Most entities in flight at once (each holds its slot across its retries, so this also
    /// bounds the requests in flight).
    pub max_in_flight: usize,
    /// Failure points in a row that open the circuit breaker (0: never): a timeout counts 2,
    /// a connection failure 1 (default 8: one round of 4 timeouts, or 8 refused connections).
    pub breaker_threshold: u32,
    /// How long the open breaker fails calls fast before probing the server, seconds.
    pub breaker_cooldown_s: f64,
    /// Each failed probe doubles the cool-down, up to this, seconds.
    pub breaker_max_cooldown_s: f64,
    /// Cache answers in memory.
    pub cache: bool,
    /// Most answers the cache keeps in memory (least recently used go first).
    pub cache_capacity: usize,
    /// Also keep the cache in this JSONL file (loaded at build, appended to).
    pub cache_path: Option<PathBuf>,
    /// Share answers through this Redis server (`redis://[:password@]host[:port][/db]`), behind
    /// the in-memory cache: replicas and later runs reuse each other's answers. Redis being
    /// unreachable or going away never fails an answer (see [`crate::shared`]). Independent of
    /// `cache`, which is the in-memory tier only.
    pub cache_redis_url: Option<String>,
    /// How long an answer lives in Redis, seconds (`None`: until Redis evicts it).
    pub cache_redis_ttl_s: Option<u64>,
    /// Longest time one Redis read or write may take, milliseconds (past it: a miss, or an
    /// unwritten answer; Redis is then skipped for a second).
    pub cache_redis_timeout_ms: u64,
}

impl Default for ReliabilityConfig {
    fn default() -> Self {
        ReliabilityConfig {
            deadline_s: Some(120.0),
            max_retries: 3,
            backoff_base_ms: 250,
            backoff_max_ms: 8_000,
            max_retry_after_s: 30.0,
            max_in_flight: 4,
            breaker_threshold: 8,
            breaker_cooldown_s: 30.0,
            breaker_max_cooldown_s: 300.0,
            cache: true,
            cache_capacity: AnswerCache::DEFAULT_CAPACITY,
            cache_path: None,
            cache_redis_url: None,
            cache_redis_ttl_s: None,
            cache_redis_timeout_ms: SharedTier::DEFAULT_TIMEOUT.as_millis() as u64,
        }
    }
}

/// A positive number of seconds as a duration, or an error naming the field.
pub(crate) fn positive_secs(field: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| LlmError::InvalidSetting {
            field: field.into(),
            message: format!("must be a positive number of seconds, got {v}"),
        })
}

/// A number of seconds ≥ 0 as a duration, or an error naming the field.
pub(crate) fn non_negative_secs(field: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| LlmError::InvalidSetting {
        field: field.into(),
        message: format!("must be a number of seconds ≥ 0, got {v}"),
    })
}

/// An error naming `field` when `v` is 0.
pub(crate) fn at_least_one(field: &str, v: u64) -> Result<()> {
    if v == 0 {
        return Err(LlmError::InvalidSetting {
            field: field.into(),
            message: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// The shared tier on a Redis server (opening a store does not connect).
#[cfg(feature = "redis")]
fn redis_tier(url: &str, ttl_s: Option<u64>) -> Result<SharedTier> {
    let store = RedisStore::open(url)
        .map_err(|e| LlmError::InvalidSetting {
            field: "cache_redis_url".into(),
            message: e.to_string(),
        })?
        .with_ttl(ttl_s.map(Duration::from_secs));
    Ok(SharedTier::new(store))
}

/// Without the `redis` feature a Redis URL is refused, naming the field.
#[cfg(not(feature = "redis"))]
fn redis_tier(_url: &str, _ttl_s: Option<u64>) -> Result<SharedTier> {
    Err(LlmError::InvalidSetting {
        field: "cache_redis_url".into(),
        message: "needs linkner-llm's `redis` feature (on with `openai`, the default)".into(),
    })
}

impl ReliabilityConfig {
    /// Checks every value; the error names the field ([`LlmError::InvalidSetting`]).
    pub fn validate(&self) -> Result<()> {
        if let Some(d) = self.deadline_s {
            positive_secs("deadline_s", d)?;
        }
        non_negative_secs("max_retry_after_s", self.max_retry_after_s)?;
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err(LlmError::InvalidSetting {
                field: "backoff_max_ms".into(),
                message: format!(
                    "must be ≥ backoff_base_ms ({}), got {}",
                    self.backoff_base_ms, self.backoff_max_ms
                ),
            });
        }
        at_least_one("max_in_flight", self.max_in_flight as u64)?;
        at_least_one("cache_capacity", self.cache_capacity as u64)?;
        at_least_one("cache_redis_timeout_ms", self.cache_redis_timeout_ms)?;
        if let Some(ttl) = self.cache_redis_ttl_s {
            at_least_one("cache_redis_ttl_s", ttl)?;
        }
        if let Some(url) = &self.cache_redis_url {
            redis_tier(url, self.cache_redis_ttl_s)?;
        }
        self.validate_breaker()
    }

    fn validate_breaker(&self) -> Result<()> {
        if self.breaker_threshold == 0 {
            return Ok(());
        }
        positive_secs("breaker_cooldown_s", self.breaker_cooldown_s)?;
        let max = positive_secs("breaker_max_cooldown_s", self.breaker_max_cooldown_s)?;
        if max < Duration::from_secs_f64(self.breaker_cooldown_s) {
            return Err(LlmError::InvalidSetting {
                field: "breaker_max_cooldown_s".into(),
                message: format!(
                    "must be ≥ breaker_cooldown_s ({}), got {}",
                    self.breaker_cooldown_s, self.breaker_max_cooldown_s
                ),
            });
        }
        Ok(())
    }

    /// The retry policy of these settings.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            max_retry_after: Duration::try_from_secs_f64(self.max_retry_after_s)
                .unwrap_or_default(),
        }
    }

    /// The circuit breaker policy of these settings.
    pub fn breaker_policy(&self) -> BreakerPolicy {
        let secs = |v: f64| Duration::try_from_secs_f64(v).unwrap_or_default();
        BreakerPolicy {
            threshold: self.breaker_threshold,
            cooldown: secs(self.breaker_cooldown_s),
            max_cooldown: secs(self.breaker_max_cooldown_s),
        }
    }

    /// The shared answer tier of these settings: a Redis store on `cache_redis_url` with
    /// its expiry and timeout (`None` without a URL). Connects on first use.
    pub fn shared_tier(&self) -> Result<Option<SharedTier>> {
        let Some(url) = &self.cache_redis_url else {
            return Ok(None);
        };
        let tier = redis_tier(url, self.cache_redis_ttl_s)?;
        Ok(Some(tier.timeout(Duration::from_millis(
            self.cache_redis_timeout_ms,
        ))))
    }

    /// The answer cache of these settings: in memory when `cache` is on, kept in
    /// `cache_path` when one is given (which turns the cache on), none otherwise.
    pub fn answer_cache(&self) -> Result<Option<Arc<AnswerCache>>> {
        Ok(match (&self.cache_path, self.cache) {
            (Some(p), _) => Some(Arc::new(AnswerCache::with_file_and_capacity(
                p,
                self.cache_capacity,
            )?)),
            (None, true) => Some(Arc::new(AnswerCache::with_capacity(self.cache_capacity))),
            (None, false) => None,
        })
    }

    /// Checks the settings and makes the layers' [`Reliability`] (opening the cache file
    /// and the Redis tier when there are ones).
    pub fn build(&self) -> Result<Reliability> {
        self.validate()?;
        self.layers()
    }

    /// The layers of settings already checked (the OpenAI builder checks its whole config
    /// first): opens the cache file and the Redis tier when there are ones.
    pub(crate) fn layers(&self) -> Result<Reliability> {
        Ok(Reliability {
            retry: self.retry_policy(),
            max_in_flight: self.max_in_flight,
            deadline: self
                .deadline_s
                .and_then(|s| Duration::try_from_secs_f64(s).ok()),
            breaker: self.breaker_policy(),
            cache: self.answer_cache()?,
            shared: self.shared_tier()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gives_the_layers_and_names_a_bad_field() {
        let c: ReliabilityConfig = serde_json::from_str(
            r#"{"max_retries": 1, "max_in_flight": 8, "deadline_s": null, "cache": false}"#,
        )
        .unwrap();
        let r = c.build().unwrap();
        assert_eq!(
            (r.retry.max_retries, r.max_in_flight, r.deadline),
            (1, 8, None)
        );
        assert!(r.cache.is_none() && r.shared.is_none());
        // Defaults for what the file leaves out.
        assert_eq!(
            r.breaker.threshold,
            ReliabilityConfig::default().breaker_threshold
        );
        let bad = ReliabilityConfig {
            backoff_base_ms: 500,
            backoff_max_ms: 100,
            ..ReliabilityConfig::default()
        };
        match bad.build() {
            Err(LlmError::InvalidSetting { field, .. }) => assert_eq!(field, "backoff_max_ms"),
            other => panic!("{other:?}"),
        }
        assert!(serde_json::from_str::<ReliabilityConfig>(r#"{"retries": 1}"#).is_err());
    }
}
