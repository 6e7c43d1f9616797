//! `cndspool run`: files move from the spool into Consul through outages, faults, crashes
//! and bad input, with nothing lost and nothing stuck.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cndspool::consul::standin::{Fault, Options};
use serde_json::{Value, json};

use crate::standin_or_skip;
use crate::util::{
    Daemon, TYPES, TestConsul, TestSpool, as_nobody, daemon_config, fixture, golden, wait_until,
};

/// Generous: these machines are shared. Nothing here measures speed.
const DEADLINE: Duration = Duration::from_secs(30);

/// Drops `content` as `name` with its mtime set to `mtime` (set in tmp/, kept by rename).
fn drop_at(spool: &TestSpool, name: &str, content: &str, mtime: SystemTime) {
    let tmp = spool.root().join("tmp").join(name);
    fs::write(&tmp, content).unwrap();
    fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fs::rename(&tmp, spool.root().join("new").join(name)).unwrap();
}

/// Drops `count` host records `{prefix}{i}` in drop order (a millisecond apart, a minute
/// ago), and returns the (hostname, tiers) pairs they should leave in Consul.
fn drop_hosts(spool: &TestSpool, prefix: &str, count: u64, tiers: &str) -> Vec<(String, String)> {
    let t0 = SystemTime::now() - Duration::from_secs(60);
    (0..count)
        .map(|i| {
            let name = format!("{prefix}{i:05}");
            drop_at(
                spool,
                &format!("{name}.json"),
                &host(&name, tiers),
                t0 + Duration::from_millis(i),
            );
            (name, tiers.to_owned())
        })
        .collect()
}

fn host(name: &str, tiers: &str) -> String {
    json!({"type": "host_start", "hostname": name, "tiers": tiers, "start_at": "2024-01-01T00:00:00Z"}).to_string()
}

async fn wait_drained(spool: &TestSpool) {
    wait_until("the spool to drain", DEADLINE, || spool.pending() == 0).await;
}

async fn expect_hosts(consul: &TestConsul, hosts: impl IntoIterator<Item = (String, String)>) {
    for (name, tiers) in hosts {
        let key = consul.inventory_key(&format!("events/host/{name}/start"));
        let value = consul
            .json(&key)
            .await
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(value["tiers"], tiers, "{key}");
    }
}

#[tokio::test]
async fn each_type_lands_at_its_seed_key_with_its_seed_value() {
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    let daemon = Daemon::start(&daemon_config(spool.root(), &consul, &[]));
    // 2024-05-01T13:00:00Z, the drop time the golden files expect where a record has none.
    let drop_time = UNIX_EPOCH + Duration::from_secs(1_714_568_400);
    for kind in TYPES {
        let content = fs::read_to_string(fixture(&format!("records/{kind}.json"))).unwrap();
        drop_at(&spool, &format!("{kind}.json"), &content, drop_time);
    }
    wait_drained(&spool).await;
    for kind in TYPES {
        let golden = golden(kind);
        let key = consul.seed_key(&golden);
        let stored = consul
            .json(&key)
            .await
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(stored, golden["value"], "{kind}");
    }
    // host_start and host_workflow_end had no start_at / end_at: the file's mtime, not
    // the delivery time, is stored (the golden files say 13:00:00 on 2024-05-01).
    assert!(spool.list("failed").is_empty());
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn three_drops_for_one_key_the_newest_drop_wins() {
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    let t0 = SystemTime::now() - Duration::from_secs(60);
    // Names sort opposite to the drop times.
    for (name, tiers, offset) in [
        ("c.json", "first", 0),
        ("b.json", "second", 1),
        ("a.json", "third", 2),
    ] {
        drop_at(
            &spool,
            name,
            &host("web01", tiers),
            t0 + Duration::from_secs(offset),
        );
    }
    let daemon = Daemon::start(&daemon_config(spool.root(), &consul, &[]));
    wait_drained(&spool).await;
    expect_hosts(&consul, [("web01".into(), "third".into())]).await;
    // And while it runs, one window at a time.
    for (name, tiers, offset) in [
        ("z.json", "fourth", 3),
        ("y.json", "fifth", 4),
        ("x.json", "sixth", 5),
    ] {
        drop_at(
            &spool,
            name,
            &host("web01", tiers),
            t0 + Duration::from_secs(offset),
        );
    }
    wait_drained(&spool).await;
    expect_hosts(&consul, [("web01".into(), "sixth".into())]).await;
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn consul_down_at_start_then_up_then_down_again_mid_drain() {
    let consul = TestConsul::start().await;
    let standin = standin_or_skip!(consul);
    standin.stop().await;
    let spool = TestSpool::new();
    let daemon = Daemon::start(&daemon_config(spool.root(), &consul, &[]));
    let mut expected = Vec::new();
    for i in 0..20 {
        let name = format!("h{i:03}");
        spool.drop_as(&format!("{name}.json"), &host(&name, "one"));
        expected.push((name, "one".to_owned()));
    }
    daemon.wait_log("Consul is unavailable", DEADLINE).await;
    assert_eq!(spool.pending(), 20, "files wait untouched");
    assert!(spool.list("failed").is_empty(), "nothing quarantined");

    standin.resume().await.unwrap();
    wait_drained(&spool).await;
    expect_hosts(&consul, expected.clone()).await;
    daemon.wait_log("available again", DEADLINE).await;

    // Down again in the middle of a larger drain.
    let before = standin.counts().writes;
    for i in 0..600 {
        let name = format!("m{i:03}");
        spool.drop_as(&format!("{name}.json"), &host(&name, "two"));
        expected.push((name, "two".to_owned()));
    }
    wait_until("part of the drain", DEADLINE, || {
        standin.counts().writes > before
    })
    .await;
    standin.stop().await;
    wait_until("a second outage episode", DEADLINE, || {
        daemon.lines_with("Consul is unavailable").len() == 2
    })
    .await;
    assert!(spool.list("failed").is_empty(), "nothing quarantined");
    standin.resume().await.unwrap();
    wait_drained(&spool).await;
    expect_hosts(&consul, expected).await;
    assert_eq!(consul.count().await, 620);
    assert_eq!(
        daemon.lines_with("available again").len(),
        2,
        "one recovery line per outage"
    );
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn every_fault_is_ridden_out() {
    let consul = TestConsul::start().await;
    let standin = standin_or_skip!(consul);
    let spool = TestSpool::new();
    let config = daemon_config(
        spool.root(),
        &consul,
        &[("consul", "request_timeout", "500ms".into())],
    );
    let daemon = Daemon::start(&config);
    let mut expected = Vec::new();
    let faults = [
        Fault::NoLeader,
        Fault::RateLimited,
        Fault::Unavailable,
        Fault::LeadershipLost,
        Fault::CutConnection,
        Fault::Slow(Duration::from_millis(900)),
    ];
    for (round, fault) in faults.into_iter().enumerate() {
        standin.set_fault(fault, Some(4));
        for i in 0..40 {
            let name = format!("f{round}-{i:02}");
            spool.drop_as(&format!("{name}.json"), &host(&name, &format!("{fault:?}")));
            expected.push((name, format!("{fault:?}")));
        }
        wait_drained(&spool).await;
    }
    standin.clear_fault();
    expect_hosts(&consul, expected).await;
    assert!(spool.list("failed").is_empty());
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_wrong_token_holds_everything_until_fixed_and_a_denied_key_holds_only_its_file() {
    let consul = TestConsul::start_with(Options {
        token: Some("right-tok-8d2e".into()),
        ..Options::default()
    })
    .await;
    let standin = standin_or_skip!(consul);
    let spool = TestSpool::new();
    let token_file = spool.root().join("token");
    fs::write(&token_file, "wrong-tok-3f9a1c\n").unwrap();
    let config = daemon_config(
        spool.root(),
        &consul,
        &[("consul", "token_file", token_file.to_str().unwrap().into())],
    );
    let daemon = Daemon::start(&config);
    for i in 0..5 {
        spool.drop_as(&format!("t{i}.json"), &host(&format!("t{i}"), "x"));
    }
    daemon.wait_log("Consul is unavailable", DEADLINE).await;
    let warn = &daemon.lines_with("Consul is unavailable")[0];
    assert!(
        warn["error"].as_str().unwrap().contains("ACL not found"),
        "{warn}"
    );
    assert_eq!(spool.pending(), 5, "everything held");
    assert!(spool.list("failed").is_empty(), "nothing quarantined");
    assert_eq!(consul.count().await, 0);

    fs::write(&token_file, "right-tok-8d2e\n").unwrap();
    daemon.signal("HUP");
    wait_drained(&spool).await;
    assert_eq!(consul.count().await, 5);

    // A key this token may not write: only that file waits.
    standin.deny_writes(&consul.inventory_key("hosts/secret/"));
    let vra = |source: &str| {
        json!({"type": "vra", "uuid": "u", "hostname": "db01", "source": source}).to_string()
    };
    spool.drop_as("denied.json", &vra("secret"));
    spool.drop_as("open1.json", &vra("open1"));
    spool.drop_as("open2.json", &vra("open2"));
    wait_until("the open files", DEADLINE, || spool.pending() == 1).await;
    assert_eq!(spool.list("new"), ["denied.json"]);
    daemon.wait_log("holding denied.json", DEADLINE).await;
    // Retried at the back-off pace, and said once.
    let tries = standin.counts().txns;
    wait_until("three more tries", DEADLINE, || {
        standin.counts().txns >= tries + 3
    })
    .await;
    assert_eq!(spool.list("new"), ["denied.json"]);
    assert_eq!(
        daemon.lines_with("holding denied.json").len(),
        1,
        "one ERROR per held file"
    );
    let held = &daemon.lines_with("holding denied.json")[0];
    assert_eq!(held["key"], consul.inventory_key("hosts/secret/db01"));
    assert_eq!(held["level"], "ERROR");
    assert!(spool.list("failed").is_empty());

    standin.allow_all_writes();
    daemon.signal("HUP");
    wait_drained(&spool).await;
    assert!(
        consul
            .json(&consul.inventory_key("hosts/secret/db01"))
            .await
            .is_some()
    );

    let output = daemon.output();
    assert!(daemon.stop().await.success());
    for secret in ["wrong-tok-3f9a1c", "right-tok-8d2e"] {
        assert!(
            !output.contains(secret),
            "the token leaked into the log:\n{output}"
        );
    }
}

#[tokio::test]
async fn kill_9_at_random_moments_loses_nothing() {
    let consul = TestConsul::start().await;
    let standin = standin_or_skip!(consul);
    let spool = TestSpool::new();
    let config = daemon_config(spool.root(), &consul, &[]);
    let t0 = SystemTime::now() - Duration::from_secs(3600);
    let mut newest = std::collections::BTreeMap::new();
    let mut n = 0u64;
    for round in 0..3 {
        // 300 keys, some written several times: the newest drop must win.
        for i in 0..500u64 {
            let name = format!("k{:03}", i % 300);
            let tiers = format!("round{round}-{i}");
            drop_at(
                &spool,
                &format!("{n:06}.json"),
                &host(&name, &tiers),
                t0 + Duration::from_millis(n),
            );
            newest.insert(name, tiers);
            n += 1;
        }
        let daemon = Daemon::start(&config);
        let before = standin.counts().writes;
        let target = before + fastrand::u64(1..400);
        wait_until("some deliveries", DEADLINE, || {
            standin.counts().writes >= target || spool.pending() == 0
        })
        .await;
        daemon.kill9().await;
    }
    let daemon = Daemon::start(&config);
    wait_drained(&spool).await;
    assert!(spool.list("failed").is_empty(), "nothing quarantined");
    expect_hosts(&consul, newest).await;
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn bad_inputs_are_quarantined_and_the_rest_flows() {
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    let long = "x".repeat(5000);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("invalid.json", b"{not json}".to_vec()),
        (
            "truncated.json",
            br#"{"type": "host_start", "hostname": "we"#.to_vec(),
        ),
        ("empty.json", Vec::new()),
        (
            "wrong-type.json",
            br#"{"type": "vra", "uuid": "u", "hostname": "h", "source": "s", "cpu": "4"}"#.to_vec(),
        ),
        (
            "missing.json",
            br#"{"type": "host_end", "hostname": "h"}"#.to_vec(),
        ),
        (
            "unknown-type.json",
            br#"{"type": "host_begin", "hostname": "h"}"#.to_vec(),
        ),
        ("slash.json", host("a/b", "x").into_bytes()),
        ("dot.json", host(".", "x").into_bytes()),
        ("dotdot.json", host("..", "x").into_bytes()),
        ("newline.json", host("a\nb", "x").into_bytes()),
        ("nul.json", host("a\u{0}b", "x").into_bytes()),
        ("spaces.json", host("  web", "x").into_bytes()),
        ("long.json", host(&long, "x").into_bytes()),
        ("deep.json", deep.into_bytes()),
        (
            "garbage.json",
            format!("{} trailing", host("g", "x")).into_bytes(),
        ),
        (
            "not-utf8.json",
            b"{\"type\": \"host_start\", \"hostname\": \"\xff\xfe\"}".to_vec(),
        ),
        ("huge.json", vec![b' '; 20 * 1024 * 1024]),
        (
            "bulk.json",
            json!([
                {"type": "app", "uuid": "u", "hostname": "ok", "source": "s"},
                {"type": "app", "uuid": "u", "hostname": "bad", "source": 5},
            ])
            .to_string()
            .into_bytes(),
        ),
    ];
    for (name, bytes) in &bad {
        let tmp = spool.root().join("tmp").join(name);
        fs::write(&tmp, bytes).unwrap();
        fs::rename(&tmp, spool.root().join("new").join(name)).unwrap();
    }
    // Left alone: a FIFO, a symlink, a folder, a dotfile and another suffix.
    let new = spool.root().join("new");
    let fifo = std::ffi::CString::new(new.join("fifo.json").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let outside = spool.root().join("outside.json");
    fs::write(&outside, host("via-link", "x")).unwrap();
    std::os::unix::fs::symlink(&outside, new.join("link.json")).unwrap();
    fs::create_dir(new.join("x.json")).unwrap();
    fs::write(new.join(".hidden.json"), host("hidden", "x")).unwrap();
    fs::write(new.join("notes.txt"), host("notes", "x")).unwrap();
    for i in 0..3 {
        spool.drop_as(&format!("good{i}.json"), &host(&format!("good{i}"), "fine"));
    }

    let daemon = Daemon::start(&daemon_config(spool.root(), &consul, &[]));
    let failed_count = bad.len() * 2;
    wait_until("every bad file quarantined", DEADLINE, || {
        spool.list("failed").len() == failed_count
    })
    .await;
    for (name, _) in &bad {
        let reason: Value = serde_json::from_slice(
            &fs::read(spool.root().join("failed").join(format!("{name}.reason"))).unwrap(),
        )
        .unwrap();
        assert!(
            !reason["error"].as_str().unwrap().is_empty(),
            "{name}: {reason}"
        );
        assert!(reason["quarantined_at"].is_string(), "{name}");
        let logged = daemon.lines_with(&format!("quarantined {name}:"));
        assert_eq!(logged.len(), 1, "{name}: one log line");
        assert_eq!(logged[0]["file"], *name);
    }
    let reason = |name: &str| -> Value {
        serde_json::from_slice(
            &fs::read(spool.root().join("failed").join(format!("{name}.reason"))).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(reason("bulk.json")["record"], 1);
    assert_eq!(reason("bulk.json")["field"], "source");
    assert_eq!(reason("slash.json")["field"], "hostname");
    assert!(
        reason("huge.json")["error"]
            .as_str()
            .unwrap()
            .contains("max_file_bytes")
    );
    assert_eq!(reason("invalid.json")["record"], Value::Null);

    wait_drained(&spool).await;
    let mut left: Vec<_> = spool.list("new");
    left.sort();
    assert_eq!(
        left,
        [
            ".hidden.json",
            "fifo.json",
            "link.json",
            "notes.txt",
            "x.json"
        ]
    );
    expect_hosts(
        &consul,
        (0..3).map(|i| (format!("good{i}"), "fine".to_owned())),
    )
    .await;
    assert!(
        consul
            .json(&consul.inventory_key("app/s/ok"))
            .await
            .is_none(),
        "a bad bulk writes nothing"
    );
    // Still running: a file dropped now is delivered.
    spool.drop_as("later.json", &host("later", "fine"));
    wait_until("the later file", DEADLINE, || {
        !spool.list("new").contains(&"later.json".to_owned())
    })
    .await;
    expect_hosts(&consul, [("later".to_owned(), "fine".to_owned())]).await;
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_second_daemon_on_the_same_spool_exits_at_once() {
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    let config = daemon_config(spool.root(), &consul, &[]);
    let first = Daemon::start(&config);
    first.wait_log("cndspool started", DEADLINE).await;
    let mut second = Daemon::start(&config);
    let status = second.wait_exit(DEADLINE).await;
    assert_eq!(status.code(), Some(73));
    let output = second.output();
    assert!(
        output.contains("another cndspool daemon is running") && output.contains(".lock"),
        "{output}"
    );
    assert!(first.stop().await.success());
}

#[tokio::test]
async fn a_spool_it_cannot_write_stops_it_before_work_naming_the_folder() {
    if fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap()
        != 0
    {
        eprintln!("skipped: needs root to run the daemon as another user");
        return;
    }
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    fs::set_permissions(spool.root(), fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(spool.root().join("new"), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let config_path = dir.path().join("c.toml");
    fs::write(
        &config_path,
        toml::to_string(&daemon_config(spool.root(), &consul, &[])).unwrap(),
    )
    .unwrap();
    let (_copy, mut cmd) = as_nobody(&["run", "--config", config_path.to_str().unwrap()]);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let new = spool.root().join("new");
    assert!(
        stderr.contains(&format!("cannot create files in {}", new.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("cndspool started"), "{stderr}");
}

#[tokio::test]
async fn an_invalid_reload_keeps_the_old_configuration_and_summaries_are_logged() {
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("cndspool.toml");
    let config = daemon_config(
        spool.root(),
        &consul,
        &[("log", "stats_interval", "200ms".into())],
    );
    fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let mut daemon = Daemon::start_args(&["run", "--config", config_path.to_str().unwrap()]);
    daemon.wait_log("cndspool started", DEADLINE).await;
    fs::write(&config_path, "[delivery]\nmax_batch_opps = 3\n").unwrap();
    daemon.signal("HUP");
    daemon.wait_log("reload refused", DEADLINE).await;
    let refused = &daemon.lines_with("reload refused")[0];
    assert_eq!(refused["level"], "ERROR");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("max_batch_opps"),
        "{refused}"
    );
    spool.drop_as("after.json", &host("after-reload", "kept"));
    wait_drained(&spool).await;
    expect_hosts(&consul, [("after-reload".to_owned(), "kept".to_owned())]).await;
    daemon.wait_log("summary:", DEADLINE).await;
    let summary = daemon.lines_with("summary:").pop().unwrap();
    for field in [
        "delivered",
        "quarantined",
        "queued",
        "oldest_age_s",
        "ignored",
        "consul",
    ] {
        assert!(summary.get(field).is_some(), "{field} missing: {summary}");
    }
    daemon.signal("TERM");
    assert!(daemon.wait_exit(DEADLINE).await.success());
}

#[tokio::test]
async fn a_large_backlog_pauses_the_watch_and_nothing_dropped_meanwhile_is_missed() {
    let consul = TestConsul::start().await;
    let standin = standin_or_skip!(consul);
    let spool = TestSpool::new();
    // More than the 2048 queued files above which the watch is paused.
    drop_hosts(&spool, "b", 2500, "backlog");
    // No periodic rescan within the test: only the watch, and the rescan on resuming it,
    // can find the files dropped below.
    let config = daemon_config(
        spool.root(),
        &consul,
        &[("spool", "rescan_interval", "1h".into())],
    );
    let daemon = Daemon::start(&config);
    wait_until("the drain to start", DEADLINE, || {
        standin.counts().writes > 0
    })
    .await;
    // Dropped while the watch is paused: found by the rescan when it resumes.
    spool.drop_as("during.json", &host("during", "meanwhile"));
    wait_drained(&spool).await;
    expect_hosts(&consul, [("during".to_owned(), "meanwhile".to_owned())]).await;
    assert_eq!(consul.count().await, 2501);
    assert!(spool.list("failed").is_empty());
    // Watching again: a file dropped now is seen without a rescan.
    spool.drop_as("after.json", &host("after", "watched"));
    wait_drained(&spool).await;
    expect_hosts(&consul, [("after".to_owned(), "watched".to_owned())]).await;
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_transaction_refused_as_too_large_is_split() {
    let consul = TestConsul::start().await;
    let standin = standin_or_skip!(consul);
    // An older server's lower cap: every 64-operation transaction gets 413.
    standin.set_max_txn_ops(32);
    let spool = TestSpool::new();
    let expected = drop_hosts(&spool, "s", 200, "split");
    let daemon = Daemon::start(&daemon_config(spool.root(), &consul, &[]));
    wait_drained(&spool).await;
    expect_hosts(&consul, expected).await;
    assert!(spool.list("failed").is_empty(), "nothing quarantined");
    let counts = standin.counts();
    assert!(counts.txns >= 200 / 32, "{counts:?}");
    assert!(
        daemon.lines_with("Consul is unavailable").is_empty(),
        "a 413 is not an outage"
    );
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_key_consul_1_21_5_refuses_is_bisected_out_and_quarantined() {
    let options = Options {
        key_regex_500: true,
        ..Options::default()
    };
    let consul = TestConsul::start_with(options).await;
    let _ = standin_or_skip!(consul);
    let spool = TestSpool::new();
    let t0 = SystemTime::now() - Duration::from_secs(60);
    // A space is fine by cndspool's rules and by Consul but 1.21.5: it answered 500.
    let names = ["a01", "a02", "web 01", "a03", "a04", "a05"];
    for (i, name) in names.iter().enumerate() {
        drop_at(
            &spool,
            &format!("r{i}.json"),
            &host(name, "ok"),
            t0 + Duration::from_secs(i as u64),
        );
    }
    let daemon = Daemon::start(&daemon_config(spool.root(), &consul, &[]));
    wait_drained(&spool).await;
    expect_hosts(
        &consul,
        ["a01", "a02", "a03", "a04", "a05"].map(|n| (n.to_owned(), "ok".to_owned())),
    )
    .await;
    assert_eq!(spool.list("failed"), ["r2.json", "r2.json.reason"]);
    let reason: Value =
        serde_json::from_slice(&fs::read(spool.root().join("failed/r2.json.reason")).unwrap())
            .unwrap();
    assert!(
        reason["error"]
            .as_str()
            .unwrap()
            .contains("invalid key name"),
        "{reason}"
    );
    assert_eq!(
        reason["key"],
        consul.inventory_key("events/host/web 01/start")
    );
    assert!(
        daemon.lines_with("Consul is unavailable").is_empty(),
        "a refused key is not an outage"
    );
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_reload_changes_the_log_level() {
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("cndspool.toml");
    let write = |level: &str| {
        let config = daemon_config(spool.root(), &consul, &[("log", "level", level.into())]);
        fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    };
    write("warn");
    let mut daemon = Daemon::start_args(&["run", "--config", config_path.to_str().unwrap()]);
    spool.drop_as("quiet.json", &host("quiet", "x"));
    wait_drained(&spool).await;
    assert!(
        daemon.lines().is_empty(),
        "nothing below WARN: {:?}",
        daemon.lines()
    );

    write("debug");
    daemon.signal("HUP");
    daemon.wait_log("configuration reloaded", DEADLINE).await;
    spool.drop_as("loud.json", &host("loud", "x"));
    wait_drained(&spool).await;
    daemon.wait_log("delivered", DEADLINE).await;
    let delivered = &daemon.lines_with("delivered")[0];
    assert_eq!(
        (delivered["level"].as_str(), delivered["file"].as_str()),
        (Some("DEBUG"), Some("loud.json"))
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(DEADLINE).await.success());
}

#[tokio::test]
async fn a_backlog_of_large_bulk_files_is_read_a_window_at_a_time() {
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    // 24 inventory syncs of about 4 MiB: 20 records of about 200 KB each (too large for
    // a transaction body of 256 KiB once base64-encoded: each goes as a plain PUT).
    let blob = "x".repeat(200_000);
    let t0 = SystemTime::now() - Duration::from_secs(60);
    for f in 0..24u64 {
        let records: Vec<Value> = (0..20u64)
            .map(|r| {
                // The newest file rewrites the oldest file's first key: it must win,
                // however the files fall into windows.
                let (hostname, os) = match (f, r) {
                    (23, 0) => ("big00-00".to_owned(), "newest"),
                    _ => (format!("big{f:02}-{r:02}"), "linux"),
                };
                json!({"type": "vra", "uuid": "u", "hostname": hostname, "source": "bulk",
                       "os_type": os, "note": blob})
            })
            .collect();
        drop_at(
            &spool,
            &format!("bulk{f:02}.json"),
            &Value::Array(records).to_string(),
            t0 + Duration::from_secs(f),
        );
    }
    let daemon = Daemon::start(&daemon_config(spool.root(), &consul, &[]));
    wait_drained(&spool).await;
    let status = fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(consul.count().await, 479);
    let rewritten = consul
        .json(&consul.inventory_key("hosts/bulk/big00-00"))
        .await
        .unwrap();
    assert_eq!(rewritten["os_type"], "newest");
    assert!(spool.list("failed").is_empty());
    // All 96 MiB at once (and their entries) would need several times this.
    assert!(
        peak_kib < 128 * 1024,
        "peak RSS {peak_kib} KiB: files are not read a window at a time"
    );
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn as_a_group_member_it_quarantines_and_deletes_files_it_does_not_own() {
    use std::os::unix::fs::{MetadataExt, chown};
    if fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("skipped: needs root to set up files owned by another user");
        return;
    }
    // Production's shape: a 2770 spool of the daemon's group, producers' files 0640 owned
    // by the producer. Here the daemon runs as nobody in group nogroup (65534), the files
    // belong to root. With fs.protected_hardlinks, linking a file one may not write fails.
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    for dir in [
        spool.root().to_owned(),
        spool.root().join("tmp"),
        spool.root().join("new"),
        spool.root().join("failed"),
    ] {
        chown(&dir, Some(0), Some(65534)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o2770)).unwrap();
    }
    for (name, content) in [
        ("good.json", host("owned-by-root", "x")),
        ("bad.json", "{not json".to_owned()),
    ] {
        let path = spool.drop_as(name, &content);
        chown(&path, Some(0), Some(65534)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        fs::File::options()
            .read(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let config_path = dir.path().join("c.toml");
    fs::write(
        &config_path,
        toml::to_string(&daemon_config(spool.root(), &consul, &[])).unwrap(),
    )
    .unwrap();
    fs::set_permissions(&config_path, fs::Permissions::from_mode(0o644)).unwrap();
    let (_copy, mut cmd) = as_nobody(&["run", "--config", config_path.to_str().unwrap()]);
    let log = dir.path().join("log");
    let mut child = cmd.stderr(fs::File::create(&log).unwrap()).spawn().unwrap();
    // Not wait_until: the child must be ended before any assertion can fail.
    let deadline = std::time::Instant::now() + DEADLINE;
    while spool.pending() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(spool.pending(), 0, "{}", fs::read_to_string(&log).unwrap());
    assert_eq!(
        spool.list("failed"),
        ["bad.json", "bad.json.reason"],
        "{}",
        fs::read_to_string(&log).unwrap()
    );
    let moved = fs::metadata(spool.root().join("failed/bad.json")).unwrap();
    assert_eq!(
        (moved.uid(), moved.mode() & 0o777),
        (0, 0o640),
        "moved as it was"
    );
    expect_hosts(&consul, [("owned-by-root".to_owned(), "x".to_owned())]).await;
}
