//! Every observable condition of delivery, named: each function logs one line with
//! stable snake_case fields and updates the counters, so the logs, the periodic summary
//! and systemd's `STATUS=` never disagree.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tracing::{debug, error, info, warn};

use crate::spool::quarantine::Reason;

/// Counters and gauges of a running daemon.
#[derive(Debug, Default)]
pub struct Stats {
    /// Files delivered and deleted.
    pub delivered_files: AtomicU64,
    /// Records acknowledged by Consul.
    pub delivered_records: AtomicU64,
    /// Files moved to `failed/`.
    pub quarantined: AtomicU64,
    /// Files waiting in `new/` (queued, held or settling).
    pub queued: AtomicU64,
    /// Files held because Consul refuses their key to this token.
    pub held: AtomicU64,
    /// Entries of `new/` left alone at the last scan.
    pub ignored: AtomicU64,
    /// Age of the oldest queued file, in seconds.
    pub oldest_age_s: AtomicU64,
    /// Whether Consul is currently unavailable.
    pub consul_down: AtomicBool,
    /// Why Consul is unavailable, in a few words (empty when it is not).
    pub consul_cause: Mutex<String>,
}

impl Stats {
    /// `ok`, or `unavailable`.
    pub fn consul_state(&self) -> &'static str {
        if self.consul_down.load(Ordering::Relaxed) {
            "unavailable"
        } else {
            "ok"
        }
    }
}

/// A file's records were all acknowledged and the file deleted.
pub fn file_delivered(stats: &Stats, file: &str, records: usize) {
    stats.delivered_files.fetch_add(1, Ordering::Relaxed);
    stats
        .delivered_records
        .fetch_add(records as u64, Ordering::Relaxed);
    debug!(file, records, "delivered");
}

/// A file was moved to `failed/`.
pub fn file_quarantined(stats: &Stats, file: &str, failed_as: &str, reason: &Reason) {
    stats.quarantined.fetch_add(1, Ordering::Relaxed);
    error!(
        file,
        failed_as,
        error = %reason.error,
        record = reason.record,
        field = reason.field.as_deref(),
        key = reason.key.as_deref(),
        "quarantined {file}: {}",
        reason.error
    );
}

/// A file could not be quarantined; it stays in `new/` and is tried again later.
pub fn quarantine_failed(file: &str, error: &dyn std::error::Error) {
    error!(file, error = %error, "cannot quarantine {file}: {error}; it stays in new/");
}

/// A file is held: Consul refuses one of its keys to this token.
pub fn file_held(file: &str, key: &str, what: &str, retry_in: Duration) {
    error!(
        file,
        key,
        error = what,
        retry_in_s = retry_in.as_secs(),
        "holding {file}: Consul refuses writes to {key} with this token ({what}); grant key:write or fix the token, then send SIGHUP"
    );
}

/// A file could not be deleted after delivery; it will be delivered again (harmlessly).
pub fn delete_failed(file: &str, error: &std::io::Error) {
    warn!(file, error = %error, "cannot delete delivered {file}: {error}");
}

/// A file could not be read; it is tried again at the next rescan.
pub fn read_failed(file: &str, error: &std::io::Error) {
    warn!(file, error = %error, "cannot read {file}: {error}");
}

/// Consul became unavailable; `brief` is the cause in a few words.
pub fn consul_unavailable(stats: &Stats, cause: &str, brief: &str, queued: usize) {
    stats.consul_down.store(true, Ordering::Relaxed);
    *stats.consul_cause.lock().expect("stats lock") = brief.to_owned();
    warn!(
        error = cause,
        queued,
        "Consul is unavailable: {cause}; {queued} files wait in the spool and delivery resumes by itself"
    );
}

/// Consul is still unavailable (at most once a minute).
pub fn consul_still_unavailable(
    stats: &Stats,
    cause: &str,
    brief: &str,
    outage: Duration,
    queued: usize,
) {
    *stats.consul_cause.lock().expect("stats lock") = brief.to_owned();
    warn!(
        error = cause,
        outage_s = outage.as_secs(),
        queued,
        "Consul still unavailable after {}s: {cause}; {queued} files wait",
        outage.as_secs()
    );
}

/// Consul is available again.
pub fn consul_recovered(stats: &Stats, outage: Duration, backlog: usize) {
    stats.consul_down.store(false, Ordering::Relaxed);
    stats.consul_cause.lock().expect("stats lock").clear();
    info!(
        outage_s = outage.as_secs(),
        backlog,
        "Consul is available again after {}s; delivering a backlog of {backlog} files",
        outage.as_secs()
    );
}

/// The periodic summary.
pub fn summary(stats: &Stats) {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    info!(
        delivered = get(&stats.delivered_files),
        records = get(&stats.delivered_records),
        quarantined = get(&stats.quarantined),
        queued = get(&stats.queued),
        held = get(&stats.held),
        oldest_age_s = get(&stats.oldest_age_s),
        ignored = get(&stats.ignored),
        consul = stats.consul_state(),
        "summary: {} delivered, {} quarantined, {} queued, consul {}",
        get(&stats.delivered_files),
        get(&stats.quarantined),
        get(&stats.queued),
        stats.consul_state()
    );
}
