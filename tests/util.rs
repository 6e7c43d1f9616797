//! Shared helpers: run the binary hermetically, make spools, read what they hold.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
                address,
                prefix,
            },
            _ => {
                let standin = DevConsul::start(options)
                    .await
                    .expect("the stand-in starts");
                Self {
                    address: standin.address(),
                    standin: Some(standin),
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
