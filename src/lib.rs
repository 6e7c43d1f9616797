//! cndspool: a spool between IaaS automation and Consul's KV store.
//!
//! # Architecture
//!
//! Producers never talk to Consul. They write a small JSON file into `<spool>/tmp/` and
//! rename it into `<spool>/new/` ([`spool::drop`] is that protocol for `cndspool emit`).
//! The daemon picks each file up, validates it as a whole ([`record`]), maps every record
//! to a Consul key and JSON value ([`keys`]), writes the records in transactions, and
//! deletes the file only once Consul acknowledged every record in it. An invalid file is
//! moved to `<spool>/failed/` with a reason; nothing is ever deleted unacknowledged.
//!
//! The path of one file:
//!
//! 1. a producer drops `new/<micros>-<pid>-<rand>.json`;
//! 2. [`record::parse_file`] checks its records' types and fields, filling a missing
//!    `start_at`/`end_at` from the file's modification time;
//! 3. [`keys::KeyLayout::plan_file`] renders each record's key from the configured
//!    templates (refusing any component that could leave its folder) and its value;
//! 4. the entries are batched into Consul transactions, and the file is deleted once the
//!    transaction carrying its last record is acknowledged.
//!
//! Settings come from [`config`] (TOML, environment, flags, validated once); exit statuses
//! from [`exit`]; the command line from [`cli`].

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
