//! Talking to Consul: the thin HTTP client, its wire types, errors with their
//! dispositions, and the in-memory stand-in used by tests, benchmarks and the demo.

pub mod client;
pub mod error;
pub mod standin;
pub mod wire;

pub use self::client::Client;
pub use self::error::{ConsulError, Disposition, OpAction, OpFailure, RequestKind};
