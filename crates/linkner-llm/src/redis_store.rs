//! [`RedisStore`]: the shared answer cache in Redis (feature `redis`).
//!
//! Each answer is one Redis string: the key is a prefix and the [`CacheKey`] in hex
//! (`linkner:answer:v1:<32 hex digits>`), the value the [`CachedAnswer`] as JSON, with an
//! optional expiry. The connection is a [`ConnectionManager`] (one multiplexed connection
//! that reconnects by itself after the server went away), made on the first operation, so
//! that building a store needs neither a runtime nor a reachable server.
//!
//! Use a store from one tokio runtime: the connection's background tasks live on the runtime
//! of the first operation.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::cache::{CacheKey, CachedAnswer};
use crate::shared::{SharedStore, StoreError};

/// Longest time one connection attempt may take (the operations themselves are bounded by
/// the [`SharedTier`](crate::shared::SharedTier)'s timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Backstop for a reply that never comes (the tier's timeout is far shorter).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connection attempts in one reconnection (each failed operation starts a new one).
const CONNECT_RETRIES: usize = 2;

/// Answers shared through a Redis server (see the [module docs](self)).
pub struct RedisStore {
    client: redis::Client,
    shown: String,
    prefix: String,
    ttl: Option<Duration>,
    manager: tokio::sync::OnceCell<ConnectionManager>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the client: its connection info holds the password.
        f.debug_struct("RedisStore")
            .field("url", &self.shown)
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The default key prefix (the `v1` is the value format's version).
    pub const DEFAULT_PREFIX: &'static str = "linkner:answer:v1:";

    /// A store on the server at `url` (`redis://[[user]:password@]host[:port][/db]`, or
    /// `redis+unix:///path/to/socket`), with [`RedisStore::DEFAULT_PREFIX`] and no expiry.
    /// Only parses the URL: the connection is made on the first operation.
    pub fn open(url: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Config(format!("{}: {e}", redact(url))))?;
        Ok(RedisStore {
            client,
            shown: redact(url),
            prefix: Self::DEFAULT_PREFIX.into(),
            ttl: None,
            manager: tokio::sync::OnceCell::new(),
        })
    }

    /// Sets the key prefix (to keep deployments that share one Redis apart).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets how long a stored answer lives (`None`: until Redis evicts it). Rounded up to
    /// whole seconds.
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl.filter(|d| !d.is_zero());
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How long a stored answer lives, when it expires.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The Redis key of a cache key: the prefix and the key's 32 hex digits.
    pub fn redis_key(&self, key: CacheKey) -> String {
        format!("{}{}", self.prefix, key.to_hex())
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let client = self.client.clone();
        let manager = self
            .manager
            .get_or_try_init(|| async move {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(CONNECT_RETRIES)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)
            })
            .await?;
        Ok(manager.clone())
    }
}

/// A Redis error as a store error: a value of the wrong type or shape is [`StoreError::Invalid`],
/// anything else [`StoreError::Unavailable`].
fn unavailable(e: redis::RedisError) -> StoreError {
    let wrong_value = e.code() == Some("WRONGTYPE")
        || matches!(
            e.kind(),
            redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType
        );
    if wrong_value {
        StoreError::Invalid(e.to_string())
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

/// The URL without its password (for logs and errors).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[async_trait]
impl SharedStore for RedisStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn get(&self, key: CacheKey) -> Result<Option<CachedAnswer>, StoreError> {
        let mut conn = self.connection().await?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.redis_key(key));
        let value: Option<Vec<u8>> = cmd.query_async(&mut conn).await.map_err(unavailable)?;
        value
            .map(|v| serde_json::from_slice(&v).map_err(|e| StoreError::Invalid(e.to_string())))
            .transpose()
    }

    async fn put(&self, key: CacheKey, answer: &CachedAnswer) -> Result<(), StoreError> {
        let value = serde_json::to_vec(answer).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut conn = self.connection().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.redis_key(key)).arg(value);
        if let Some(ttl) = self.ttl {
            let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
            cmd.arg("EX").arg(secs);
        }
        cmd.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn check(&self) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!("PING answered {pong:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact("redis://app:s3:cret@host/1"),
            "redis://app:***@host/1"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        let s = RedisStore::open("redis://u:pw@127.0.0.1:1/0").unwrap();
        assert!(!format!("{} {s:?}", s.describe()).contains("pw"));
    }

    #[test]
    fn keys_carry_the_prefix_and_the_hex_key() {
        let s = RedisStore::open("redis://127.0.0.1:1/0").unwrap();
        let k = CacheKey::builder().str("linkner").finish();
        assert_eq!(
            s.redis_key(k),
            "linkner:answer:v1:d7622dbe00940dcb9ca27e2dab756135"
        );
        let s = s
            .with_prefix("prod:")
            .with_ttl(Some(Duration::from_millis(1500)));
        assert_eq!(s.redis_key(k), format!("prod:{}", k.to_hex()));
        assert_eq!(s.ttl(), Some(Duration::from_millis(1500)));
        assert!(RedisStore::open("not a url").is_err());
    }
}
