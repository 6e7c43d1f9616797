//! Telling systemd how the daemon is doing (`Type=notify`): `READY=1` once the daemon can
//! work, `STATUS=` on every state change, `WATCHDOG=1` from the delivery loop itself,
//! `RELOADING=1`/`READY=1` around a reload, `STOPPING=1` on shutdown. Every call is a
//! no-op outside systemd (no `NOTIFY_SOCKET`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::daemon::{DaemonObserver, ReloadPhase};
use crate::delivery::events::Stats;
use crate::delivery::pipeline::Observer;

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify systemd: {e}");
    }
}

/// The daemon's link to systemd.
#[derive(Debug)]
pub struct Systemd {
    watchdog: Option<Duration>,
    last_ping: Instant,
    last_status: String,
    outage_since: Option<Instant>,
}

impl Default for Systemd {
    fn default() -> Self {
        Self::new()
    }
}

impl Systemd {
    /// Reads `WATCHDOG_USEC` (for this process) from the environment.
    pub fn new() -> Self {
        Self {
            watchdog: sd_notify::watchdog_enabled(),
            last_ping: Instant::now(),
            last_status: String::new(),
            outage_since: None,
        }
    }

    /// Sends `STOPPING=1`.
    pub fn stopping() {
        notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

/// The `STATUS=` line for the current state.
pub fn status_line(stats: &Stats, outage: Option<Duration>) -> String {
    let queued = stats.queued.load(Ordering::Relaxed);
    let held = stats.held.load(Ordering::Relaxed);
    let held = if held > 0 {
        format!(", {held} held")
    } else {
        String::new()
    };
    match outage {
        Some(outage) => {
            let cause = stats.consul_cause.lock().expect("stats lock").clone();
            format!(
                "consul unavailable for {} ({cause}); {queued} queued{held}",
                humantime::format_duration(Duration::from_secs(outage.as_secs()))
            )
        }
        None if queued == 0 => "idle; 0 queued; consul ok".to_owned(),
        None => format!("delivering; {queued} queued{held}; consul ok"),
    }
}

impl Observer for Systemd {
    fn heartbeat(&self) -> Option<Duration> {
        self.watchdog
            .map(|interval| (interval / 3).max(Duration::from_millis(10)))
    }

    fn alive(&mut self) {
        if let Some(interval) = self.watchdog
            && self.last_ping.elapsed() >= interval / 3
        {
            notify(&[NotifyState::Watchdog]);
            self.last_ping = Instant::now();
        }
    }

    fn changed(&mut self, stats: &Stats) {
        let down = stats.consul_down.load(Ordering::Relaxed);
        self.outage_since = match (down, self.outage_since) {
            (true, None) => Some(Instant::now()),
            (true, since) => since,
            (false, _) => None,
        };
        let status = status_line(stats, self.outage_since.map(|s| s.elapsed()));
        if status != self.last_status {
            notify(&[NotifyState::Status(&status)]);
            self.last_status = status;
        }
    }
}

impl DaemonObserver for Systemd {
    fn ready(&mut self) {
        notify(&[
            NotifyState::Ready,
            NotifyState::Status("started; scanning the spool"),
        ]);
        self.last_ping = Instant::now();
        if self.watchdog.is_some() {
            notify(&[NotifyState::Watchdog]);
        }
    }

    fn reload_notifier(&self) -> Box<dyn Fn(ReloadPhase) + Send + Sync> {
        Box::new(|phase| match phase {
            ReloadPhase::Reloading => {
                // systemd 253 and later want the time with RELOADING=1.
                let mut states = vec![NotifyState::Reloading];
                if let Ok(now) = NotifyState::monotonic_usec_now() {
                    states.push(now);
                }
                notify(&states);
            }
            ReloadPhase::Done => notify(&[NotifyState::Ready]),
        })
    }

    fn as_pipeline_observer(&mut self) -> &mut dyn Observer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let stats = Stats::default();
        assert_eq!(status_line(&stats, None), "idle; 0 queued; consul ok");
        stats.queued.store(12, Ordering::Relaxed);
        assert_eq!(
            status_line(&stats, None),
            "delivering; 12 queued; consul ok"
        );
        stats.queued.store(230, Ordering::Relaxed);
        *stats.consul_cause.lock().unwrap() = "connection refused".into();
        assert_eq!(
            status_line(&stats, Some(Duration::from_secs(245))),
            "consul unavailable for 4m 5s (connection refused); 230 queued"
        );
    }
}
