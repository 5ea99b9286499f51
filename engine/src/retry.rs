//! What happens after an attempt: delivered, retried later (and when), or given up. Pure maths on
//! durations, so it is tested without a clock.

use std::time::Duration;

/// How an attempt ended, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// A response arrived with this status.
    Status(u16),
    /// No response within the time allowed.
    Timeout,
    /// The host could not be reached (DNS failure, refused or reset connection).
    Unreachable,
    /// Something on our side that retrying cannot fix (a refused address, an unrenderable body).
    Permanent,
}

/// The decision for a send after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    RetryAfter(Duration),
    GiveUp,
}

/// The retry schedule (settings; defaults follow Braze: about five tries within 30 minutes, up to
/// 24 hours while a host is unreachable).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all for sends that got an answer (or timed out).
    pub max_attempts: u32,
    /// Delay before the first retry; each further retry doubles it.
    pub base_delay: Duration,
    /// No single wait is longer than this.
    pub max_delay: Duration,
    /// No retry is scheduled later than this after the first attempt.
    pub give_up_after: Duration,
    /// While the host is unreachable, retries go on (past `max_attempts`) up to this long.
    pub unreachable_give_up_after: Duration,
    /// A `Retry-After` longer than this is cut to it.
    pub retry_after_cap: Duration,
    /// Each delay is scaled by a random factor in `1 ± jitter`.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(30 * 60),
            unreachable_give_up_after: Duration::from_secs(24 * 3600),
            retry_after_cap: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

/// Whether a status is worth retrying: 408, 429 and 5xx. Other 4xx and all 3xx (redirects are not
/// followed) are final.
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

impl RetryPolicy {
    /// Decides after attempt number `attempt` (1 for the first). `since_first` is the time since
    /// the first attempt started; `retry_after` the server's `Retry-After`, if any; `random` a
    /// number in [0, 1) that drives the jitter.
    pub fn decide(
        &self,
        attempt: u32,
        result: AttemptResult,
        since_first: Duration,
        retry_after: Option<Duration>,
        random: f64,
    ) -> Decision {
        let window = match result {
            AttemptResult::Status(s) if (200..300).contains(&s) => return Decision::Delivered,
            AttemptResult::Status(s) if !is_retryable_status(s) => return Decision::GiveUp,
            AttemptResult::Permanent => return Decision::GiveUp,
            AttemptResult::Unreachable => self.unreachable_give_up_after,
            AttemptResult::Status(_) | AttemptResult::Timeout => {
                if attempt >= self.max_attempts {
                    return Decision::GiveUp;
                }
                self.give_up_after
            }
        };
        let delay = match retry_after {
            Some(asked) => asked.min(self.retry_after_cap),
            None => self.backoff(attempt, random),
        };
        if since_first + delay > window {
            return Decision::GiveUp;
        }
        Decision::RetryAfter(delay)
    }

    /// Exponential backoff with jitter: base × 2^(attempt−1) × (1 ± jitter), at most `max_delay`.
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let raw = self.base_delay.as_secs_f64() * f64::from(1u32 << exponent);
        let factor = 1.0 + self.jitter * (2.0 * random.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((raw * factor).min(self.max_delay.as_secs_f64()).max(0.0))
    }
}

/// Reads a `Retry-After` header: delay-seconds, or an HTTP date relative to `now` (epoch seconds).
pub fn parse_retry_after(value: &str, now_epoch: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value)
        .ok()?
        .timestamp();
    Some(Duration::from_secs(
        u64::try_from(at - now_epoch).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn no_jitter() -> RetryPolicy {
        RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn success_is_delivered_and_final_statuses_are_not_retried() {
        let p = no_jitter();
        assert_eq!(
            p.decide(1, AttemptResult::Status(204), Duration::ZERO, None, 0.5),
            Decision::Delivered
        );
        for status in [301, 302, 400, 401, 403, 404, 410, 422] {
            assert_eq!(
                p.decide(1, AttemptResult::Status(status), Duration::ZERO, None, 0.5),
                Decision::GiveUp,
                "{status}"
            );
        }
        assert_eq!(
            p.decide(1, AttemptResult::Permanent, Duration::ZERO, None, 0.5),
            Decision::GiveUp
        );
    }

    #[test]
    fn retryable_failures_back_off_exponentially_and_stop_after_five_attempts() {
        let p = no_jitter();
        let mut elapsed = Duration::ZERO;
        let mut delays = Vec::new();
        for attempt in 1..=5 {
            match p.decide(attempt, AttemptResult::Status(503), elapsed, None, 0.5) {
                Decision::RetryAfter(d) => {
                    delays.push(d);
                    elapsed += d;
                }
                other => {
                    assert_eq!(attempt, 5, "gave up early: {other:?}");
                    assert_eq!(other, Decision::GiveUp);
                }
            }
        }
        assert_eq!(delays, vec![MIN, 2 * MIN, 4 * MIN, 8 * MIN]);
        assert!(elapsed <= Duration::from_secs(30 * 60));
    }

    #[test]
    fn timeouts_408_and_429_are_retried() {
        let p = no_jitter();
        for result in [
            AttemptResult::Timeout,
            AttemptResult::Status(408),
            AttemptResult::Status(429),
        ] {
            assert!(matches!(
                p.decide(1, result, Duration::ZERO, None, 0.5),
                Decision::RetryAfter(_)
            ));
        }
    }

    #[test]
    fn retry_after_is_honoured_within_the_cap() {
        let p = no_jitter();
        let asked = Duration::from_secs(7);
        assert_eq!(
            p.decide(
                1,
                AttemptResult::Status(429),
                Duration::ZERO,
                Some(asked),
                0.9
            ),
            Decision::RetryAfter(asked)
        );
        let huge = Duration::from_secs(10 * 3600);
        let capped = RetryPolicy {
            give_up_after: Duration::from_secs(3 * 3600),
            ..no_jitter()
        };
        assert_eq!(
            capped.decide(
                1,
                AttemptResult::Status(503),
                Duration::ZERO,
                Some(huge),
                0.5
            ),
            Decision::RetryAfter(Duration::from_secs(3600))
        );
    }

    #[test]
    fn a_retry_that_would_land_past_the_window_gives_up() {
        let p = no_jitter();
        let late = Duration::from_secs(29 * 60);
        assert_eq!(
            p.decide(2, AttemptResult::Status(500), late, None, 0.5),
            Decision::GiveUp
        );
    }

    #[test]
    fn unreachable_hosts_are_retried_past_five_attempts_for_up_to_a_day() {
        let p = no_jitter();
        assert!(
            matches!(p.decide(9, AttemptResult::Unreachable, Duration::from_secs(3600), None, 0.5), Decision::RetryAfter(d) if d == Duration::from_secs(3600))
        );
        assert_eq!(
            p.decide(
                30,
                AttemptResult::Unreachable,
                Duration::from_secs(24 * 3600),
                None,
                0.5
            ),
            Decision::GiveUp
        );
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let p = RetryPolicy::default();
        for random in [0.0, 0.25, 0.5, 0.999] {
            let d = p.backoff(1, random).as_secs_f64();
            assert!((48.0..=72.0).contains(&d), "{d}");
        }
        assert_eq!(p.backoff(30, 0.999), p.max_delay);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .timestamp();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
