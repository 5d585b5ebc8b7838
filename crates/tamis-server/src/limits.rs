//! Rate limits per user or API key, by tier, on the expensive endpoints
//! (uploads, ingests, jobs).
//!
//! A fixed window per caller: at most N requests per window (an hour by
//! default), answered 429 with `Retry-After` up to the window's end. The
//! counters live in this process, or in Redis (`--redis-url`) when several
//! servers must share them; there one `INCR` + `EXPIRE` pipeline per request
//! keeps the count atomic across servers.
//!
//! When Redis fails (down, unreachable, or slower than [`REDIS_WAIT`]), the
//! request is counted in this process instead, so limits still hold (per
//! server) through an outage, and the API stays up. The connection is a
//! `redis::aio::ConnectionManager`, which reconnects by itself: shared
//! counting resumes when Redis is back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::ApiError;

/// Requests per window of each tier.
#[derive(Debug, Clone)]
pub struct Tiers {
    /// Tier name → requests per window.
    pub per_window: BTreeMap<String, u64>,
    /// The window, in seconds.
    pub window_secs: u64,
}

impl Default for Tiers {
    /// `free` 100 and `premium` 1000 per hour; `unlimited` has no limit.
    fn default() -> Tiers {
        Tiers {
            per_window: BTreeMap::from([("free".into(), 100), ("premium".into(), 1000)]),
            window_secs: 3600,
        }
    }
}

impl Tiers {
    /// Parses `free=100,premium=1000` (requests per window).
    pub fn parse(spec: &str, window_secs: u64) -> Result<Tiers, String> {
        let mut per_window = BTreeMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, n) = part
                .split_once('=')
                .ok_or_else(|| format!("rate-limit tier `{part}`: write NAME=REQUESTS"))?;
            let n: u64 = n.trim().parse().map_err(|_| {
                format!("rate-limit tier `{part}`: REQUESTS must be a whole number")
            })?;
            per_window.insert(name.trim().to_string(), n);
        }
        if window_secs == 0 {
            return Err("the rate-limit window must be at least 1 second".into());
        }
        Ok(Tiers {
            per_window,
            window_secs,
        })
    }
}

/// The longest a request waits for Redis before it is counted in this
/// process instead.
pub const REDIS_WAIT: Duration = Duration::from_millis(500);

/// Per caller: (window, requests in it).
type Local = Mutex<HashMap<String, (u64, u64)>>;

enum Counters {
    Memory(Local),
    /// Redis, and this process's counters for when Redis fails.
    Redis(redis::aio::ConnectionManager, Local),
}

/// Counts a request of `who` in `window` in this process's counters.
fn count_local(m: &Local, who: &str, window: u64) -> u64 {
    let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
    if m.len() > 100_000 {
        m.retain(|_, (win, _)| *win == window);
    }
    let e = m.entry(who.to_string()).or_insert((window, 0));
    if e.0 != window {
        *e = (window, 0);
    }
    e.1 += 1;
    e.1
}

/// The rate limiter.
pub struct Limiter {
    counters: Counters,
    tiers: Tiers,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.counters {
            Counters::Memory(_) => "memory",
            Counters::Redis(..) => "redis",
        };
        write!(f, "Limiter({kind}, {:?})", self.tiers)
    }
}

/// Errors opening the limiter.
#[derive(Debug, thiserror::Error)]
#[error("Redis at `{url}`: {message}")]
pub struct RedisError {
    url: String,
    message: String,
}

impl Limiter {
    /// Counters in this process.
    pub fn memory(tiers: Tiers) -> Limiter {
        Limiter {
            counters: Counters::Memory(Mutex::new(HashMap::new())),
            tiers,
        }
    }

    /// Counters in Redis, shared by every server pointed at it.
    pub async fn redis(url: &str, tiers: Tiers) -> Result<Limiter, RedisError> {
        let err = |e: redis::RedisError| RedisError {
            url: url.to_string(),
            message: e.to_string(),
        };
        let client = redis::Client::open(url).map_err(err)?;
        // Reconnection is tried on the requests after a failure (which are
        // counted here meanwhile), not in a long retry loop.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_WAIT))
            .set_response_timeout(Some(REDIS_WAIT))
            .set_number_of_retries(1)
            .set_max_delay(REDIS_WAIT);
        let mut conn = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(err)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(Limiter {
            counters: Counters::Redis(conn, Mutex::new(HashMap::new())),
            tiers,
        })
    }

    /// Counts a request of `who` (a user or key id) in `tier`; refuses it with
    /// 429 and the seconds to wait when the window's allowance is spent. An
    /// unknown tier has no limit only if it is named `unlimited`; otherwise it
    /// gets the smallest allowance configured.
    pub async fn check(&self, who: &str, tier: &str) -> Result<(), ApiError> {
        let Some(limit) = self.limit_of(tier) else {
            return Ok(());
        };
        let w = self.tiers.window_secs;
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let window = now / w;
        let retry = (window + 1) * w - now;
        let count = match &self.counters {
            Counters::Memory(m) => count_local(m, who, window),
            Counters::Redis(conn, local) => {
                let key = format!("tamis:rl:{who}:{window}");
                let mut conn = conn.clone();
                let mut pipe = redis::pipe();
                pipe.atomic().incr(&key, 1u64).expire(&key, w as i64 + 1);
                let r = tokio::time::timeout(REDIS_WAIT, pipe.query_async::<(u64, i64)>(&mut conn))
                    .await
                    .map_err(|_| format!("no answer in {} ms", REDIS_WAIT.as_millis()))
                    .and_then(|r| r.map_err(|e| e.to_string()));
                match r {
                    Ok((n, _)) => n,
                    Err(why) => {
                        // An unreachable Redis must not take the API down,
                        // nor lift the limits: this server counts alone.
                        tracing::warn!(
                            "rate limiter: Redis failed ({why}); counting in this server"
                        );
                        count_local(local, who, window)
                    }
                }
            }
        };
        if count > limit {
            return Err(ApiError::too_many(
                "rate_limited",
                format!("rate limit of the {tier} tier reached ({limit} requests per {w} s); retry in {retry} s"),
                retry,
            )
            .with_details(serde_json::json!({"tier": tier, "limit": limit, "window_secs": w})));
        }
        Ok(())
    }

    fn limit_of(&self, tier: &str) -> Option<u64> {
        if tier == "unlimited" {
            return None;
        }
        if let Some(n) = self.tiers.per_window.get(tier) {
            return Some(*n);
        }
        self.tiers.per_window.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_counts_per_caller_and_tier() {
        let l = Limiter::memory(Tiers::parse("free=2,premium=3", 3600).unwrap());
        for _ in 0..2 {
            l.check("a", "free").await.unwrap();
        }
        let e = l.check("a", "free").await.unwrap_err();
        assert_eq!(e.status, 429);
        assert!(e.retry_after.unwrap() <= 3600);
        l.check("b", "free").await.unwrap();
        for _ in 0..3 {
            l.check("c", "premium").await.unwrap();
        }
        assert!(l.check("c", "premium").await.is_err());
        // An unknown tier gets the smallest allowance; `unlimited` none.
        l.check("d", "gold").await.unwrap();
        l.check("d", "gold").await.unwrap();
        assert!(l.check("d", "gold").await.is_err());
        for _ in 0..10 {
            l.check("e", "unlimited").await.unwrap();
        }
    }

    #[test]
    fn tiers_parse_and_refuse() {
        let t = Tiers::parse("free=5, premium = 50", 60).unwrap();
        assert_eq!(t.per_window["premium"], 50);
        assert!(Tiers::parse("free", 60).is_err());
        assert!(Tiers::parse("free=x", 60).is_err());
        assert!(Tiers::parse("free=1", 0).is_err());
    }
}
