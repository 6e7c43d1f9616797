//! The one integration-test binary: runs the built `cndspool` on temporary spools.

mod util;

mod check;
mod config;
mod consul;
mod daemon;
mod emit;
mod operate;
mod python;
mod service;
mod tls;
