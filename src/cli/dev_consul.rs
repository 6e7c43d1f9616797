//! `cndspool dev-consul`: the in-memory Consul stand-in as a process, for development,
//! the demo and the benchmarks. It says plainly that it is not Consul.

use clap::builder::PossibleValuesParser;

use crate::consul::standin::{BANNER, DevConsul, Listen, Options, TlsOptions};
use crate::exit::{CommandError, ExitCode};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Where to listen: HOST:PORT (port 0 picks a free one) or unix:///path.
    #[arg(long, default_value = "127.0.0.1:8500", value_name = "ADDR")]
    listen: Listen,
    /// Enforce ACLs: this token may write; no token or another one may not.
    #[arg(long, value_name = "T")]
    token: Option<String>,
    /// The transaction operation cap: 128 (Consul 1.14 and later) or 64 (earlier).
    #[arg(long, default_value = "128", value_parser = PossibleValuesParser::new(["64", "128"]))]
    max_txn_ops: String,
    /// How long each write takes to commit, one at a time, like a Raft apply on a real
    /// server (benchmarks); 0 answers at once.
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    commit_latency: std::time::Duration,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Behave like Consul 1.21.5: refuse keys outside [A-Za-z0-9,_./-?&=] with a 500.
    #[arg(long)]
    key_regex_500: bool,
    /// Require client certificates signed by this CA (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
}

pub(super) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|e| {
            CommandError::new(
                ExitCode::NoInput,
                format!("cannot read {}: {e}", path.display()),
            )
        })
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsOptions {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            client_ca_pem: args.tls_client_ca.as_deref().map(read).transpose()?,
        }),
        _ => None,
    };
    runtime.block_on(async {
        let options = Options {
            listen: args.listen.clone(),
            token: args.token,
            max_txn_ops: args.max_txn_ops.parse().expect("clap allows 64 or 128"),
            commit_latency: args.commit_latency,
            tls,
            key_regex_500: args.key_regex_500,
        };
        let consul = DevConsul::start(options).await.map_err(|e| {
            CommandError::new(
                ExitCode::CantCreate,
                format!("cannot listen on {:?}: {e}", args.listen),
            )
        })?;
        eprintln!("{BANNER}");
        println!("listening on {}", consul.address());
        shutdown_signal().await?;
        consul.stop().await;
        Ok(ExitCode::Ok)
    })
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
