//! Shared helpers: run the binary hermetically, make spools, read what they hold.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The eight record types, as the fixtures under `tests/fixtures/records/` name them.
pub const TYPES: [&str; 8] = [
    "deployment_start",
    "deployment_end",
    "host_start",
    "host_end",
    "host_workflow_start",
    "host_workflow_end",
    "vra",
    "app",
];

/// A fixed zone, so Python-form date-times read the same everywhere (India: +05:30).
pub const TZ: &str = "IST-5:30";

/// The built binary, with a clean environment: no `CONSUL_*`, a fixed zone.
pub fn cndspool() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cndspool"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TZ", TZ);
    cmd
}

/// Runs the binary with `args`.
pub fn run(args: &[&str]) -> Output {
    cndspool().args(args).output().expect("the binary runs")
}

/// The process's exit status, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `setpriv` running `args` of a copy of the binary as `nobody`: the copy sits in a
/// world-readable folder, since the build folder may be private to root.
pub fn as_nobody(args: &[&str]) -> (tempfile::TempDir, Command) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("cndspool");
    fs::copy(env!("CARGO_BIN_EXE_cndspool"), &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(copy)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    (dir, cmd)
}

/// Asserts the exit status and returns stdout.
#[track_caller]
pub fn expect_status(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", describe(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A file under `tests/fixtures/`.
pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// The golden file of a record type: `{"key": <seed key>, "value": <stored value>}`.
pub fn golden(kind: &str) -> serde_json::Value {
    serde_json::from_slice(&fs::read(fixture(&format!("records/{kind}.golden.json"))).unwrap())
        .unwrap()
}

/// A temporary spool with its three folders.
pub struct TestSpool {
    pub dir: tempfile::TempDir,
}

impl TestSpool {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        for sub in ["tmp", "new", "failed"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Self { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn root_str(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// The names of the entries in folder `sub`, sorted.
    pub fn list(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(self.root().join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

// ---------------------------------------------------------------------------------------
// Consul: the in-memory stand-in, or a real agent when CNDSPOOL_TEST_CONSUL is set.

use std::sync::atomic::{AtomicUsize, Ordering};

use cndspool::config::{Config, Endpoint, Secret};
use cndspool::consul::Client;
use cndspool::consul::standin::{DevConsul, Options};

/// The Consul a test talks to.
pub struct TestConsul {
    standin: Option<DevConsul>,
    /// The stand-in's ACL token, used to read back what was written.
    acl_token: Option<String>,
    /// The client that reads back, built once (a client loads the system's CA roots).
    reader: std::sync::OnceLock<Client>,
    address: String,
    /// A key prefix of this test's own, so tests can share a real agent.
    pub prefix: String,
}

impl TestConsul {
    /// The stand-in on a free port, or the agent named by `CNDSPOOL_TEST_CONSUL`.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// As [`TestConsul::start`], with stand-in options (ignored for a real agent).
    pub async fn start_with(options: Options) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "cndspool-test-{}-{}/",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        match std::env::var("CNDSPOOL_TEST_CONSUL") {
            Ok(address) if !address.is_empty() => Self {
                standin: None,
                acl_token: None,
                reader: std::sync::OnceLock::new(),
                address,
                prefix,
            },
            _ => {
                let acl_token = options.token.clone();
                let standin = DevConsul::start(options)
                    .await
                    .expect("the stand-in starts");
                Self {
                    address: standin.address(),
                    standin: Some(standin),
                    acl_token,
                    reader: std::sync::OnceLock::new(),
                    prefix,
                }
            }
        }
    }

    /// The stand-in, for fault injection; `None` against a real agent.
    pub fn standin(&self) -> Option<&DevConsul> {
        self.standin.as_ref()
    }

    /// The address, as `CONSUL_HTTP_ADDR` takes it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `rest` under this test's prefix.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// A client with `token` (or `CNDSPOOL_TEST_CONSUL_TOKEN` against a real agent).
    pub fn client(&self, token: Option<&str>) -> Client {
        self.client_with(token, |_| {})
    }

    /// A client with `token`, its settings adjusted by `adjust`.
    pub fn client_with(
        &self,
        token: Option<&str>,
        adjust: impl FnOnce(&mut cndspool::config::ConsulSettings),
    ) -> Client {
        let mut settings = Config::default().consul;
        settings.endpoint = Endpoint::parse(&self.address, false).unwrap();
        adjust(&mut settings);
        let real_token = std::env::var("CNDSPOOL_TEST_CONSUL_TOKEN").ok();
        let token = match &self.standin {
            Some(_) => token.map(Secret::new),
            None => real_token.map(Secret::new),
        };
        Client::new(&settings, token.as_ref()).unwrap()
    }
}

impl Drop for TestConsul {
    fn drop(&mut self) {
        if self.standin.is_none() {
            // Leave a real agent as we found it.
            let client = self.client(None);
            let prefix = self.prefix.clone();
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(client.delete_tree(&prefix))
            })
            .join();
        }
    }
}

/// Skips the rest of a test that needs the stand-in's fault injection or ACL control.
#[macro_export]
macro_rules! standin_or_skip {
    ($consul:expr) => {
        match $consul.standin() {
            Some(standin) => standin,
            None => {
                eprintln!("skipped against a real agent: needs the stand-in's controls");
                return;
            }
        }
    };
}

// ---------------------------------------------------------------------------------------
// The daemon, as a process.

use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

impl TestConsul {
    /// The `[keys] prefix` daemons of this test use: the seed's own against the stand-in
    /// (one per test), a private one against a shared real agent.
    pub fn keys_prefix(&self) -> String {
        match self.standin {
            Some(_) => "iaas_inventory".to_owned(),
            None => format!("{}iaas_inventory", self.prefix),
        }
    }

    /// A golden file's seed key, moved under [`TestConsul::keys_prefix`].
    pub fn seed_key(&self, golden: &serde_json::Value) -> String {
        let key = golden["key"].as_str().expect("a golden key");
        key.replacen("iaas_inventory", &self.keys_prefix(), 1)
    }

    /// A key under [`TestConsul::keys_prefix`].
    pub fn inventory_key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.keys_prefix())
    }

    /// A client that may read everything (the ACL token, if any).
    pub fn reader(&self) -> &Client {
        self.reader
            .get_or_init(|| self.client(self.acl_token.as_deref()))
    }

    /// The value stored at `key`, as JSON (`None` when missing).
    pub async fn json(&self, key: &str) -> Option<serde_json::Value> {
        let entry = self.reader().get(key).await.unwrap()?;
        Some(serde_json::from_slice(entry.bytes()).unwrap())
    }

    /// How many keys are stored under [`TestConsul::keys_prefix`].
    pub async fn count(&self) -> usize {
        self.reader()
            .keys(&format!("{}/", self.keys_prefix()), None)
            .await
            .unwrap()
            .len()
    }
}

/// A running `cndspool run`, its log captured (JSON lines) in a file.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Settings for a test daemon: the spool, Consul, and short retry delays.
pub fn daemon_config(
    spool: &Path,
    consul: &TestConsul,
    extra: &[(&str, &str, toml::Value)],
) -> toml::Table {
    let mut table: toml::Table = toml::from_str(&format!(
        r#"
[spool]
dir = {spool:?}
settle = "300ms"
rescan_interval = "1s"
[consul]
address = {address:?}
connect_timeout = "500ms"
request_timeout = "2s"
[delivery]
retry_initial = "20ms"
retry_max = "200ms"
shutdown_timeout = "2s"
[keys]
prefix = {prefix:?}
[log]
format = "json"
level = "info"
"#,
        spool = spool.display().to_string(),
        address = consul.address(),
        prefix = consul.keys_prefix(),
    ))
    .unwrap();
    if consul.standin().is_none()
        && let Ok(token) = std::env::var("CNDSPOOL_TEST_CONSUL_TOKEN")
    {
        table["consul"]
            .as_table_mut()
            .unwrap()
            .insert("token".into(), token.into());
    }
    for (section, key, value) in extra {
        table[*section]
            .as_table_mut()
            .unwrap()
            .insert((*key).into(), value.clone());
    }
    table
}

impl Daemon {
    /// Starts `cndspool run` with `config`.
    pub fn start(config: &toml::Table) -> Self {
        Self::start_with_env(config, &[])
    }

    /// Starts `cndspool run` with `config` and extra environment variables.
    pub fn start_with_env(config: &toml::Table, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("cndspool.toml");
        fs::write(&config_path, toml::to_string(config).unwrap()).unwrap();
        Self::spawn(
            dir,
            &["run", "--config", config_path.to_str().unwrap()],
            env,
        )
    }

    /// Starts the binary with `args` (a daemon command), its log captured.
    pub fn start_args(args: &[&str]) -> Self {
        Self::spawn(tempfile::tempdir().unwrap(), args, &[])
    }

    fn spawn(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.path().join("daemon.log");
        let child = cndspool()
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    /// Everything the daemon printed so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log lines so far, parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.output()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The log lines whose message contains `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<serde_json::Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(needle)))
            .collect()
    }

    /// Waits until a log message contains `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) {
        wait_until(&format!("a log line with {needle:?}"), timeout, || {
            !self.lines_with(needle).is_empty()
        })
        .await;
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `signal` (a `kill -s` name: TERM, HUP, KILL, ...).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end (after a signal), with a deadline.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then the exit status.
    pub async fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(10)).await
    }

    /// SIGKILL, at once.
    pub async fn kill9(mut self) {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(10)).await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `condition` until it holds or `timeout` passes; panics naming `what`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl TestSpool {
    /// Writes `content` as `new/<name>` by the drop protocol (tmp, then rename).
    pub fn drop_as(&self, name: &str, content: &str) -> PathBuf {
        let tmp = self.root().join("tmp").join(name);
        fs::write(&tmp, content).unwrap();
        let target = self.root().join("new").join(name);
        fs::rename(&tmp, &target).unwrap();
        target
    }

    /// How many spool entries wait in `new/`: regular `*.json` files, not dotfiles.
    pub fn pending(&self) -> usize {
        self.list("new")
            .iter()
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .filter(|n| {
                fs::symlink_metadata(self.root().join("new").join(n)).is_ok_and(|m| m.is_file())
            })
            .count()
    }
}
