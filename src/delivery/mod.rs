//! Delivery: from validated spool entries to Consul requests, and back to the files.
//!
//! Pure cores: [`batch`] coalesces records per key (the newest drop wins) and packs them
//! into transactions that respect Consul's limits by construction; [`retry`] holds the
//! back-off and the outage episodes. [`pipeline`] is the one task doing I/O with them;
//! [`events`] names every condition it reports.

pub mod batch;
pub mod events;
pub mod pipeline;
pub mod retry;
