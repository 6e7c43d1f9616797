//! `cndspool check`: golden keys and values per type, invalid files named.

use std::fs;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use crate::util::{TYPES, TestSpool, expect_status, fixture, golden, run};

/// 2024-05-01T13:00:00Z: the drop time the golden files expect where a record has none.
const DROP_TIME: u64 = 1_714_568_400;

/// Copies the record fixture of `kind` into the spool, with its mtime at [`DROP_TIME`].
fn dropped_copy(spool: &TestSpool, kind: &str) -> String {
    let target = spool.root().join("new").join(format!("{kind}.json"));
    fs::copy(fixture(&format!("records/{kind}.json")), &target).unwrap();
    let file = fs::File::options().write(true).open(&target).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_secs(DROP_TIME))
        .unwrap();
    target.to_str().unwrap().to_owned()
}

#[test]
fn each_type_maps_to_its_seed_key_and_golden_value() {
    let spool = TestSpool::new();
    let paths: Vec<String> = TYPES
        .iter()
        .map(|kind| dropped_copy(&spool, kind))
        .collect();
    let mut args = vec!["check", "--json"];
    args.extend(paths.iter().map(String::as_str));
    let report: Value = serde_json::from_str(&expect_status(&run(&args), 0)).unwrap();
    for (kind, file) in TYPES.iter().zip(report.as_array().unwrap()) {
        let golden = golden(kind);
        let records = file["records"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{kind}");
        assert_eq!(records[0]["key"], golden["key"], "{kind}");
        assert_eq!(records[0]["value"], golden["value"], "{kind}");
        // The other direction: the golden value is exactly what a record file with it
        // (plus its type) produces, so a golden file cannot carry extra or stale fields.
        let mut source: Value =
            serde_json::from_slice(&fs::read(fixture(&format!("records/{kind}.json"))).unwrap())
                .unwrap();
        let object = source.as_object_mut().unwrap();
        assert_eq!(object.remove("type").unwrap(), *kind);
        for field in object.keys() {
            // The workflow's `name` is stored as `workflow_name` (the seed's content name).
            let stored = if field == "name" {
                "workflow_name"
            } else {
                field
            };
            let in_value = golden["value"].get(stored).is_some()
                || golden["value"]["raw"].get(field).is_some();
            assert!(in_value, "{kind}: golden value lacks {field}");
        }
    }

    let text = expect_status(&run(&["check", &paths[6]]), 0);
    assert!(text.contains("valid, 1 record"), "{text}");
    assert!(text.contains("iaas_inventory/hosts/vra8/web01"), "{text}");
}

#[test]
fn invalid_files_exit_65_naming_record_and_field() {
    let cases = [
        (
            "wrong_type.json",
            "record 0, field `cpu`: expected a non-negative integer, found the string \"4\"",
        ),
        ("missing_field.json", "record 0, field `success`: missing"),
        (
            "key_traversal.json",
            "record 0, field `hostname`: \"web01/../../acl\" cannot be part of a Consul key: it contains `/`",
        ),
        ("truncated.json", "not valid JSON"),
        ("unknown_type.json", "unknown type \"hostess\""),
        (
            "bulk_one_bad.json",
            "record 1, field `source`: expected a string, found the number 5",
        ),
        ("empty.json", "the file is empty"),
    ];
    for (name, needle) in cases {
        let path = fixture(&format!("invalid/{name}"));
        let out = run(&["check", path.to_str().unwrap()]);
        let text = expect_status(&out, 65);
        assert!(
            text.contains("invalid") && text.contains(needle),
            "{name}: {text}"
        );
    }
    // One invalid file among valid ones: still 65, the valid one still reported.
    let good = fixture("records/app.json");
    let bad = fixture("invalid/wrong_type.json");
    let out = run(&[
        "check",
        "--json",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&expect_status(&out, 65)).unwrap();
    assert_eq!(report[0]["valid"], true);
    assert_eq!(report[1]["valid"], false);
    assert_eq!(report[1]["record"], 0);
    assert_eq!(report[1]["field"], "cpu");
}

#[test]
fn a_missing_file_exits_66() {
    let out = run(&["check", "/nonexistent/x.json"]);
    let text = expect_status(&out, 66);
    assert!(text.contains("/nonexistent/x.json: cannot read"), "{text}");
}

#[test]
fn a_missing_start_at_is_the_files_mtime() {
    let spool = TestSpool::new();
    let path = spool.root().join("new/x.json");
    fs::write(&path, r#"{"type": "host_start", "hostname": "web01"}"#).unwrap();
    let when = UNIX_EPOCH + Duration::from_secs(1_600_000_000) + Duration::from_micros(123_456);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(when)
        .unwrap();
    let out = run(&["check", "--json", path.to_str().unwrap()]);
    let report: Value = serde_json::from_str(&expect_status(&out, 0)).unwrap();
    assert_eq!(
        report[0]["records"][0]["value"]["start_at"],
        "2020-09-13T12:26:40.123456Z"
    );
}
