//! cndspool: a spool between IaaS automation and Consul's KV store.
//!
//! # Architecture
//!
//! Producers never talk to Consul. They write a small JSON file into `<spool>/tmp/` and
//! rename it into `<spool>/new/` ([`spool::drop`] is that protocol for `cndspool emit`;
//! `clients/python/cndspool.py` is it for Python). The daemon ([`daemon`]) picks each file
//! up, validates it as a whole, writes its records into Consul in transactions, and
//! deletes the file only once Consul acknowledged every record in it. An invalid file is
//! moved to `<spool>/failed/` with a reason; nothing is ever deleted unacknowledged.
//!
//! The path of one file:
//!
//! 1. a producer drops `new/<micros>-<pid>-<rand>.json`; inotify ([`spool::watch`]) wakes
//!    the pipeline, and the start-up scan and a periodic rescan ([`spool::scan`]) make
//!    sure no file is ever missed;
//! 2. [`delivery::pipeline`] takes files in drop order (mtime, then name), a window at a
//!    time, and reads each safely ([`spool::read`]: regular files only, size-capped);
//! 3. [`record::parse_file`] checks its records' types and fields, filling a missing
//!    `start_at`/`end_at` from the file's modification time, and
//!    [`keys::KeyLayout::plan_file`] renders each record's key from the configured
//!    templates (refusing any component that could leave its folder) and its value;
//! 4. [`delivery::batch`] coalesces records per key (the newest drop wins) and packs them
//!    into transactions within Consul's limits; [`consul::Client`] sends them;
//! 5. each failure's [`consul::Disposition`] decides: retry with back-off while Consul is
//!    unavailable ([`delivery::retry`]), hold a file whose key the token may not write,
//!    quarantine a file Consul refuses ([`spool::quarantine`]), split or bisect a batch;
//! 6. the file is deleted once the transaction carrying its last record is acknowledged.
//!
//! Every condition on the way is one named event ([`delivery::events`]) that logs one
//! line with stable fields ([`logging`]) and feeds systemd's `STATUS=` ([`systemd`]).
//! Settings come from [`config`] (TOML, environment, flags, validated once); exit statuses
//! from [`exit`]; the command line from [`cli`]. [`consul::standin`] is an in-memory
//! stand-in for Consul's KV API that carries the tests, the benchmarks and the demo.

pub mod cli;
pub mod config;
pub mod consul;
pub mod daemon;
pub mod delivery;
pub mod exit;
pub mod keys;
pub mod logging;
pub mod record;
pub mod spool;
pub mod systemd;
