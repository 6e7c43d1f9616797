//! Watching `new/` with inotify (through `notify`). Events are hints: they name a file to
//! look at; the directory stays the truth. A queue overflow, a watcher error or a full
//! channel asks for a rescan, and a slow periodic rescan runs regardless.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};

/// A hint from the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Look at this name in `new/`.
    Name(String),
}

/// The pipeline's side of the watcher: named hints, and a flag that asks for a rescan.
#[derive(Debug)]
pub struct Hints {
    /// Names to look at.
    pub events: mpsc::Receiver<WatchEvent>,
    /// Set when events were lost (overflow, error, full channel): rescan.
    pub rescan: Arc<AtomicBool>,
    /// Woken when `rescan` is set.
    pub wake: Arc<Notify>,
}

/// A watcher init failure, with what to do about the usual cause.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot watch {dir} for new files: {source}; if inotify's limits are reached, raise fs.inotify.max_user_instances or fs.inotify.max_user_watches (sysctl)"
)]
pub struct WatchError {
    dir: String,
    #[source]
    source: notify::Error,
}

/// How many hints may wait before the watcher falls back to asking for a rescan.
const CHANNEL_CAPACITY: usize = 4096;

/// Starts watching `dir`; keep the returned watcher alive as long as hints are wanted.
///
/// # Errors
/// inotify could not be set up (limits reached, folder gone).
pub fn watch(dir: &Path) -> Result<(RecommendedWatcher, Hints), WatchError> {
    let (tx, events) = mpsc::channel(CHANNEL_CAPACITY);
    let rescan = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Notify::new());
    let (flag, waker) = (rescan.clone(), wake.clone());
    let ask_rescan = move || {
        flag.store(true, Ordering::Release);
        waker.notify_one();
    };
    let handler = move |result: notify::Result<notify::Event>| {
        let event = match result {
            Ok(event) if !event.need_rescan() => event,
            _ => return ask_rescan(),
        };
        let interesting = matches!(
            event.kind,
            EventKind::Create(_)
                | EventKind::Modify(ModifyKind::Name(_))
                | EventKind::Access(AccessKind::Close(AccessMode::Write))
        );
        if !interesting {
            return;
        }
        for path in &event.paths {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if super::is_candidate_name(name)
                && tx.try_send(WatchEvent::Name(name.to_owned())).is_err()
            {
                ask_rescan();
            }
        }
    };
    let fail = |source| WatchError {
        dir: dir.display().to_string(),
        source,
    };
    let mut watcher = notify::recommended_watcher(handler).map_err(fail)?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(fail)?;
    Ok((
        watcher,
        Hints {
            events,
            rescan,
            wake,
        },
    ))
}
