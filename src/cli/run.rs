//! `cndspool run`: the daemon, in the foreground. SIGTERM and SIGINT stop it (the request
//! in flight may finish within `shutdown_timeout`); SIGHUP re-reads the configuration and
//! the token file.

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ConfigArg;
use crate::config::{Config, Env, Overrides};
use crate::daemon::{self, Reloader};
use crate::exit::ExitCode;
use crate::logging;
use crate::systemd::Systemd;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// The spool folder [default: from the configuration, else /var/spool/cndspool].
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Consul's address: host:port, http://..., https://... or unix:///path.
    #[arg(long, value_name = "ADDR")]
    consul_addr: Option<String>,
    /// A file holding the Consul token (read at start and on SIGHUP).
    #[arg(long, value_name = "FILE")]
    consul_token_file: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

pub(super) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut reloader = Reloader {
        path: args.config.config.clone(),
        env: Env::from_process(),
        logging: None,
        overrides: Overrides {
            spool_dir: args.spool,
            consul_address: args.consul_addr,
            token_file: args.consul_token_file,
            log_format: args.log_format,
            log_level: args.log_level,
        },
    };
    let config = Config::load(reloader.path.as_deref(), &reloader.env, &reloader.overrides)?;
    reloader.logging = logging::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let (reload_tx, reload_rx) = mpsc::channel(4);
        let signals = tokio::spawn(forward_signals(shutdown.clone(), reload_tx));
        let mut observer = Systemd::new();
        let result = daemon::run(config, reloader, reload_rx, &mut observer, shutdown).await;
        signals.abort();
        result.map(|()| ExitCode::Ok)
    })
}

/// SIGTERM and SIGINT cancel `shutdown`; SIGHUP asks for a reload.
async fn forward_signals(
    shutdown: CancellationToken,
    reload: mpsc::Sender<()>,
) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => { let _ = reload.try_send(()); }
        }
    }
    Systemd::stopping();
    shutdown.cancel();
    Ok(())
}
