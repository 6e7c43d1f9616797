//! Log output: human-readable text, or one JSON object per line (`--log-format json`).
//! Field names are stable snake_case (`file`, `key`, `record`, `error`, `queued`,
//! `outage_s`, ...).

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber, writing to stderr.
pub fn init(settings: &LogSettings) {
    let level = LevelFilter::from_level(settings.level);
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let result = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // Already installed (a test harness, the demo): keep that one.
    let _ = result;
}
