//! The command line: one file per command, each with its `Args` and a `run`.

mod check;
mod demo;
mod dev_consul;
mod emit;
mod inspect;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, Env, Overrides};
use crate::exit::ExitCode;

/// Spool IaaS events and inventory into Consul's KV store.
#[derive(Debug, Parser)]
#[command(name = "cndspool", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: deliver every file of the spool into Consul.
    Run(run::Args),
    /// Validate spool files; print the key and value each record would write.
    Check(check::Args),
    /// Validate one record (or a bulk array), then drop it into the spool atomically.
    Emit(emit::Args),
    /// What waits in the spool: count, oldest age, records per type.
    Queue(inspect::QueueArgs),
    /// The quarantined files, with their reasons.
    Failed(inspect::FailedArgs),
    /// Move quarantined files back into new/ for delivery.
    Requeue(inspect::RequeueArgs),
    /// The whole flow, self-contained: a Consul stand-in, the daemon, one record of each type.
    Demo(demo::Args),
    /// Run an in-memory stand-in for Consul's KV API (development and tests; not Consul).
    DevConsul(dev_consul::Args),
}

/// The configuration file option every command that reads settings takes.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The configuration file [default: /etc/cndspool/cndspool.toml when it exists].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn load(&self, overrides: &Overrides) -> anyhow::Result<Config> {
        Ok(Config::load(
            self.config.as_deref(),
            &Env::from_process(),
            overrides,
        )?)
    }
}

impl Cli {
    /// Runs the command.
    ///
    /// # Errors
    /// A failure the binary reports and maps to an exit code with
    /// [`crate::exit::for_error`].
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Run(args) => run::run(args),
            Command::Check(args) => check::run(args),
            Command::Emit(args) => emit::run(args),
            Command::Queue(args) => inspect::queue(args),
            Command::Failed(args) => inspect::failed(args),
            Command::Requeue(args) => inspect::requeue(args),
            Command::Demo(args) => demo::run(args),
            Command::DevConsul(args) => dev_consul::run(args),
        }
    }
}
