//! Delivery: from validated spool entries to Consul requests.
//!
//! [`batch`] is pure: it coalesces records per key (the newest drop wins) and packs them
//! into transactions that respect Consul's limits by construction.

pub mod batch;
pub mod events;
pub mod pipeline;
pub mod retry;
