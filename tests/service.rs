//! Running as a systemd service: the notify protocol over a real datagram socket, the
//! unit files checked by systemd's own tools, and the logs an operator reads.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::standin_or_skip;
use crate::util::{Daemon, TestConsul, TestSpool, daemon_config, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Receives notify datagrams until `done` holds for everything received so far.
async fn receive_until(
    socket: &UnixDatagram,
    seen: &mut Vec<String>,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    let mut buf = vec![0u8; 4096];
    while !done(seen) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; got {seen:?}"
        );
        match socket.recv(&mut buf) {
            Ok(n) => seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn the_notify_protocol_over_a_real_socket() {
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut daemon = Daemon::start_with_env(
        &daemon_config(spool.root(), &consul, &[]),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "300000"),
        ],
    );
    let mut seen = Vec::new();
    receive_until(&socket, &mut seen, "READY=1, STATUS= and WATCHDOG=1", |s| {
        s.iter().any(|l| l == "READY=1")
            && s.iter().any(|l| l.starts_with("STATUS="))
            && s.iter().filter(|l| *l == "WATCHDOG=1").count() >= 3
    })
    .await;
    spool.drop_as(
        "a.json",
        r#"{"type": "host_start", "hostname": "notified"}"#,
    );
    receive_until(&socket, &mut seen, "a delivering status", |s| {
        s.iter()
            .any(|l| l.starts_with("STATUS=delivering; 1 queued"))
    })
    .await;

    seen.clear();
    daemon.signal("HUP");
    receive_until(&socket, &mut seen, "RELOADING=1 then READY=1", |s| {
        let reloading = s.iter().position(|l| l == "RELOADING=1");
        reloading.is_some_and(|at| s[at..].iter().any(|l| l == "READY=1"))
    })
    .await;
    assert!(
        seen.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{seen:?}"
    );

    seen.clear();
    daemon.signal("TERM");
    receive_until(&socket, &mut seen, "STOPPING=1", |s| {
        s.iter().any(|l| l == "STOPPING=1")
    })
    .await;
    assert_eq!(daemon.wait_exit(DEADLINE).await.code(), Some(0));
}

#[tokio::test]
async fn an_outage_is_one_warning_and_one_recovery_and_every_json_line_parses() {
    let consul = TestConsul::start().await;
    let standin = standin_or_skip!(consul);
    let spool = TestSpool::new();
    let config = daemon_config(
        spool.root(),
        &consul,
        &[
            ("delivery", "retry_initial", "100ms".into()),
            ("delivery", "retry_max", "2s".into()),
        ],
    );
    let daemon = Daemon::start(&config);
    standin.stop().await;
    let down_at = Instant::now();
    for i in 0..10 {
        spool.drop_as(
            &format!("o{i}.json"),
            &format!(r#"{{"type": "host_start", "hostname": "o{i}"}}"#),
        );
    }
    daemon.wait_log("Consul is unavailable", DEADLINE).await;
    wait_until("a 20 s outage", Duration::from_secs(40), || {
        down_at.elapsed() >= Duration::from_secs(20)
    })
    .await;
    standin.resume().await.unwrap();
    wait_until("the spool to drain", DEADLINE, || spool.pending() == 0).await;
    daemon.wait_log("available again", DEADLINE).await;

    // `lines()` parses every line as JSON and fails on any that is not.
    let lines = daemon.lines();
    let warnings: Vec<_> = lines.iter().filter(|l| l["level"] == "WARN").collect();
    assert_eq!(
        warnings.len(),
        1,
        "one WARN for the whole episode: {warnings:#?}"
    );
    assert_eq!(warnings[0]["queued"], 10);
    assert!(
        warnings[0]["error"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{:?}",
        warnings[0]
    );
    let recovered: Vec<_> = lines
        .iter()
        .filter(|l| l["message"].as_str().unwrap().contains("available again"))
        .collect();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0]["level"], "INFO");
    assert!(
        recovered[0]["outage_s"].as_u64().unwrap() >= 19,
        "{:?}",
        recovered[0]
    );
    assert!(daemon.stop().await.success());
}

/// The unit with ExecStart pointing at the built binary (verify checks it exists).
fn unit_under_test(dir: &Path) -> std::path::PathBuf {
    let unit = fs::read_to_string(repo("systemd/cndspool.service")).unwrap();
    let path = dir.join("cndspool.service");
    fs::write(
        &path,
        unit.replace("/usr/bin/cndspool", env!("CARGO_BIN_EXE_cndspool")),
    )
    .unwrap();
    path
}

#[test]
fn the_unit_verifies_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit_under_test(dir.path()))
        .output()
        .unwrap();
    // verify exits 0 even on unknown keys: any output is a failure.
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let unit = fs::read_to_string(repo("systemd/cndspool.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "LoadCredential=consul-token:",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line} missing");
    }
    assert!(unit.lines().any(|l| l.starts_with("WatchdogSec=")));
}

#[test]
fn the_unit_is_hardened_to_an_exposure_of_2_or_lower() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit_under_test(dir.path()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for cndspool.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(exposure <= 2.0, "exposure {exposure}:\n{text}");
}

#[test]
fn sysusers_and_tmpfiles_make_a_shared_spool() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("etc")).unwrap();
    let root_arg = format!("--root={}", root.path().display());
    let out = Command::new("systemd-sysusers")
        .arg(&root_arg)
        .arg(repo("systemd/cndspool.sysusers"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let passwd = fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let entry = passwd
        .lines()
        .find(|l| l.starts_with("cndspool:"))
        .expect("the cndspool user");
    let fields: Vec<&str> = entry.split(':').collect();
    let (uid, gid): (u32, u32) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    assert!(
        fs::read_to_string(root.path().join("etc/group"))
            .unwrap()
            .contains(&format!("cndspool:x:{gid}:"))
    );

    let out = Command::new("systemd-tmpfiles")
        .args(["--create", &root_arg])
        .arg(repo("systemd/cndspool.tmpfiles"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for sub in ["", "tmp", "new", "failed"] {
        let path = root.path().join("var/spool/cndspool").join(sub);
        let meta = fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(meta.is_dir());
        // drwxrws---: setgid, group-writable, no sticky bit, nothing for others.
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            0o2770,
            "{}",
            path.display()
        );
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{}", path.display());
    }
}

/// Parses one journald native-protocol datagram: `NAME=value\n`, or `NAME\n` followed by
/// a little-endian u64 length, the value and `\n`.
fn journal_fields(mut datagram: &[u8]) -> std::collections::HashMap<String, String> {
    let mut fields = std::collections::HashMap::new();
    while let Some(end) = datagram.iter().position(|&b| b == b'\n') {
        let line = &datagram[..end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            let (name, value) = (&line[..eq], &line[eq + 1..]);
            fields.insert(
                String::from_utf8_lossy(name).into(),
                String::from_utf8_lossy(value).into(),
            );
            datagram = &datagram[end + 1..];
        } else {
            let rest = &datagram[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.insert(
                String::from_utf8_lossy(line).into(),
                String::from_utf8_lossy(&rest[8..8 + len]).into(),
            );
            datagram = &rest[8 + len + 1..];
        }
    }
    fields
}

#[tokio::test]
async fn under_systemd_logs_are_native_journal_entries_with_priorities_and_fields() {
    use std::os::unix::fs::MetadataExt;
    // tracing-journald writes to journald's fixed socket: stand in for journald there,
    // where no journald runs (systemd is not PID 1 on these machines).
    let socket_path = Path::new("/run/systemd/journal/socket");
    if socket_path.exists() || fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("skipped: a journald runs here, or this is not root");
        return;
    }
    fs::create_dir_all(socket_path.parent().unwrap()).unwrap();
    let journal = UnixDatagram::bind(socket_path).unwrap();
    struct Unbind<'a>(&'a Path);
    impl Drop for Unbind<'_> {
        fn drop(&mut self) {
            let _ = fs::remove_file(self.0);
        }
    }
    let _unbind = Unbind(socket_path);
    journal.set_nonblocking(true).unwrap();

    let consul = TestConsul::start().await;
    let standin = standin_or_skip!(consul);
    standin.stop().await;
    let spool = TestSpool::new();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("c.toml");
    let config = daemon_config(spool.root(), &consul, &[("log", "format", "text".into())]);
    fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    // systemd connects stderr to the journal and says so in JOURNAL_STREAM=dev:ino.
    let stderr_path = dir.path().join("stderr");
    let stderr = fs::File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let mut child = crate::util::cndspool()
        .args(["run", "--config", config_path.to_str().unwrap()])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(stderr)
        .spawn()
        .unwrap();
    spool.drop_as("j.json", r#"{"type": "host_start", "hostname": "journal"}"#);

    let mut entries = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + DEADLINE;
    while !entries
        .iter()
        .any(|e: &std::collections::HashMap<String, String>| {
            e.get("MESSAGE")
                .is_some_and(|m| m.contains("Consul is unavailable"))
        })
    {
        assert!(Instant::now() < deadline, "no WARN entry; got {entries:#?}");
        match journal.recv(&mut buf) {
            Ok(n) => entries.push(journal_fields(&buf[..n])),
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let started = entries
        .iter()
        .find(|e| {
            e.get("MESSAGE")
                .is_some_and(|m| m.contains("cndspool started"))
        })
        .expect("a start entry");
    assert_eq!(started["PRIORITY"], "6", "INFO is priority 6");
    assert_eq!(started["SYSLOG_IDENTIFIER"], "cndspool");
    let warn = entries
        .iter()
        .find(|e| {
            e.get("MESSAGE")
                .is_some_and(|m| m.contains("Consul is unavailable"))
        })
        .unwrap();
    assert_eq!(
        warn["PRIORITY"], "4",
        "WARN is priority 4: journalctl -p warning shows it"
    );
    assert_eq!(warn["QUEUED"], "1");
    assert!(warn["ERROR"].contains("could not connect"), "{warn:?}");
    assert_eq!(
        fs::read_to_string(&stderr_path).unwrap(),
        "",
        "nothing as text on stderr"
    );
}
