//! `cndspool run`: wires configuration, the spool lock, start-up checks, the watcher, the
//! pipeline, reloads and shutdown together.
//!
//! Start-up order (SPEC §5): load the configuration; create missing spool folders; take
//! the lock; prove the daemon can list, read and delete in `new/` and write in `failed/`;
//! install the watch; then run the pipeline, which scans the backlog first. Consul's state
//! is not a start-up condition: the daemon starts and spools while Consul is down.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError, Env, Overrides};
use crate::consul::Client;
use crate::delivery::events::Stats;
use crate::delivery::pipeline::{Observer, Pipeline, Reload};
use crate::spool::lock::SpoolLock;
use crate::spool::{Spool, SpoolError, io_error, watch};

/// How to load the configuration again on SIGHUP.
#[derive(Debug, Clone)]
pub struct Reloader {
    /// `--config`, if given.
    pub path: Option<PathBuf>,
    /// The environment at start.
    pub env: Env,
    /// The command-line flags.
    pub overrides: Overrides,
    /// The installed logging, whose level a reload changes.
    pub logging: Option<crate::logging::Logging>,
}

impl Reloader {
    /// Loads the configuration and builds a client with the token read anew.
    ///
    /// # Errors
    /// An invalid configuration or token file, or TLS material that cannot be used.
    pub fn load(&self) -> Result<(Config, Client), ConfigError> {
        let config = Config::load(self.path.as_deref(), &self.env, &self.overrides)?;
        let client = client_for(&config)?;
        Ok((config, client))
    }
}

fn client_for(config: &Config) -> Result<Client, ConfigError> {
    let token = config.consul.token.load()?;
    if config.consul.tls.skip_verify {
        warn!(
            "TLS certificate verification is off (tls_skip_verify / CONSUL_HTTP_SSL_VERIFY=false): the connection to Consul can be intercepted"
        );
    }
    Client::new(&config.consul, token.as_ref())
}

/// Runs the daemon until `shutdown` is cancelled. Each message on `reload_requests`
/// re-reads the configuration and the token file; an invalid one keeps the old.
///
/// # Errors
/// Start-up failures only: configuration (78), lock or spool folders (73, 77, 74), watch.
pub async fn run(
    config: Config,
    reloader: Reloader,
    mut reload_requests: mpsc::Receiver<()>,
    observer: &mut dyn DaemonObserver,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let spool = Spool::new(&config.spool.dir);
    create_folders(&spool)?;
    let _lock = SpoolLock::acquire(&spool)?;
    prove_permissions(&spool)?;
    let client = client_for(&config)?;
    let hints = watch::watch(&spool.new_dir())?;
    info!(
        spool = %spool.root().display(),
        consul = %config.consul.endpoint,
        token = %config.consul.token.origin(),
        "cndspool started: watching {} and delivering to {}",
        spool.new_dir().display(),
        config.consul.endpoint
    );
    observer.ready();

    let (reloads_tx, reloads) = mpsc::channel(4);
    let reload_task = tokio::spawn({
        let shutdown = shutdown.clone();
        let notify = observer.reload_notifier();
        async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    request = reload_requests.recv() => if request.is_none() { break },
                }
                notify(ReloadPhase::Reloading);
                match reloader.load() {
                    Ok((config, client)) => {
                        if let Some(logging) = &reloader.logging {
                            logging.apply(&config.log);
                        }
                        let reload = Reload {
                            config: Arc::new(config),
                            client,
                        };
                        if reloads_tx.send(reload).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        error!(error = %e, "reload refused, the previous configuration stays in force: {e}")
                    }
                }
                notify(ReloadPhase::Done);
            }
        }
    });

    let stats = Arc::new(Stats::default());
    let pipeline = Pipeline::new(Arc::new(config), client, stats);
    pipeline
        .run(
            hints,
            reloads,
            observer.as_pipeline_observer(),
            shutdown.clone(),
        )
        .await;
    reload_task.abort();
    info!("cndspool stopped");
    Ok(())
}

/// Where a reload stands, for systemd's `RELOADING=1` / `READY=1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadPhase {
    /// Reading the new configuration.
    Reloading,
    /// Done, whether it was taken or refused.
    Done,
}

/// What the daemon tells its supervisor (systemd) beyond what the pipeline reports.
pub trait DaemonObserver: Send {
    /// Configuration loaded, lock held, permissions proved, watch in place.
    fn ready(&mut self) {}
    /// A callback for reload phases (called from another task).
    fn reload_notifier(&self) -> Box<dyn Fn(ReloadPhase) + Send + Sync> {
        Box::new(|_| {})
    }
    /// The pipeline's observer.
    fn as_pipeline_observer(&mut self) -> &mut dyn Observer;
}

/// A daemon observer that tells nobody anything.
#[derive(Debug, Default)]
pub struct Unsupervised(crate::delivery::pipeline::Quiet);

impl DaemonObserver for Unsupervised {
    fn as_pipeline_observer(&mut self) -> &mut dyn Observer {
        &mut self.0
    }
}

fn create_folders(spool: &Spool) -> Result<(), SpoolError> {
    for dir in [
        spool.root().to_owned(),
        spool.tmp(),
        spool.new_dir(),
        spool.failed(),
    ] {
        if !dir.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o2770)
                .create(&dir)
                .map_err(io_error(&dir, "create the folder"))?;
            info!(folder = %dir.display(), "created missing spool folder {}", dir.display());
        }
    }
    Ok(())
}

/// Proves, with a dotfile the scanner ignores, that the daemon can list, create, read and
/// delete in `new/` and create and delete in `failed/` (Flume's canary).
fn prove_permissions(spool: &Spool) -> Result<(), SpoolError> {
    let new = spool.new_dir();
    fs::read_dir(&new).map_err(io_error(&new, "list files"))?;
    let probe_name = format!(".cndspool-probe-{}", std::process::id());
    for (dir, read_back) in [(new, true), (spool.failed(), false)] {
        let probe = dir.join(&probe_name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .or_else(|e| {
                // A probe left by a crashed predecessor with this pid.
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    fs::remove_file(&probe)?;
                    OpenOptions::new().write(true).create_new(true).open(&probe)
                } else {
                    Err(e)
                }
            })
            .map_err(io_error(&dir, "create files"))?;
        file.write_all(b"probe")
            .map_err(io_error(&dir, "write files"))?;
        if read_back {
            let mut text = String::new();
            fs::File::open(&probe)
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(io_error(&dir, "read files"))?;
        }
        fs::remove_file(&probe).map_err(io_error(&dir, "delete files"))?;
    }
    Ok(())
}
