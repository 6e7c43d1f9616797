//! Retry policy: exponential back-off with full jitter, and outage episodes.
//!
//! Pure code: the caller passes the clock and the random draw. An episode turns a stream
//! of failures into three kinds of log line: one when Consul becomes unavailable, at most
//! one reminder a minute, one when it is back.

use std::time::{Duration, Instant};

/// How often an ongoing outage is mentioned again.
pub const REMINDER_INTERVAL: Duration = Duration::from_secs(60);

/// Exponential back-off with full jitter, without an attempt limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A back-off from `initial` up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt: uniform in `[0, min(max, initial × 2^attempt)]`
    /// for `draw` uniform in `[0, 1)`.
    pub fn next_delay(&mut self, draw: f64) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(draw.clamp(0.0, 1.0))
    }

    /// The current ceiling, `min(max, initial × 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.checked_pow(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Starts over (after a success, or an operator's reload).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many attempts have failed since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// What an outage episode asks to be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpisodeEvent {
    /// Consul just became unavailable.
    Started,
    /// Still unavailable, for this long.
    Ongoing(Duration),
    /// Available again after this long.
    Ended(Duration),
}

/// Whether Consul is currently unavailable, since when, and when it was last said.
#[derive(Debug, Clone, Default)]
pub struct Outage {
    since: Option<Instant>,
    last_said: Option<Instant>,
}

impl Outage {
    /// A request failed because Consul is unavailable.
    pub fn failed(&mut self, now: Instant) -> Option<EpisodeEvent> {
        match (self.since, self.last_said) {
            (None, _) => {
                self.since = Some(now);
                self.last_said = Some(now);
                Some(EpisodeEvent::Started)
            }
            (Some(since), Some(said)) if now.duration_since(said) >= REMINDER_INTERVAL => {
                self.last_said = Some(now);
                Some(EpisodeEvent::Ongoing(now.duration_since(since)))
            }
            _ => None,
        }
    }

    /// A request succeeded.
    pub fn succeeded(&mut self, now: Instant) -> Option<EpisodeEvent> {
        let since = self.since.take()?;
        self.last_said = None;
        Some(EpisodeEvent::Ended(now.duration_since(since)))
    }

    /// Since when Consul has been unavailable, if it is.
    pub fn since(&self) -> Option<Instant> {
        self.since
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_with_full_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let ceilings: Vec<_> = (0..9)
            .map(|_| {
                let c = b.ceiling();
                assert!(b.next_delay(0.999) <= c);
                c.as_secs()
            })
            .collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.next_delay(0.0), Duration::ZERO);
        assert_eq!(b.next_delay(0.5), Duration::from_secs(30));
        for _ in 0..100 {
            b.next_delay(1.0);
        }
        assert_eq!(
            b.ceiling(),
            Duration::from_secs(60),
            "no overflow, no limit"
        );
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn an_outage_is_one_episode() {
        let t0 = Instant::now();
        let mut o = Outage::default();
        assert_eq!(o.succeeded(t0), None);
        assert_eq!(o.failed(t0), Some(EpisodeEvent::Started));
        let mut said = Vec::new();
        for s in 1..=150 {
            if let Some(event) = o.failed(t0 + Duration::from_secs(s)) {
                said.push(event);
            }
        }
        assert_eq!(
            said,
            [
                EpisodeEvent::Ongoing(Duration::from_secs(60)),
                EpisodeEvent::Ongoing(Duration::from_secs(120))
            ]
        );
        assert_eq!(
            o.succeeded(t0 + Duration::from_secs(151)),
            Some(EpisodeEvent::Ended(Duration::from_secs(151)))
        );
        assert_eq!(o.since(), None);
    }
}
