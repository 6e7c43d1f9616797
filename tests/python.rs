//! The Python producer (`clients/python/cndspool.py`) against the Rust schema: every
//! method's record lands at the seed key with the seed value, so the two cannot drift.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{Daemon, TYPES, TestConsul, TestSpool, daemon_config, golden, wait_until};

fn clients_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python")
}

#[test]
fn python_unit_tests_pass() {
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(clients_dir())
        .args(["-p", "test_*.py"])
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("OK"), "{stderr}");
}

#[tokio::test]
async fn every_python_method_lands_at_the_seed_key_with_the_seed_value() {
    let consul = TestConsul::start().await;
    let spool = TestSpool::new();
    let daemon = Daemon::start(&daemon_config(spool.root(), &consul, &[]));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records");
    // Each fixture's fields, passed as keyword arguments to the method named by its type.
    let script = format!(
        r#"
import json, sys
sys.path.insert(0, {clients:?})
from cndspool import CndEvent, CndInventory
event, inv = CndEvent(spool_dir={spool:?}), CndInventory(spool_dir={spool:?})
for kind in {types:?}:
    with open({fixtures:?} + "/" + kind + ".json") as f:
        fields = json.load(f)
    assert fields.pop("type") == kind
    target = inv if kind in ("vra", "app") else event
    print(getattr(target, kind)(**fields))
"#,
        clients = clients_dir().display().to_string(),
        spool = spool.root_str(),
        types = TYPES,
        fixtures = fixtures.display().to_string(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .env("TZ", crate::util::TZ)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 8);
    wait_until("the spool to drain", Duration::from_secs(30), || {
        spool.pending() == 0
    })
    .await;
    assert!(spool.list("failed").is_empty());

    for kind in TYPES {
        let golden = golden(kind);
        let key = consul.seed_key(&golden);
        let mut stored = consul
            .json(&key)
            .await
            .unwrap_or_else(|| panic!("{key} missing"));
        let mut expected = golden["value"].clone();
        // Where the fixture gives no start_at / end_at the drop time fills it: here the
        // Python drop's, not the golden file's.
        for field in ["start_at", "end_at"] {
            let given = fs::read_to_string(fixtures.join(format!("{kind}.json")))
                .unwrap()
                .contains(field);
            if !given && let Some(filled) = stored.as_object_mut().unwrap().remove(field) {
                assert!(
                    chrono::DateTime::parse_from_rfc3339(filled.as_str().unwrap()).is_ok(),
                    "{kind}"
                );
                expected.as_object_mut().unwrap().remove(field);
            }
        }
        assert_eq!(stored, expected, "{kind}");
    }
    assert!(daemon.stop().await.success());
}
