//! `cndspool demo`: the whole flow in one process. It starts the in-memory Consul
//! stand-in and the daemon on a temporary spool, drops one record of each type, waits
//! until Consul has them, prints the resulting KV tree, and says how to drop more and
//! browse the keys. It runs until Ctrl-C; `--once` ends after the tour.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Endpoint, Env, LogSettings, Overrides};
use crate::consul::Client;
use crate::consul::standin::{BANNER, DevConsul, Options};
use crate::daemon::{self, Reloader, Unsupervised};
use crate::exit::{CommandError, ExitCode};
use crate::spool::{Spool, drop};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Exit after the tour instead of running until Ctrl-C.
    #[arg(long)]
    once: bool,
}

/// One record of each type, as a deployment pipeline would drop them.
fn tour_records() -> Vec<Value> {
    vec![
        json!({"type": "deployment_start", "deployment_id": "dep-0042", "service": "webshop",
               "deployment_name": "webshop-prod", "project": "retail", "source": "vra8"}),
        json!({"type": "host_start", "hostname": "web01", "host_id": "vm-1001", "tiers": "frontend",
               "deployment_id": "dep-0042", "source": "vra8", "domain": "example.com"}),
        json!({"type": "host_workflow_start", "workflow_id": "wf-77", "application": "webshop",
               "name": "install-nginx", "hostname": "web01", "deployment_id": "dep-0042"}),
        json!({"type": "host_workflow_end", "workflow_id": "wf-77", "success": true,
               "application": "webshop", "name": "install-nginx", "hostname": "web01"}),
        json!({"type": "host_end", "hostname": "web01", "success": true, "host_id": "vm-1001",
               "deployment_id": "dep-0042", "source": "vra8"}),
        json!({"type": "deployment_end", "deployment_id": "dep-0042", "success": true,
               "service": "webshop", "source": "vra8"}),
        json!({"type": "vra", "uuid": "5f0c6a2e-1111-4c2b-9a53-0c2d6a7e9b10", "hostname": "web01",
               "source": "vra8", "domain": "example.com", "datacenter": "dc1", "cpu": 4,
               "memory": 8192, "os_type": "linux", "power_state": true, "tags": ["prod", "web"]}),
        json!({"type": "app", "uuid": "a7d1c9e0-2222-4f5e-8b1a-3d4c5b6a7f80", "hostname": "web01",
               "source": "cmdb", "application": "webshop"}),
    ]
}

pub(super) fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::logging::init(&LogSettings {
        level: tracing::Level::WARN,
        ..Config::default().log
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(tour(args.once))
}

async fn tour(once: bool) -> anyhow::Result<ExitCode> {
    let consul = DevConsul::start(Options::default()).await?;
    let spool_dir = tempfile::Builder::new()
        .prefix("cndspool-demo-")
        .tempdir()?;
    let spool = Spool::new(spool_dir.path());
    println!("{BANNER}");
    println!("Consul stand-in:  {}", consul.address());
    println!("spool:            {}", spool.root().display());

    let mut config = Config::default();
    config.spool.dir = spool.root().to_owned();
    config.consul.endpoint =
        Endpoint::parse(&consul.address(), false).map_err(anyhow::Error::msg)?;
    let reloader = Reloader {
        path: None,
        env: Env::default(),
        overrides: Overrides::default(),
        logging: None,
    };
    let client = Client::new(&config.consul, None)?;
    let shutdown = CancellationToken::new();
    let (_no_reloads, reload_requests) = mpsc::channel(1);
    let daemon = tokio::spawn({
        let (config, shutdown) = (config.clone(), shutdown.clone());
        async move {
            let mut observer = Unsupervised::default();
            daemon::run(config, reloader, reload_requests, &mut observer, shutdown).await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !spool.new_dir().is_dir() {
        if daemon.is_finished() || Instant::now() > deadline {
            return Err(daemon_failed(daemon).await);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    println!(
        "\nDropping one record of each type into {} ...",
        spool.new_dir().display()
    );
    let records = tour_records();
    for record in &records {
        let path = drop::drop_file(&spool, record.to_string().as_bytes())?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        println!(
            "  {:<20} {name}",
            record["type"].as_str().unwrap_or_default()
        );
    }

    let prefix = "iaas_inventory/";
    let entries = loop {
        let entries = client.list(prefix).await?;
        if entries.len() >= records.len() {
            break entries;
        }
        if daemon.is_finished() || Instant::now() > deadline {
            return Err(daemon_failed(daemon).await);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("\nDelivered. Consul's KV tree now holds:\n");
    for entry in &entries {
        println!("{}", entry.key);
        let value: Value = serde_json::from_slice(entry.bytes()).unwrap_or(Value::Null);
        for line in serde_json::to_string_pretty(&value)?.lines() {
            println!("    {line}");
        }
    }

    if once {
        shutdown.cancel();
        daemon.await??;
        return Ok(ExitCode::Ok);
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "cndspool".to_owned());
    println!(
        "\nThe daemon keeps running. Drop more, from another terminal:\n\n  \
         {exe} emit --spool {spool} host_start --set hostname=web42 --set tiers=backend\n\n\
         Browse the keys:\n\n  curl -s '{addr}/v1/kv/iaas_inventory?keys'\n  \
         curl -s '{addr}/v1/kv/iaas_inventory/events/host/web42/start?raw'\n\n\
         A bad file lands in {spool}/failed with a .reason beside it:\n\n  \
         echo '{{\"type\": \"host_start\"}}' > {spool}/new/bad.json\n\n\
         Ctrl-C to stop.",
        spool = spool.root().display(),
        addr = consul.address(),
    );
    tokio::signal::ctrl_c().await?;
    shutdown.cancel();
    daemon.await??;
    Ok(ExitCode::Ok)
}

async fn daemon_failed(daemon: tokio::task::JoinHandle<anyhow::Result<()>>) -> anyhow::Error {
    if !daemon.is_finished() {
        daemon.abort();
        return CommandError::new(ExitCode::IoErr, "the demo's daemon did not deliver in time")
            .into();
    }
    match daemon.await {
        Ok(Err(e)) => e,
        Ok(Ok(())) => anyhow::anyhow!("the demo's daemon stopped early"),
        Err(e) => anyhow::anyhow!("the demo's daemon failed: {e}"),
    }
}
