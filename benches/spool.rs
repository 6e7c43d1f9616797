//! cndspool's benchmarks (SPEC §9), run with `cargo bench --bench spool`.
//!
//! The Consul stand-in runs in its own process on 127.0.0.1 (`cndspool dev-consul`), the
//! daemon in another (`cndspool run`, release build). Figures are medians of several runs;
//! ratios compare figures measured in the same run, on the same records:
//!
//! - drain: 20,000 mixed files of the eight types; daemon start → spool empty and every key
//!   readable. Beside it, the original library's way (one blocking `PUT /v1/kv/<key>` per
//!   record, in sequence, one keep-alive connection) and the file-system floor (list, read,
//!   parse and delete the same files, no network).
//! - latency: 200 single drops on an idle daemon, drop → key readable, p50 and p99.
//! - idle: CPU seconds the daemon uses in 60 s with an empty spool (`/proc/<pid>/stat`).
//! - memory: peak RSS (`VmHWM`) while draining a 100,000-file backlog.
//!
//! Arguments (all optional): `drain`, `latency`, `idle`, `memory` to run only those;
//! `--runs N` (default 3), `--files N` (default 20000), `--idle-secs N` (default 60),
//! `--backlog N` (default 100000), `--commit-latency DURATION` (default 0s: the stand-in
//! commits for free; `1ms` models a Raft apply per write request, one at a time).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cndspool::config::{Config, Endpoint};
use cndspool::consul::Client;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cndspool");

struct Options {
    only: Vec<String>,
    commit_latency: String,
    runs: usize,
    files: usize,
    idle_secs: u64,
    backlog: usize,
}

fn options() -> Options {
    let mut o = Options {
        only: Vec::new(),
        commit_latency: "0s".to_owned(),
        runs: 3,
        files: 20_000,
        idle_secs: 60,
        backlog: 100_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || args.next().and_then(|v| v.parse().ok()).expect("a number");
        match arg.as_str() {
            "--runs" => o.runs = number(),
            "--files" => o.files = number(),
            "--idle-secs" => o.idle_secs = number() as u64,
            "--backlog" => o.backlog = number(),
            "--commit-latency" => o.commit_latency = args.next().expect("a duration"),
            "--bench" => {}
            other if !other.starts_with('-') => o.only.push(other.to_owned()),
            _ => {}
        }
    }
    o
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_consul(o: &Options) -> (Proc, String) {
    let mut child = Command::new(BIN)
        .args([
            "dev-consul",
            "--listen",
            "127.0.0.1:0",
            "--commit-latency",
            &o.commit_latency,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    (Proc(child), address)
}

fn start_daemon(spool: &Path, address: &str) -> Proc {
    let config = spool.with_extension("toml");
    fs::write(
        &config,
        format!(
            "[spool]\ndir = {:?}\n[consul]\naddress = {address:?}\n[log]\nlevel = \"warn\"\n",
            spool.display().to_string()
        ),
    )
    .unwrap();
    Proc(
        Command::new(BIN)
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

fn client(address: &str) -> Client {
    let mut settings = Config::default().consul;
    settings.endpoint = Endpoint::parse(address, false).unwrap();
    Client::new(&settings, None).unwrap()
}

/// Record `i` of a mixed workload: the eight types in turn, each with its own key.
fn record(i: usize, round: usize) -> Value {
    let host = format!("host{i:06}");
    let dep = format!("dep-{round}-{i:06}");
    let at = "2024-05-01T12:00:00Z";
    match i % 8 {
        0 => json!({"type": "deployment_start", "deployment_id": dep, "service": "webshop",
                    "deployment_name": "webshop-prod", "project": "retail", "source": "vra8", "start_at": at}),
        1 => json!({"type": "deployment_end", "deployment_id": dep, "success": true,
                    "service": "webshop", "source": "vra8", "end_at": at}),
        2 => {
            json!({"type": "host_start", "hostname": host, "host_id": "vm-1001", "tiers": "frontend",
                    "deployment_id": dep, "source": "vra8", "domain": "example.com", "start_at": at})
        }
        3 => json!({"type": "host_end", "hostname": host, "success": true, "host_id": "vm-1001",
                    "deployment_id": dep, "source": "vra8", "end_at": at}),
        4 => json!({"type": "host_workflow_start", "workflow_id": format!("wf-{round}-{i}"),
                    "application": "webshop", "name": "install-nginx", "hostname": host, "start_at": at}),
        5 => {
            json!({"type": "host_workflow_end", "workflow_id": format!("wf-{round}-{i}"), "success": true,
                    "application": "webshop", "name": "install-nginx", "hostname": host, "end_at": at})
        }
        6 => {
            json!({"type": "vra", "uuid": format!("5f0c6a2e-{i:08}"), "hostname": host, "source": "vra8",
                    "domain": "example.com", "datacenter": "dc1", "cloud_account": "vcenter-prod",
                    "cpu": 4, "memory": 8192, "os_type": "linux", "software_name": "nginx",
                    "power_state": true, "tags": ["prod", "web"], "item_created_at": at})
        }
        _ => json!({"type": "app", "uuid": format!("a7d1c9e0-{i:08}"), "hostname": host,
                    "source": "cmdb", "application": "webshop", "domain": "example.com"}),
    }
}

/// A fresh spool holding `n` files of round `round`, dropped by the protocol.
fn fill_spool(root: &Path, n: usize, round: usize) -> Vec<Value> {
    let _ = fs::remove_dir_all(root);
    for sub in ["tmp", "new", "failed"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    (0..n)
        .map(|i| {
            let record = record(i, round);
            let name = format!("{i:016}-bench.json");
            fs::write(root.join("tmp").join(&name), record.to_string()).unwrap();
            fs::rename(root.join("tmp").join(&name), root.join("new").join(&name)).unwrap();
            record
        })
        .collect()
}

fn pending(root: &Path) -> usize {
    fs::read_dir(root.join("new"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn wait(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // Coarse: listing a 20,000-entry folder is not free, and it shares the cores.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn drain(o: &Options, rt: &tokio::runtime::Runtime, work: &Path) {
    println!(
        "\n## drain: {} mixed files, {} runs, stand-in commit latency {}",
        o.files, o.runs, o.commit_latency
    );
    let (_consul, address) = start_consul(o);
    let client = client(&address);
    let layout = Config::default().keys;
    let (mut ours, mut original, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..o.runs {
        rt.block_on(client.delete_tree("iaas_inventory/")).unwrap();
        let spool = work.join(format!("drain-{run}"));

        // cndspool: daemon start → spool empty and every key readable.
        let records = fill_spool(&spool, o.files, run);
        let started = Instant::now();
        let daemon = start_daemon(&spool, &address);
        wait("the drain", Duration::from_secs(600), || {
            pending(&spool) == 0
        });
        wait("every key", Duration::from_secs(60), || {
            rt.block_on(client.keys("iaas_inventory/", None))
                .unwrap()
                .len()
                == o.files
        });
        let secs = started.elapsed().as_secs_f64();
        drop(daemon);
        ours.push(secs);

        // The file-system floor: list, read, parse, delete; no network.
        fill_spool(&spool, o.files, run);
        let started = Instant::now();
        let mut names: Vec<PathBuf> = fs::read_dir(spool.join("new"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in &names {
            let bytes = fs::read(path).unwrap();
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            std::hint::black_box(value);
            fs::remove_file(path).unwrap();
        }
        floor.push(started.elapsed().as_secs_f64());

        // The original library's way: one blocking PUT per record, in sequence.
        rt.block_on(client.delete_tree("iaas_inventory/")).unwrap();
        let entries: Vec<_> = records
            .iter()
            .map(|r| {
                layout
                    .plan_file(r.to_string().as_bytes(), chrono::Utc::now())
                    .unwrap()
                    .remove(0)
            })
            .collect();
        let started = Instant::now();
        rt.block_on(async {
            for entry in &entries {
                client.put(&entry.key, &entry.value).await.unwrap();
            }
        });
        original.push(started.elapsed().as_secs_f64());
        println!(
            "run {run}: cndspool {:.3} s, original way {:.3} s, floor {:.3} s",
            ours[run], original[run], floor[run]
        );
        let _ = fs::remove_dir_all(&spool);
    }
    let n = o.files as f64;
    let (ours, original, floor) = (median(&mut ours), median(&mut original), median(&mut floor));
    println!(
        "median cndspool drain:       {ours:.3} s  ({:.0} files/s)",
        n / ours
    );
    println!(
        "median original library way: {original:.3} s  ({:.0} records/s)",
        n / original
    );
    println!(
        "median file-system floor:    {floor:.3} s  ({:.0} files/s)",
        n / floor
    );
    println!(
        "ratio vs original way:       {:.1}x  (budget >= 10x)",
        original / ours
    );
    println!(
        "ratio vs floor:              {:.2}x  (budget >= 0.5x)",
        floor / ours
    );
}

fn latency(o: &Options, rt: &tokio::runtime::Runtime, work: &Path) {
    println!("\n## latency: 200 single drops on an idle daemon");
    let (_consul, address) = start_consul(o);
    let client = client(&address);
    let spool = work.join("latency");
    fill_spool(&spool, 0, 0);
    let _daemon = start_daemon(&spool, &address);
    wait("the daemon", Duration::from_secs(10), || {
        spool.with_extension("toml").exists()
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut samples = Vec::new();
    for i in 0..200 {
        let key = format!("iaas_inventory/events/host/lat{i:03}/start");
        let body = json!({"type": "host_start", "hostname": format!("lat{i:03}")}).to_string();
        let name = format!("{i:016}-lat.json");
        fs::write(spool.join("tmp").join(&name), body).unwrap();
        let started = Instant::now();
        fs::rename(spool.join("tmp").join(&name), spool.join("new").join(&name)).unwrap();
        rt.block_on(async {
            while client.get(&key).await.unwrap().is_none() {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        });
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        // Idle between drops, as single drops are.
        std::thread::sleep(Duration::from_millis(20));
    }
    let p50 = percentile(&mut samples, 50.0);
    let p99 = percentile(&mut samples, 99.0);
    println!("drop -> readable p50 {p50:.2} ms (budget <= 5), p99 {p99:.2} ms (budget <= 20)");
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15; after the ")" they are at 11 and 12.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn idle(o: &Options, work: &Path) {
    println!("\n## idle: CPU over {} s with an empty spool", o.idle_secs);
    let (_consul, address) = start_consul(o);
    let spool = work.join("idle");
    fill_spool(&spool, 0, 0);
    let daemon = start_daemon(&spool, &address);
    std::thread::sleep(Duration::from_secs(2));
    let before = cpu_seconds(daemon.0.id());
    std::thread::sleep(Duration::from_secs(o.idle_secs));
    let used = cpu_seconds(daemon.0.id()) - before;
    let per_minute = used * 60.0 / o.idle_secs as f64;
    println!(
        "idle CPU {used:.3} s in {} s = {per_minute:.3} s per minute (budget < 0.1)",
        o.idle_secs
    );
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn memory(o: &Options, work: &Path) {
    println!(
        "\n## memory: peak RSS draining a {}-file backlog",
        o.backlog
    );
    let (_consul, address) = start_consul(o);
    let spool = work.join("memory");
    fill_spool(&spool, o.backlog, 0);
    let started = Instant::now();
    let daemon = start_daemon(&spool, &address);
    wait("the backlog", Duration::from_secs(1200), || {
        pending(&spool) == 0
    });
    let secs = started.elapsed().as_secs_f64();
    let hwm = vm_hwm_kib(daemon.0.id());
    println!(
        "peak RSS {:.1} MiB (budget < 64) while draining {} files in {secs:.1} s ({:.0} files/s)",
        hwm as f64 / 1024.0,
        o.backlog,
        o.backlog as f64 / secs
    );
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::Builder::new()
        .prefix("cndspool-bench-")
        .tempdir()
        .unwrap();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .unwrap_or_default();
    println!("# cndspool benchmarks: {cores} cores, MemTotal {mem} kB");
    let run = |name: &str| o.only.is_empty() || o.only.iter().any(|n| n == name);
    if run("drain") {
        drain(&o, &rt, work.path());
    }
    if run("latency") {
        latency(&o, &rt, work.path());
    }
    if run("idle") {
        idle(&o, work.path());
    }
    if run("memory") {
        memory(&o, work.path());
    }
}
