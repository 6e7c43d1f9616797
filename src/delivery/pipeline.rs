//! The delivery pipeline: files in `new/` → validated entries → Consul transactions →
//! files deleted, quarantined or held.
//!
//! One task owns the queue. It works in windows: take the next files in drop order, read
//! and validate them on a blocking thread, coalesce records per key (the newest drop
//! wins), send the requests (a few in flight while Consul is up, one probe while it is
//! down), then settle every file of the window before taking the next. Windows never
//! overlap, so an older record can never overwrite a newer one.
//!
//! A file is deleted only when every one of its records was acknowledged. When Consul is
//! unavailable, the window's unsettled files go back to the queue and delivery waits
//! (exponential back-off with full jitter, for ever). A record Consul refuses for itself
//! quarantines its file; a key the token may not write holds its file, retried at the
//! back-off pace. While any file is held, its keys are watched: a newer drop written in
//! the meantime wins, and the held file skips that record when it is retried.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::batch::{self, Limits, Pending, Request, Write};
use super::events::{self, Stats};
use super::retry::{Backoff, EpisodeEvent, Outage};
use crate::config::Config;
use crate::consul::{Client, ConsulError, Disposition, OpAction};
use crate::keys::Entry;
use crate::record::Invalid;
use crate::spool::Spool;
use crate::spool::quarantine::{self, Reason};
use crate::spool::read::{self, ReadOutcome};
use crate::spool::scan::{self, DropOrder};
use crate::spool::watch::{Hints, WatchEvent};

/// Requests in flight at once while Consul is up.
pub const MAX_IN_FLIGHT: usize = 4;

/// A window stops reading files once it holds this many bytes (it always takes one):
/// a backlog of large bulk files never sits in memory all at once.
const WINDOW_BYTES: usize = 8 * 1024 * 1024;

/// Above this many queued files the watch is paused until the backlog is down to
/// [`RESUME_WATCH_AT`]: new drops sort after the backlog anyway.
const PAUSE_WATCH_AT: usize = 2048;
const RESUME_WATCH_AT: usize = 256;

/// A new configuration and client, swapped in by a reload.
pub struct Reload {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// A client built from it, with the token read anew.
    pub client: Client,
}

/// Something the pipeline reports as it changes state (for systemd's `STATUS=` and the
/// watchdog).
pub trait Observer: Send {
    /// How often the loop must call [`Observer::alive`] even when idle (`None`: never).
    fn heartbeat(&self) -> Option<Duration> {
        None
    }
    /// The delivery loop is alive (called every loop turn, and every heartbeat).
    fn alive(&mut self) {}
    /// Queue depth or Consul state changed.
    fn changed(&mut self, _stats: &Stats) {}
}

/// An observer that does nothing.
#[derive(Debug, Default)]
pub struct Quiet;
impl Observer for Quiet {}

/// A file of the current window.
struct Slot {
    order: DropOrder,
    /// Its records; the values are moved out when the window is sent.
    entries: Vec<Entry>,
    acked: usize,
    fate: Fate,
}

enum Fate {
    Pending,
    Held { key: String, what: String },
    Quarantine(Reason),
}

/// (slot, record) of the current window.
type Origin = (usize, usize);

struct Held {
    order: DropOrder,
    /// When to try again; `None` while it is queued or being sent.
    due: Option<Instant>,
    /// Kept until the file settles, so the back-off grows and the ERROR is said once.
    backoff: Backoff,
}

/// The delivery task's state.
pub struct Pipeline {
    spool: Spool,
    config: Arc<Config>,
    client: Client,
    stats: Arc<Stats>,
    /// Files waiting, in drop order.
    queue: BTreeSet<DropOrder>,
    /// Every name the pipeline is responsible for: queued, in the window, held, settling.
    known: HashSet<String>,
    /// Files Consul refuses a key of, with their own back-off.
    held: HashMap<String, Held>,
    /// Files that failed to parse while young, and when to look again.
    settling: HashMap<String, (DropOrder, Instant)>,
    /// Keys of held files → the newest drop order written for them since.
    watched_keys: HashMap<String, DropOrder>,
    backoff: Backoff,
    outage: Outage,
    retry_at: Option<Instant>,
    /// The next window, being read while the current one is sent.
    prefetch: Option<(Vec<DropOrder>, JoinHandle<Vec<Loaded>>)>,
    /// The previous window's deletions and quarantines, running while the next is sent;
    /// with the names to forget once done.
    settling_files: Option<(Vec<String>, JoinHandle<()>)>,
}

/// The result of reading and validating one file of a window.
enum Loaded {
    Ready(DropOrder, Vec<Entry>),
    /// Not read: the window already holds [`WINDOW_BYTES`].
    Deferred(DropOrder),
    Invalid(DropOrder, Invalid),
    Young(DropOrder, Instant),
    Skip(DropOrder),
    Unreadable(DropOrder, std::io::Error),
}

impl Pipeline {
    /// A pipeline for `config`'s spool, sending with `client`.
    pub fn new(config: Arc<Config>, client: Client, stats: Arc<Stats>) -> Self {
        let delivery = &config.delivery;
        Self {
            spool: Spool::new(&config.spool.dir),
            backoff: Backoff::new(delivery.retry_initial, delivery.retry_max),
            config,
            client,
            stats,
            queue: BTreeSet::new(),
            known: HashSet::new(),
            held: HashMap::new(),
            settling: HashMap::new(),
            watched_keys: HashMap::new(),
            outage: Outage::default(),
            retry_at: None,
            prefetch: None,
            settling_files: None,
        }
    }

    /// Runs until `shutdown`: the start-up scan, then hints, rescans and retries. Deletions
    /// and quarantines under way are finished before it returns.
    pub async fn run(
        mut self,
        hints: Hints,
        reloads: tokio::sync::mpsc::Receiver<Reload>,
        observer: &mut dyn Observer,
        shutdown: CancellationToken,
    ) {
        self.run_loop(hints, reloads, observer, shutdown).await;
        self.give_back_prefetch().await;
        self.finish_settling().await;
    }

    async fn run_loop(
        &mut self,
        mut hints: Hints,
        mut reloads: tokio::sync::mpsc::Receiver<Reload>,
        observer: &mut dyn Observer,
        shutdown: CancellationToken,
    ) {
        self.rescan();
        let mut next_rescan = Instant::now() + self.config.spool.rescan_interval;
        let mut next_stats = Instant::now() + self.config.log.stats_interval;
        observer.changed(&self.stats);
        loop {
            observer.alive();
            if shutdown.is_cancelled() {
                return;
            }
            let now = Instant::now();
            while let Ok(reload) = reloads.try_recv() {
                self.reload(reload);
            }
            while let Ok(event) = hints.events.try_recv() {
                self.absorb(event);
            }
            if hints.rescan.swap(false, Ordering::AcqRel) || now >= next_rescan {
                self.rescan();
                next_rescan = now + self.config.spool.rescan_interval;
            }
            if now >= next_stats {
                self.update_gauges();
                events::summary(&self.stats);
                next_stats = now + self.config.log.stats_interval;
            }
            self.promote_due(now);
            self.update_gauges();
            observer.changed(&self.stats);

            if self.queue.len() > PAUSE_WATCH_AT {
                hints.pause();
            } else if self.queue.len() <= RESUME_WATCH_AT && hints.is_paused() {
                hints.resume();
                continue;
            }
            let waiting_for_consul = self.retry_at.is_some_and(|at| at > now);
            let work = !self.queue.is_empty() || self.prefetch.is_some();
            if work && !waiting_for_consul {
                if self.prefetch.is_none() {
                    self.linger(&mut hints, &shutdown).await;
                }
                self.deliver_window(&shutdown, observer).await;
                continue;
            }
            self.finish_settling().await;
            let heartbeat = observer.heartbeat().map(|every| now + every);
            let wake_at = [
                Some(next_rescan),
                Some(next_stats),
                self.retry_at,
                self.next_due(),
                heartbeat,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_rescan);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                Some(reload) = reloads.recv() => self.reload(reload),
                Some(event) = hints.events.recv() => self.absorb(event),
                () = hints.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at.into()) => {}
            }
        }
    }

    /// When files trickle in, waits up to `linger` for a batch to fill.
    async fn linger(&mut self, hints: &mut Hints, shutdown: &CancellationToken) {
        let linger = self.config.delivery.linger;
        let batch = self.config.delivery.max_batch_ops.get();
        if linger.is_zero() || self.queue.len() >= batch || self.outage.since().is_some() {
            return;
        }
        let deadline = tokio::time::Instant::now() + linger;
        while self.queue.len() < batch {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                Some(event) = hints.events.recv() => self.absorb(event),
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    fn absorb(&mut self, event: WatchEvent) {
        let WatchEvent::Name(name) = event;
        if let Some((order, _)) = self.settling.remove(&name) {
            // Written again: look at it now.
            self.queue.insert(order);
            return;
        }
        if self.known.contains(&name) {
            return;
        }
        if let Some(order) = scan::candidate(&self.spool.new_dir(), &name) {
            self.known.insert(name);
            self.queue.insert(order);
        }
    }

    fn rescan(&mut self) {
        match scan::list(&self.spool.new_dir()) {
            Ok(listing) => {
                self.stats
                    .ignored
                    .store(listing.ignored as u64, Ordering::Relaxed);
                for order in listing.candidates {
                    if self.known.insert(order.name.clone()) {
                        self.queue.insert(order);
                    }
                }
            }
            Err(e) => events::read_failed(&self.spool.new_dir().display().to_string(), &e),
        }
    }

    fn promote_due(&mut self, now: Instant) {
        for held in self.held.values_mut() {
            if held.due.is_some_and(|due| due <= now) {
                held.due = None;
                self.queue.insert(held.order.clone());
            }
        }
        let settled: Vec<String> = self
            .settling
            .iter()
            .filter(|(_, (_, due))| *due <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in settled {
            if let Some((order, _)) = self.settling.remove(&name) {
                self.queue.insert(order);
            }
        }
    }

    fn next_due(&self) -> Option<Instant> {
        let held = self.held.values().filter_map(|h| h.due);
        let settling = self.settling.values().map(|(_, due)| *due);
        held.chain(settling).min()
    }

    /// Files waiting: queued, held until their next try, or settling.
    fn waiting(&self) -> usize {
        let held = self.held.values().filter(|h| h.due.is_some()).count();
        self.queue.len() + held + self.settling.len()
    }

    fn update_gauges(&self) {
        self.stats
            .queued
            .store(self.waiting() as u64, Ordering::Relaxed);
        self.stats
            .held
            .store(self.held.len() as u64, Ordering::Relaxed);
        let oldest = self
            .queue
            .first()
            .and_then(|o| SystemTime::now().duration_since(o.mtime).ok())
            .map_or(0, |age| age.as_secs());
        self.stats.oldest_age_s.store(oldest, Ordering::Relaxed);
    }

    fn reload(&mut self, reload: Reload) {
        let Reload { mut config, client } = reload;
        if config.spool.dir != self.config.spool.dir {
            tracing::warn!(
                spool = %self.config.spool.dir.display(),
                "the spool folder changed in the configuration; restart the daemon to use it"
            );
            let mut kept = (*config).clone();
            kept.spool.dir = self.config.spool.dir.clone();
            config = Arc::new(kept);
        }
        let delivery = &config.delivery;
        self.backoff = Backoff::new(delivery.retry_initial, delivery.retry_max);
        self.config = config;
        self.client = client;
        // The operator may have fixed the token or the ACLs: try again now.
        self.retry_at = None;
        let now = Instant::now();
        for held in self.held.values_mut() {
            if held.due.is_some() {
                held.due = Some(now);
            }
            held.backoff.reset();
        }
        tracing::info!("configuration reloaded");
    }

    /// The next files in drop order, at most one window's worth.
    fn take_window(&mut self) -> Vec<DropOrder> {
        let window_files = self.config.delivery.max_batch_ops.get() * MAX_IN_FLIGHT;
        let mut window = Vec::with_capacity(window_files);
        while window.len() < window_files {
            let Some(order) = self.queue.pop_first() else {
                break;
            };
            window.push(order);
        }
        window
    }

    /// Puts a window read ahead back in the queue (delivery stalled or is stopping).
    async fn give_back_prefetch(&mut self) {
        if let Some((orders, task)) = self.prefetch.take() {
            let _ = task.await;
            self.queue.extend(orders);
        }
    }

    /// Waits for the previous window's deletions and quarantines.
    async fn finish_settling(&mut self) {
        if let Some((names, task)) = self.settling_files.take() {
            task.await.expect("spool work does not panic");
            for name in names {
                self.known.remove(&name);
            }
        }
    }

    /// Takes the next window (read ahead, or read now), delivers it, and settles every
    /// file in it. The window after it is read while this one is sent, and this one's
    /// files are deleted while the next is sent.
    async fn deliver_window(&mut self, shutdown: &CancellationToken, observer: &mut dyn Observer) {
        let loaded = match self.prefetch.take() {
            Some((_, task)) => task.await.expect("reading files does not panic"),
            None => {
                let window = self.take_window();
                self.load(window).await
            }
        };
        let mut slots = Vec::new();
        let mut deferred = false;
        for item in loaded {
            match item {
                Loaded::Ready(order, entries) => slots.push(Slot {
                    order,
                    entries,
                    acked: 0,
                    fate: Fate::Pending,
                }),
                Loaded::Invalid(order, invalid) => slots.push(Slot {
                    order,
                    entries: Vec::new(),
                    acked: 0,
                    fate: Fate::Quarantine(reason_for(&invalid, None)),
                }),
                Loaded::Young(order, due) => {
                    self.settling.insert(order.name.clone(), (order, due));
                }
                Loaded::Skip(order) => {
                    self.known.remove(&order.name);
                    self.held.remove(&order.name);
                }
                Loaded::Deferred(order) => {
                    deferred = true;
                    self.queue.insert(order);
                }
                Loaded::Unreadable(order, error) => {
                    let text = format!(
                        "cannot read the file: {error}; producers must make spool files readable by the daemon's group (mode 0640)"
                    );
                    slots.push(Slot {
                        order,
                        entries: Vec::new(),
                        acked: 0,
                        fate: Fate::Quarantine(reason_for(&Invalid::file(text), None)),
                    });
                }
            }
        }
        // Read the next window while this one is sent: not while Consul is down (one
        // probe at a time), and not past files this window deferred (they go first).
        if !deferred && self.outage.since().is_none() && !self.queue.is_empty() {
            let window = self.take_window();
            self.prefetch = Some((window.clone(), self.spawn_load(window)));
        }
        let stalled = self.send(&mut slots, shutdown, observer).await;
        self.finish_settling().await;
        self.settle(slots);
        if stalled.is_some() || shutdown.is_cancelled() {
            self.give_back_prefetch().await;
        }
        if self.prefetch.is_none() {
            self.finish_settling().await;
        }
        if let Some(error) = stalled {
            let delay = self.backoff.next_delay(fastrand::f64());
            self.retry_at = Some(Instant::now() + delay);
            self.outage_failed(&error);
        }
    }

    /// Reads and validates `window` on a blocking thread.
    async fn load(&self, window: Vec<DropOrder>) -> Vec<Loaded> {
        self.spawn_load(window)
            .await
            .expect("reading files does not panic")
    }

    fn spawn_load(&self, window: Vec<DropOrder>) -> JoinHandle<Vec<Loaded>> {
        let dir = self.spool.new_dir();
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let mut held_bytes = 0;
            window
                .into_iter()
                .map(|order| {
                    if held_bytes >= WINDOW_BYTES {
                        return Loaded::Deferred(order);
                    }
                    let loaded = load_one(&dir, order, &config);
                    if let Loaded::Ready(_, entries) = &loaded {
                        held_bytes += entries
                            .iter()
                            .map(|e| e.key.len() + e.value.len())
                            .sum::<usize>();
                    }
                    loaded
                })
                .collect()
        })
    }

    /// Sends the window's records. Returns the error that stalled delivery, if Consul is
    /// unavailable.
    async fn send(
        &mut self,
        slots: &mut [Slot],
        shutdown: &CancellationToken,
        observer: &mut dyn Observer,
    ) -> Option<ConsulError> {
        let mut pending = Vec::new();
        for (s, slot) in slots.iter_mut().enumerate() {
            if !matches!(slot.fate, Fate::Pending) {
                continue;
            }
            // The values move into the batch: after sending, a slot needs only its keys
            // (to hold the file) and how many records it has.
            for (r, entry) in slot.entries.iter_mut().enumerate() {
                if self
                    .watched_keys
                    .get(&entry.key)
                    .is_some_and(|newest| *newest > slot.order)
                {
                    // A newer drop already wrote this key while this file was held.
                    slot.acked += 1;
                } else {
                    pending.push(Pending {
                        key: entry.key.clone(),
                        value: std::mem::take(&mut entry.value),
                        origin: (s, r),
                    });
                }
            }
        }
        let limits = Limits {
            max_ops: self.config.delivery.max_batch_ops,
            max_bytes: self.config.delivery.max_batch_bytes,
        };
        let mut work: VecDeque<Request<Origin>> = batch::plan(pending, limits).into();
        let mut flight: JoinSet<(Request<Origin>, Result<(), ConsulError>)> = JoinSet::new();
        let mut stalled: Option<ConsulError> = None;
        let mut stopping = false;
        let mut deadline = tokio::time::Instant::now();
        loop {
            let limit = if self.outage.since().is_some() {
                1
            } else {
                MAX_IN_FLIGHT
            };
            while stalled.is_none() && !stopping && flight.len() < limit {
                let Some(request) = work.pop_front() else {
                    break;
                };
                let client = self.client.clone();
                flight.spawn(async move {
                    let result = send_request(&client, &request).await;
                    (request, result)
                });
            }
            if flight.is_empty() {
                break;
            }
            observer.alive();
            let joined = tokio::select! {
                biased;
                () = shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    deadline = tokio::time::Instant::now() + self.config.delivery.shutdown_timeout;
                    continue;
                }
                () = tokio::time::sleep_until(deadline), if stopping => {
                    flight.abort_all();
                    while flight.join_next().await.is_some() {}
                    break;
                }
                joined = flight.join_next() => joined,
            };
            let Some(Ok((request, result))) = joined else {
                continue;
            };
            match result {
                Ok(()) => {
                    self.outage_succeeded();
                    for write in request.writes() {
                        self.acknowledge(slots, write);
                    }
                }
                Err(error) => match error.disposition() {
                    Disposition::Retry => {
                        stalled.get_or_insert(error);
                    }
                    disposition @ (Disposition::Split | Disposition::Bisect) => {
                        self.outage_succeeded();
                        match request {
                            Request::Txn(writes) if writes.len() > 1 => {
                                let (front, back) = batch::split(writes);
                                work.push_front(Request::Txn(back));
                                work.push_front(Request::Txn(front));
                            }
                            Request::Txn(mut writes) => {
                                let write = writes.pop().expect("a transaction has a write");
                                if disposition == Disposition::Split {
                                    // Too big for this server's transaction limit: a plain
                                    // PUT may still take it.
                                    work.push_front(Request::Put(write));
                                } else {
                                    self.refuse(slots, &write, &error.to_string());
                                }
                            }
                            Request::Put(write) => self.refuse(slots, &write, &error.to_string()),
                        }
                    }
                    Disposition::Hold => {
                        self.outage_succeeded();
                        for write in request.writes() {
                            self.hold(slots, write, &error.to_string());
                        }
                    }
                    Disposition::Quarantine => {
                        self.outage_succeeded();
                        for write in request.writes() {
                            self.refuse(slots, write, &error.to_string());
                        }
                    }
                    Disposition::Operations(failures) => {
                        self.outage_succeeded();
                        let mut writes: Vec<Option<Write<Origin>>> =
                            request.into_writes().into_iter().map(Some).collect();
                        for failure in failures {
                            let Some(write) = writes.get_mut(failure.index).and_then(Option::take)
                            else {
                                continue;
                            };
                            match failure.action {
                                OpAction::Hold => self.hold(slots, &write, &failure.what),
                                OpAction::Quarantine => self.refuse(slots, &write, &failure.what),
                            }
                        }
                        let rest: Vec<_> = writes.into_iter().flatten().collect();
                        if !rest.is_empty() {
                            work.push_front(Request::Txn(rest));
                        }
                    }
                },
            }
        }
        stalled
    }

    fn acknowledge(&mut self, slots: &mut [Slot], write: &Write<Origin>) {
        for &(s, _) in &write.origins {
            slots[s].acked += 1;
        }
        if let Some(watched) = self.watched_keys.get_mut(&write.key) {
            let (s, _) = *write.origins.last().expect("a write has an origin");
            if slots[s].order > *watched {
                *watched = slots[s].order.clone();
            }
        }
    }

    /// Consul refuses the key to this token: hold every file the write settles.
    fn hold(&mut self, slots: &mut [Slot], write: &Write<Origin>, what: &str) {
        for &(s, _) in &write.origins {
            if matches!(slots[s].fate, Fate::Pending) {
                slots[s].fate = Fate::Held {
                    key: write.key.clone(),
                    what: what.to_owned(),
                };
            }
        }
    }

    /// Consul refuses the record itself: quarantine the file whose value was sent; older
    /// records of the same key stay unsettled and are sent again.
    fn refuse(&mut self, slots: &mut [Slot], write: &Write<Origin>, what: &str) {
        let (s, r) = *write.origins.last().expect("a write has an origin");
        let invalid = Invalid::record(r, format!("Consul refused {:?}: {what}", write.key));
        slots[s].fate = Fate::Quarantine(reason_for(&invalid, Some(&write.key)));
    }

    /// Holds denied files and puts unsettled ones back in the queue at once; deletes
    /// delivered files and quarantines refused ones on a blocking thread, finished by
    /// [`Pipeline::finish_settling`].
    fn settle(&mut self, slots: Vec<Slot>) {
        let mut delivered = Vec::new();
        let mut quarantined = Vec::new();
        for slot in slots {
            match slot.fate {
                Fate::Quarantine(reason) => {
                    self.held.remove(&slot.order.name);
                    quarantined.push((slot.order, reason));
                }
                Fate::Held { key, what } => self.hold_file(slot.order, &slot.entries, &key, &what),
                Fate::Pending if slot.acked >= slot.entries.len() => {
                    self.held.remove(&slot.order.name);
                    delivered.push((slot.order, slot.entries.len()));
                }
                Fate::Pending => {
                    self.queue.insert(slot.order);
                }
            }
        }
        if self.held.is_empty() {
            self.watched_keys.clear();
        }
        if delivered.is_empty() && quarantined.is_empty() {
            return;
        }
        let spool = self.spool.clone();
        let stats = self.stats.clone();
        let names: Vec<String> = delivered
            .iter()
            .map(|(o, _)| o.name.clone())
            .chain(quarantined.iter().map(|(o, _)| o.name.clone()))
            .collect();
        let work = tokio::task::spawn_blocking(move || {
            for (order, records) in delivered {
                match std::fs::remove_file(spool.new_dir().join(&order.name)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        events::delete_failed(&order.name, &e);
                    }
                    _ => events::file_delivered(&stats, &order.name, records),
                }
            }
            for (order, reason) in quarantined {
                match quarantine::quarantine(&spool, &order.name, &reason) {
                    Ok(failed_as) => {
                        events::file_quarantined(&stats, &order.name, &failed_as, &reason);
                    }
                    // It stays in new/; the next rescan finds it again.
                    Err(e) => events::quarantine_failed(&order.name, &e),
                }
            }
        });
        self.settling_files = Some((names, work));
    }

    fn hold_file(&mut self, order: DropOrder, entries: &[Entry], key: &str, what: &str) {
        let now = Instant::now();
        let delivery = &self.config.delivery;
        let held = self.held.entry(order.name.clone()).or_insert_with(|| Held {
            order: order.clone(),
            due: None,
            backoff: Backoff::new(delivery.retry_initial, delivery.retry_max),
        });
        let first_time = held.backoff.attempts() == 0;
        let delay = held.backoff.next_delay(fastrand::f64());
        held.due = Some(now + delay);
        held.order = order.clone();
        if first_time {
            events::file_held(&order.name, key, what, held.backoff.ceiling());
        }
        for entry in entries {
            self.watched_keys
                .entry(entry.key.clone())
                .or_insert_with(|| order.clone());
        }
    }

    fn outage_failed(&mut self, error: &ConsulError) {
        self.stats.consul_down.store(true, Ordering::Relaxed);
        let queued = self.waiting();
        let (cause, brief) = (error.to_string(), error.brief());
        match self.outage.failed(Instant::now()) {
            Some(EpisodeEvent::Started) => {
                events::consul_unavailable(&self.stats, &cause, &brief, queued);
            }
            Some(EpisodeEvent::Ongoing(outage)) => {
                events::consul_still_unavailable(&self.stats, &cause, &brief, outage, queued);
            }
            _ => *self.stats.consul_cause.lock().expect("stats lock") = brief,
        }
    }

    fn outage_succeeded(&mut self) {
        self.backoff.reset();
        self.retry_at = None;
        if let Some(EpisodeEvent::Ended(outage)) = self.outage.succeeded(Instant::now()) {
            let backlog = self.waiting();
            events::consul_recovered(&self.stats, outage, backlog);
        }
    }
}

async fn send_request(client: &Client, request: &Request<Origin>) -> Result<(), ConsulError> {
    match request {
        Request::Txn(writes) => client.txn_body(batch::txn_body(writes)).await.map(|_| ()),
        Request::Put(write) => client.put(&write.key, &write.value).await,
    }
}

fn load_one(dir: &std::path::Path, order: DropOrder, config: &Config) -> Loaded {
    let (max_bytes, settle) = (config.spool.max_file_bytes, config.spool.settle);
    let path: PathBuf = dir.join(&order.name);
    let (bytes, mtime) = match read::read_file(&path, max_bytes) {
        Ok(ReadOutcome::Bytes { bytes, mtime }) => (bytes, mtime),
        Ok(ReadOutcome::TooLarge { size }) => {
            let text =
                format!("the file is {size} bytes, larger than max_file_bytes ({max_bytes})");
            return Loaded::Invalid(order, Invalid::file(text));
        }
        Ok(ReadOutcome::NotRegular | ReadOutcome::Gone) => return Loaded::Skip(order),
        Err(e) => return Loaded::Unreadable(order, e),
    };
    let order = DropOrder {
        mtime,
        name: order.name,
    };
    match config.keys.plan_file(&bytes, DateTime::<Utc>::from(mtime)) {
        Ok(entries) => Loaded::Ready(order, entries),
        Err(invalid) => {
            let age = SystemTime::now().duration_since(mtime).unwrap_or_default();
            if age < settle {
                // A producer may still be writing it: look again once it has settled.
                Loaded::Young(order, Instant::now() + (settle - age))
            } else {
                Loaded::Invalid(order, invalid)
            }
        }
    }
}

fn reason_for(invalid: &Invalid, key: Option<&str>) -> Reason {
    Reason {
        error: invalid.to_string(),
        record: invalid.record,
        field: invalid.field.clone(),
        key: key.map(str::to_owned),
        quarantined_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}
