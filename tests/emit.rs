//! `cndspool emit`: validated, atomic drops.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use serde_json::{Value, json};

use crate::util::{TestSpool, as_nobody, cndspool, describe, expect_status, run};

#[test]
fn emit_json_leaves_exactly_one_0640_file_in_new() {
    let spool = TestSpool::new();
    let record = r#"{"type": "host_start", "hostname": "web01"}"#;
    let out = run(&["emit", "--spool", spool.root_str(), "--json", record]);
    let path = expect_status(&out, 0);
    let path = path.trim();
    assert_eq!(spool.list("tmp"), Vec::<String>::new());
    let new = spool.list("new");
    assert_eq!(new.len(), 1);
    assert!(
        path.ends_with(&new[0]) && new[0].ends_with(".json"),
        "{path}"
    );
    let meta = fs::metadata(path).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    assert_eq!(fs::read_to_string(path).unwrap(), record);
}

#[test]
fn emit_set_types_values_from_the_schema() {
    let spool = TestSpool::new();
    let out = run(&[
        "emit",
        "--spool",
        spool.root_str(),
        "vra",
        "--set",
        "uuid=u-1",
        "--set",
        "hostname=web01",
        "--set",
        "source=vra8",
        "--set",
        "cpu=4",
        "--set",
        "power_state=true",
        "--set",
        "tags=a,b",
    ]);
    let path = expect_status(&out, 0);
    let written: Value = serde_json::from_slice(&fs::read(path.trim()).unwrap()).unwrap();
    assert_eq!(
        written,
        json!({"type": "vra", "uuid": "u-1", "hostname": "web01", "source": "vra8", "cpu": 4,
               "power_state": true, "tags": ["a", "b"]})
    );
    let check = expect_status(&run(&["check", path.trim()]), 0);
    assert!(check.contains("iaas_inventory/hosts/vra8/web01"), "{check}");
}

#[test]
fn emit_file_and_bulk_arrays() {
    let spool = TestSpool::new();
    let source = spool.root().join("bulk.json");
    fs::write(
        &source,
        json!([
            {"type": "app", "uuid": "u1", "hostname": "a", "source": "cmdb"},
            {"type": "app", "uuid": "u2", "hostname": "b", "source": "cmdb"},
        ])
        .to_string(),
    )
    .unwrap();
    let out = run(&[
        "emit",
        "--spool",
        spool.root_str(),
        "--file",
        source.to_str().unwrap(),
    ]);
    expect_status(&out, 0);
    assert_eq!(spool.list("new").len(), 1);
}

#[test]
fn an_invalid_record_drops_nothing_and_exits_65() {
    let spool = TestSpool::new();
    for args in [
        vec![
            "--json",
            r#"{"type": "vra", "uuid": "u", "hostname": "h", "source": "s", "cpu": "four"}"#,
        ],
        vec![
            "vra",
            "--set",
            "uuid=u",
            "--set",
            "hostname=h",
            "--set",
            "source=s",
            "--set",
            "cpu=four",
        ],
        vec!["host_start", "--set", "hostname=../etc"],
        vec!["--json", "{not json"],
    ] {
        let mut full = vec!["emit", "--spool", spool.root_str()];
        full.extend(args);
        let out = run(&full);
        expect_status(&out, 65);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("nothing dropped"), "{}", describe(&out));
    }
    let out = run(&[
        "emit",
        "--spool",
        spool.root_str(),
        "vra",
        "--set",
        "hostname=h",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("field `uuid`"),
        "{}",
        describe(&out)
    );
    assert_eq!(spool.list("new"), Vec::<String>::new());
    assert_eq!(spool.list("tmp"), Vec::<String>::new());
}

#[test]
fn usage_errors_exit_64() {
    let spool = TestSpool::new();
    expect_status(&run(&["emit", "--spool", spool.root_str()]), 64);
    expect_status(
        &run(&["emit", "--spool", spool.root_str(), "vra", "--set", "cpu"]),
        64,
    );
    expect_status(&run(&["frobnicate"]), 64);
}

#[test]
fn a_missing_spool_exits_73_naming_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-spool");
    let out = run(&[
        "emit",
        "--spool",
        missing.to_str().unwrap(),
        "--json",
        r#"{"type": "host_start", "hostname": "h"}"#,
    ]);
    expect_status(&out, 73);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(missing.join("tmp").to_str().unwrap()),
        "{stderr}"
    );
    assert!(stderr.contains("create the spool"), "{stderr}");
}

#[test]
fn an_unwritable_spool_exits_77_naming_the_folder() {
    let spool = TestSpool::new();
    fs::set_permissions(spool.root(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(spool.root().join("tmp"), fs::Permissions::from_mode(0o555)).unwrap();
    let args = [
        "emit",
        "--spool",
        spool.root_str(),
        "--json",
        r#"{"type": "host_start", "hostname": "h"}"#,
    ];
    // Root ignores folder modes: drop privileges to `nobody` for this one run.
    let (_copy, mut cmd) = if fs::metadata("/proc/self").unwrap().uid() == 0 {
        as_nobody(&args)
    } else {
        let mut cmd = cndspool();
        cmd.args(args);
        (tempfile::tempdir().unwrap(), cmd)
    };
    let out = cmd.output().unwrap();
    expect_status(&out, 77);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("permission denied") && stderr.contains("/tmp"),
        "{stderr}"
    );
    assert_eq!(spool.list("new"), Vec::<String>::new());
}
