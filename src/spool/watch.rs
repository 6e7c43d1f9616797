//! Watching `new/` with inotify (through `notify`). Events are hints: they name a file to
//! look at; the directory stays the truth. A queue overflow, a watcher error or a full
//! channel asks for a rescan, and a slow periodic rescan runs regardless.

use std::path::{Path, PathBuf};
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

/// The pipeline's side of the watcher: named hints, a flag that asks for a rescan, and
/// the watch itself, which the pipeline pauses while it drains a large backlog.
pub struct Hints {
    /// Names to look at.
    pub events: mpsc::Receiver<WatchEvent>,
    /// Set when events were lost (overflow, error, full channel): rescan.
    pub rescan: Arc<AtomicBool>,
    /// Woken when `rescan` is set.
    pub wake: Arc<Notify>,
    watcher: Option<RecommendedWatcher>,
    dir: PathBuf,
    paused: bool,
}

impl std::fmt::Debug for Hints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hints")
            .field("dir", &self.dir)
            .field("paused", &self.paused)
            .finish()
    }
}

impl Hints {
    /// Stops watching. notify watches opens and deletions too, so while the daemon drains
    /// a backlog its own reads and deletions would wake the watcher for every file; and
    /// files dropped meanwhile sort after the backlog anyway.
    pub fn pause(&mut self) {
        if !self.paused
            && let Some(watcher) = self.watcher.as_mut()
        {
            let _ = watcher.unwatch(&self.dir);
            self.paused = true;
        }
    }

    /// Watches again after [`Hints::pause`], and asks for a rescan for what was dropped
    /// meanwhile. A failure to watch again leaves the periodic rescan as the safety net.
    pub fn resume(&mut self) {
        if !self.paused {
            return;
        }
        if let Some(watcher) = self.watcher.as_mut()
            && let Err(e) = watcher.watch(&self.dir, RecursiveMode::NonRecursive)
        {
            tracing::warn!(error = %e, "cannot watch {} again: {e}; the periodic rescan will find new files", self.dir.display());
        }
        self.paused = false;
        self.rescan.store(true, Ordering::Release);
    }

    /// Whether the watch is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }
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

/// Starts watching `dir`.
///
/// # Errors
/// inotify could not be set up (limits reached, folder gone).
pub fn watch(dir: &Path) -> Result<Hints, WatchError> {
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
    Ok(Hints {
        events,
        rescan,
        wake,
        watcher: Some(watcher),
        dir: dir.to_owned(),
        paused: false,
    })
}
