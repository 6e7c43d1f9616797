//! Configuration errors through the binary.

use std::fs;

use crate::util::{expect_status, fixture, run};

#[test]
fn a_bad_config_key_exits_78_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cndspool.toml");
    fs::write(&path, "[delivery]\nmax_batch_opps = 32\n").unwrap();
    let record = fixture("records/app.json");
    let out = run(&[
        "check",
        "--config",
        path.to_str().unwrap(),
        record.to_str().unwrap(),
    ]);
    expect_status(&out, 78);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("max_batch_opps") && stderr.contains("cndspool.toml"),
        "{stderr}"
    );
}

#[test]
fn the_sample_config_loads_and_custom_templates_apply() {
    let sample = fixture("../../config/cndspool.toml");
    let record = fixture("records/vra.json");
    let out = run(&[
        "check",
        "--config",
        sample.to_str().unwrap(),
        record.to_str().unwrap(),
    ]);
    assert!(expect_status(&out, 0).contains("iaas_inventory/hosts/vra8/web01"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    fs::write(
        &path,
        "[keys]\nprefix = \"inv/prod\"\nvra = \"{prefix}/vm/{hostname}\"\n",
    )
    .unwrap();
    let out = run(&[
        "check",
        "--config",
        path.to_str().unwrap(),
        record.to_str().unwrap(),
    ]);
    assert!(expect_status(&out, 0).contains("inv/prod/vm/web01"));

    fs::write(&path, "[keys]\nvra = \"{prefix}/vm/{hostnme}\"\n").unwrap();
    let out = run(&[
        "check",
        "--config",
        path.to_str().unwrap(),
        record.to_str().unwrap(),
    ]);
    expect_status(&out, 78);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[keys] vra") && stderr.contains("{hostnme}"),
        "{stderr}"
    );
}
