//! What operators run: `queue`, `failed`, `requeue`, and `demo`.

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Daemon, TestConsul, TestSpool, daemon_config, expect_status, run, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn demo_once_tours_every_kind_of_key() {
    let out = run(&["demo", "--once"]);
    let text = expect_status(&out, 0);
    for key in [
        "iaas_inventory/events/deployment/dep-0042/start",
        "iaas_inventory/events/deployment/dep-0042/end",
        "iaas_inventory/events/host/web01/start",
        "iaas_inventory/events/host/web01/end",
        "iaas_inventory/events/workflow/wf-77/start",
        "iaas_inventory/events/workflow/wf-77/end",
        "iaas_inventory/hosts/vra8/web01",
        "iaas_inventory/app/webshop/web01",
    ] {
        assert!(
            text.lines().any(|l| l == key),
            "{key} missing from:\n{text}"
        );
    }
    assert!(text.contains("not Consul"), "{text}");
}

#[test]
fn queue_counts_files_records_and_types() {
    let spool = TestSpool::new();
    spool.drop_as("a.json", r#"{"type": "host_start", "hostname": "a"}"#);
    spool.drop_as(
        "b.json",
        r#"[{"type": "vra", "uuid": "u"}, {"type": "vra", "uuid": "v"}]"#,
    );
    spool.drop_as("c.json", "{half");
    fs::write(spool.root().join("new/.hidden.json"), "{}").unwrap();
    let out = run(&["queue", "--spool", spool.root_str(), "--json"]);
    let report: Value = serde_json::from_str(&expect_status(&out, 0)).unwrap();
    assert_eq!(report["count"], 3);
    assert_eq!(report["by_type"]["host_start"], 1);
    assert_eq!(report["by_type"]["vra"], 2);
    assert_eq!(report["unreadable"], 1);
    assert_eq!(report["ignored"], 1);
    assert!(report["oldest_age_s"].is_u64());
    let text = expect_status(&run(&["queue", "--spool", spool.root_str()]), 0);
    assert!(
        text.contains("3 files waiting") && text.contains("vra"),
        "{text}"
    );
    let missing = run(&["queue", "--spool", "/nonexistent/spool"]);
    expect_status(&missing, 66);
}

#[tokio::test]
async fn failed_then_fix_then_check_then_requeue_delivers() {
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    let daemon = Daemon::start(&daemon_config(spool.root(), &consul, &[]));
    spool.drop_as(
        "broken.json",
        r#"{"type": "vra", "uuid": "u-9", "hostname": "db09", "source": "vra8", "cpu": "8"}"#,
    );
    spool.drop_as("other.json", r#"{"type": "host_start"}"#);
    wait_until("quarantine", DEADLINE, || spool.list("failed").len() == 4).await;

    let out = run(&["failed", "--spool", spool.root_str(), "--json"]);
    let failed: Value = serde_json::from_str(&expect_status(&out, 0)).unwrap();
    let broken = failed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == "broken.json")
        .unwrap();
    assert_eq!(broken["reason"]["field"], "cpu");
    assert_eq!(broken["reason"]["record"], 0);
    let text = expect_status(&run(&["failed", "--spool", spool.root_str()]), 0);
    assert!(
        text.contains("broken.json")
            && text.contains("field `cpu`")
            && text.contains("2 quarantined files"),
        "{text}"
    );

    // The operator fixes the file where it lies, checks it, and requeues it.
    let path = spool.root().join("failed/broken.json");
    fs::write(
        &path,
        r#"{"type": "vra", "uuid": "u-9", "hostname": "db09", "source": "vra8", "cpu": 8}"#,
    )
    .unwrap();
    let check = expect_status(&run(&["check", path.to_str().unwrap()]), 0);
    assert!(check.contains("hosts/vra8/db09"), "{check}");
    let out = run(&["requeue", "--spool", spool.root_str(), "broken.json"]);
    assert!(expect_status(&out, 0).contains("requeued broken.json"));
    wait_until("redelivery", DEADLINE, || spool.pending() == 0).await;
    let key = consul.inventory_key("hosts/vra8/db09");
    let stored = consul
        .json(&key)
        .await
        .unwrap_or_else(|| panic!("{key} missing"));
    assert_eq!(stored["cpu"], 8);
    assert_eq!(spool.list("failed"), ["other.json", "other.json.reason"]);

    expect_status(
        &run(&["requeue", "--spool", spool.root_str(), "nope.json"]),
        66,
    );
    let out = run(&["requeue", "--spool", spool.root_str(), "--all", "--json"]);
    let moved: Value = serde_json::from_str(&expect_status(&out, 0)).unwrap();
    assert_eq!(moved[0]["file"], "other.json");
    // Still invalid: it comes back to failed/ with a fresh reason.
    wait_until("re-quarantine", DEADLINE, || {
        spool.list("failed").len() == 2
    })
    .await;
    assert!(daemon.stop().await.success());
}
