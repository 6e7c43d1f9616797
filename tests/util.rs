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
