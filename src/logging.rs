//! Log output. Under systemd, when `JOURNAL_STREAM` names the stream stderr is connected
//! to, native journal entries with real priorities and fields (`journalctl -u cndspool -p
//! warning` works, fields are `FILE`, `KEY`, `ERROR`, ...); otherwise human-readable text;
//! `--log-format json` writes one JSON object per line. Field names are stable snake_case
//! (`file`, `key`, `record`, `error`, `queued`, `outage_s`, ...).

use std::fmt;
use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, reload};

use crate::config::{LogFormat, LogSettings};

/// The installed logging: a reload changes its level.
#[derive(Clone)]
pub struct Logging {
    level: reload::Handle<LevelFilter, Registry>,
    format: LogFormat,
}

impl fmt::Debug for Logging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logging")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Logging {
    /// Applies a reloaded configuration's level. A new format needs a restart.
    pub fn apply(&self, settings: &LogSettings) {
        let _ = self
            .level
            .modify(|level| *level = LevelFilter::from_level(settings.level));
        if settings.format != self.format {
            tracing::warn!(
                "the log format changed in the configuration; restart the daemon to use it"
            );
        }
    }
}

/// Installs the global subscriber, writing to the journal or stderr. `None` when one was
/// installed already (a test harness, the demo).
pub fn init(settings: &LogSettings) -> Option<Logging> {
    let (level, handle) = reload::Layer::new(LevelFilter::from_level(settings.level));
    let registry = tracing_subscriber::registry().with(level);
    let installed = if settings.format == LogFormat::Text
        && stderr_is_journal()
        && let Ok(journald) = tracing_journald::layer()
    {
        // syslog's usual reading: INFO is "informational" (6), not tracing-journald's
        // default "notice" (5).
        let mut priorities = tracing_journald::PriorityMappings::new();
        priorities.info = tracing_journald::Priority::Informational;
        priorities.debug = tracing_journald::Priority::Debug;
        let journald = journald
            .with_field_prefix(None)
            .with_priority_mappings(priorities);
        registry.with(journald).try_init()
    } else {
        let text = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false);
        match settings.format {
            LogFormat::Text => registry.with(text).try_init(),
            LogFormat::Json => registry
                .with(text.json().flatten_event(true).with_current_span(false))
                .try_init(),
        }
    };
    installed.ok().map(|()| Logging {
        level: handle,
        format: settings.format,
    })
}

/// Whether stderr is the journal stream systemd connected (`JOURNAL_STREAM=dev:ino`).
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    // SAFETY: fstat only writes into the zeroed struct it is given.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(libc::STDERR_FILENO, &raw mut stat) } != 0 {
        return false;
    }
    journal_stream_matches(&value, stat.st_dev, stat.st_ino)
}

/// Whether `JOURNAL_STREAM`'s `dev:ino` is the file with device `dev` and inode `ino`.
fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_is_matched_by_device_and_inode() {
        assert!(journal_stream_matches("8:12345", 8, 12345));
        assert!(!journal_stream_matches("8:12345", 8, 12346));
        assert!(!journal_stream_matches("garbage", 8, 12345));
        assert!(!journal_stream_matches("", 0, 0));
    }
}
