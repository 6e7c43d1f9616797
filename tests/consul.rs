//! Conformance of the stand-in to consul-api.md, through cndspool's client: the same
//! tests run against a real agent when `CNDSPOOL_TEST_CONSUL` is set (tests that need
//! fault injection or ACL control then skip themselves).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use cndspool::consul::standin::{DevConsul, Fault, Listen, Options};
use cndspool::consul::wire::TxnOp;
use cndspool::consul::{ConsulError, Disposition, OpAction};

use crate::standin_or_skip;
use crate::util::{TestConsul, cndspool};

/// `n` writes under `op/`, with values that differ from any earlier call's.
fn sets(consul: &TestConsul, n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                consul.key(&format!("op/{i:03}")),
                format!("v{i}-of-{n}").into_bytes(),
            )
        })
        .collect()
}

/// A client that never follows redirects, and the base URL, for what the cndspool client
/// hides (headers, 404 bodies, 301s); `None` for a Unix-socket agent.
fn raw_http(consul: &TestConsul) -> Option<(reqwest::Client, String)> {
    let authority = consul.address().strip_prefix("http://")?;
    cndspool::consul::client::install_crypto_provider();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Some((http, format!("http://{authority}")))
}

/// Sends one request exactly as written and returns the whole answer as text.
async fn raw_request(address: &str, method: &str, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = address.strip_prefix("http://").expect("a TCP address");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply
}

fn ops(pairs: &[(String, Vec<u8>)]) -> Vec<TxnOp<'_>> {
    pairs.iter().map(|(k, v)| TxnOp::set(k, v)).collect()
}

#[tokio::test]
async fn transactions_of_64_and_128_ops_succeed_and_129_is_too_many() {
    let consul = TestConsul::start().await;
    let client = consul.client(Some("root"));
    for n in [64, 128] {
        let pairs = sets(&consul, n);
        let results = client.txn(&ops(&pairs)).await.expect("a full transaction");
        assert_eq!(results.len(), n);
        assert!(
            results.iter().all(|r| r.kv.value.is_none()),
            "writes return Value null"
        );
        let index = results[0].kv.modify_index;
        assert!(
            results.iter().all(|r| r.kv.modify_index == index),
            "one Raft index"
        );
    }
    let stored = client.list(&consul.key("op/")).await.unwrap();
    assert_eq!(stored.len(), 128);
    assert_eq!(stored[127].bytes(), b"v127-of-128");

    let pairs = sets(&consul, 129);
    let err = client.txn(&ops(&pairs)).await.unwrap_err();
    assert!(
        matches!(&err, ConsulError::Status { status: 413, body, .. }
            if body == "Transaction contains too many operations (129 > 128)"),
        "{err}"
    );
    assert_eq!(err.disposition(), Disposition::Split);

    let standin = standin_or_skip!(consul);
    standin.set_max_txn_ops(64);
    let err = client.txn(&ops(&sets(&consul, 65))).await.unwrap_err();
    assert!(err.to_string().contains("(65 > 64)"), "{err}");
}

#[tokio::test]
async fn a_rolled_back_transaction_lists_every_failure_and_applies_nothing() {
    let consul = TestConsul::start().await;
    let client = consul.client(Some("root"));
    let body = serde_json::to_vec(&serde_json::json!([
        {"KV": {"Verb": "set", "Key": consul.key("fresh"), "Value": "dg=="}},
        {"KV": {"Verb": "cas", "Key": consul.key("a"), "Value": "dg==", "Index": 999_999}},
        {"KV": {"Verb": "check-not-exists", "Key": consul.key("b")}},
        {"KV": {"Verb": "set", "Key": "", "Value": "dg=="}},
    ]))
    .unwrap();
    client.put(&consul.key("b"), b"exists").await.unwrap();
    let err = client.txn_body(body).await.unwrap_err();
    let ConsulError::RolledBack { errors } = &err else {
        panic!("{err}")
    };
    let indexes: Vec<_> = errors.iter().map(|e| e.op_index).collect();
    assert_eq!(indexes, [1, 2, 3], "{err}");
    assert!(errors[0].what.contains("index is stale"), "{err}");
    assert!(errors[1].what.contains("exists"), "{err}");
    assert!(errors[2].what.contains("Must provide key"), "{err}");
    let Disposition::Operations(failures) = err.disposition() else {
        panic!()
    };
    assert!(failures.iter().all(|f| f.action == OpAction::Quarantine));
    assert_eq!(
        client.get(&consul.key("fresh")).await.unwrap(),
        None,
        "nothing applied"
    );
}

#[tokio::test]
async fn the_value_limit_is_524288_bytes() {
    let consul = TestConsul::start().await;
    let client = consul.client(Some("root"));
    let at_limit = vec![b'x'; 524_288];
    client
        .put(&consul.key("big"), &at_limit)
        .await
        .expect("524288 bytes fit");
    assert_eq!(
        client
            .get(&consul.key("big"))
            .await
            .unwrap()
            .unwrap()
            .bytes()
            .len(),
        524_288
    );
    let err = client
        .put(&consul.key("bigger"), &vec![b'x'; 524_289])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConsulError::Status { status: 413, body, .. }
            if body.starts_with("Request body(524289 bytes) too large, max size: 524288 bytes.")),
        "{err}"
    );
    assert_eq!(err.disposition(), Disposition::Quarantine);
    // In a transaction the JSON body counts, base64 included: the same value is too large.
    let err = client
        .txn(&[TxnOp::set(&consul.key("t"), &at_limit)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConsulError::Status { status: 413, .. }),
        "{err}"
    );
    assert_eq!(err.disposition(), Disposition::Split);
}

#[tokio::test]
async fn reads_follow_consuls_shapes() {
    let consul = TestConsul::start().await;
    let client = consul.client(Some("root"));
    assert_eq!(client.get(&consul.key("missing")).await.unwrap(), None);
    assert!(client.list(&consul.key("")).await.unwrap().is_empty());
    client.put(&consul.key("web/foo"), b"1").await.unwrap();
    client.put(&consul.key("web/bar"), b"").await.unwrap();
    client.put(&consul.key("web/sub/a"), b"2").await.unwrap();
    let entry = client.get(&consul.key("web/bar")).await.unwrap().unwrap();
    assert_eq!(entry.value, None, "an empty value reads back as null");
    let keys = client.keys(&consul.key("web/"), Some("/")).await.unwrap();
    assert_eq!(
        keys,
        [
            consul.key("web/bar"),
            consul.key("web/foo"),
            consul.key("web/sub/")
        ]
    );
    let all = client.list(&consul.key("web/")).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.key.clone()).collect::<Vec<_>>(),
        [
            consul.key("web/bar"),
            consul.key("web/foo"),
            consul.key("web/sub/a")
        ]
    );
    assert!(
        !client.leader().await.unwrap().is_empty(),
        "a leader is known"
    );

    // Raw HTTP for what the client hides: headers, 404 bodies, ?raw.
    let Some((http, base)) = raw_http(&consul) else {
        return;
    };
    let missing = http
        .get(format!("{base}/v1/kv/{}", consul.key("missing")))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let index: u64 = missing.headers()["x-consul-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(index >= 1, "X-Consul-Index is never 0");
    assert!(missing.headers().contains_key("x-consul-knownleader"));
    assert_eq!(missing.bytes().await.unwrap().len(), 0);
    let raw = http
        .get(format!("{base}/v1/kv/{}?raw", consul.key("web/foo")))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["x-content-type-options"], "nosniff");
    assert_eq!(raw.bytes().await.unwrap(), "1");
    let found = http
        .get(format!("{base}/v1/kv/{}", consul.key("web/foo")))
        .send()
        .await
        .unwrap();
    let index: u64 = found.headers()["x-consul-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&found.bytes().await.unwrap()).unwrap();
    assert_eq!(body[0]["Value"], "MQ==");
    assert_eq!(body[0]["ModifyIndex"], index);
    assert!(body[0].get("Session").is_none());
}

#[tokio::test]
async fn path_rules_methods_and_strict_bodies() {
    let consul = TestConsul::start().await;
    let Some((http, base)) = raw_http(&consul) else {
        return;
    };
    // HTTP clients resolve dot segments before sending, so speak HTTP/1.1 by hand.
    for (path, location) in [
        ("/v1/kv//a", "/v1/kv/a"),
        ("/v1/kv/a/../b", "/v1/kv/b"),
        ("/v1/kv/./a?flags=1", "/v1/kv/a?flags=1"),
    ] {
        let reply = raw_request(consul.address(), "PUT", path, "x").await;
        assert!(reply.starts_with("HTTP/1.1 301"), "{path}: {reply}");
        assert!(
            reply
                .to_ascii_lowercase()
                .contains(&format!("location: {location}\r\n")),
            "{path}: {reply}"
        );
    }
    let reply = http
        .put(format!("{base}/v1/kv/a%0Ab"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400, "non-printable path");
    let reply = http.post(format!("{base}/v1/kv/a")).send().await.unwrap();
    assert_eq!(reply.status(), 405);
    assert_eq!(reply.headers()["allow"], "OPTIONS,GET,PUT,DELETE");
    assert_eq!(reply.text().await.unwrap(), "method POST not allowed");
    let reply = http.get(format!("{base}/v1/txn")).send().await.unwrap();
    assert_eq!(reply.status(), 405);
    let reply = http.get(format!("{base}/v1/nope")).send().await.unwrap();
    assert_eq!(reply.status(), 404);
    let reply = http
        .put(format!("{base}/v1/kv/"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (reply.status().as_u16(), reply.text().await.unwrap()),
        (400, "Missing key name".into())
    );

    let client = consul.client(Some("root"));
    for (body, needle) in [
        (
            r#"[{"KV":{"Verb":"set","Key":"a","Foo":1}}]"#,
            "json: unknown field \"Foo\"",
        ),
        (
            r#"[{"KV":{"Verb":"set","Key":"a","Value":"!!"}}]"#,
            "illegal base64 data at input byte 0",
        ),
        ("[{", "Failed to parse body"),
    ] {
        let err = client.txn_body(body.as_bytes().to_vec()).await.unwrap_err();
        assert!(
            matches!(&err, ConsulError::Status { status: 400, body, .. }
                if body.starts_with("Failed to parse body: ") && body.contains(needle)),
            "{err}"
        );
        assert_eq!(err.disposition(), Disposition::Bisect);
    }
}

#[tokio::test]
async fn acl_tokens_and_write_denials() {
    let consul = TestConsul::start_with(Options {
        token: Some("root".into()),
        ..Options::default()
    })
    .await;
    let standin = standin_or_skip!(consul);
    let k = |s: &str| consul.key(s);

    let err = consul
        .client(Some("wrong"))
        .txn(&[TxnOp::set(&k("a"), b"v")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConsulError::Status { status: 403, body, .. } if body == "ACL not found"),
        "{err}"
    );
    assert_eq!(err.disposition(), Disposition::Retry);

    let err = consul
        .client(None)
        .txn(&[TxnOp::set(&k("a"), b"v")])
        .await
        .unwrap_err();
    let Disposition::Operations(failures) = err.disposition() else {
        panic!("{err}")
    };
    assert_eq!(failures[0].action, OpAction::Hold);
    assert!(
        failures[0]
            .what
            .contains("anonymous token lacks permission 'key:write'"),
        "{err}"
    );

    standin.deny_writes(&k("secret/"));
    let client = consul.client(Some("root"));
    let err = client
        .txn(&[
            TxnOp::set(&k("open/1"), b"v"),
            TxnOp::set(&k("secret/1"), b"v"),
            TxnOp::set(&k("open/2"), b"v"),
        ])
        .await
        .unwrap_err();
    let Disposition::Operations(failures) = err.disposition() else {
        panic!("{err}")
    };
    assert_eq!(failures.len(), 1);
    assert_eq!((failures[0].index, failures[0].action), (1, OpAction::Hold));
    assert!(
        failures[0]
            .what
            .starts_with("Permission denied: token with AccessorID"),
        "{err}"
    );
    assert_eq!(client.get(&k("open/1")).await.unwrap(), None, "rolled back");

    let err = client.put(&k("secret/2"), b"v").await.unwrap_err();
    assert!(
        matches!(&err, ConsulError::Status { status: 403, .. }),
        "{err}"
    );
    assert_eq!(err.disposition(), Disposition::Hold);
    standin.allow_all_writes();
    client.put(&k("secret/2"), b"v").await.unwrap();
}

#[tokio::test]
async fn every_injected_fault_is_retried_and_data_survives_a_restart() {
    let consul = TestConsul::start().await;
    let standin = standin_or_skip!(consul);
    let client = consul.client(None);
    let k = consul.key("f");
    let txn = || async { client.txn(&[TxnOp::set(&k, b"v")]).await };

    standin.set_fault(Fault::NoLeader, None);
    let err = txn().await.unwrap_err();
    assert!(err.to_string().contains("No cluster leader"), "{err}");
    assert_eq!(err.disposition(), Disposition::Retry);
    assert_eq!(client.leader().await.unwrap(), "", "no leader known");
    standin.clear_fault();
    assert_eq!(client.leader().await.unwrap(), "127.0.0.1:8300");

    for (fault, status) in [(Fault::RateLimited, 429), (Fault::Unavailable, 503)] {
        standin.set_fault(fault, Some(1));
        let err = txn().await.unwrap_err();
        assert!(
            matches!(&err, ConsulError::Status { status: s, .. } if *s == status),
            "{err}"
        );
        assert_eq!(err.disposition(), Disposition::Retry);
        txn().await.expect("the fault was for one request");
    }

    standin.set_fault(Fault::LeadershipLost, Some(1));
    let err = client.txn(&[TxnOp::set(&k, b"applied")]).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("leadership lost while committing log"),
        "{err}"
    );
    assert_eq!(err.disposition(), Disposition::Retry);
    assert_eq!(
        standin.value(&k).as_deref(),
        Some(&b"applied"[..]),
        "applied despite the 500"
    );

    standin.set_fault(Fault::CutConnection, Some(1));
    let err = txn().await.unwrap_err();
    assert!(matches!(err, ConsulError::Transport { .. }), "{err}");
    assert_eq!(err.disposition(), Disposition::Retry);

    standin.set_fault(Fault::Slow(Duration::from_millis(800)), Some(1));
    let impatient = consul.client_with(None, |s| s.request_timeout = Duration::from_millis(100));
    // Whether the stand-in finishes a write the client gave up on is not observable here;
    // the same value keeps the final state certain either way.
    let err = impatient
        .txn(&[TxnOp::set(&k, b"applied")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(err.disposition(), Disposition::Retry);

    standin.stop().await;
    let err = txn().await.unwrap_err();
    assert!(err.to_string().contains("could not connect"), "{err}");
    assert_eq!(err.disposition(), Disposition::Retry);
    standin.resume().await.unwrap();
    assert_eq!(
        client.get(&k).await.unwrap().unwrap().bytes(),
        b"applied",
        "data kept across the outage"
    );
    // Evaluated: the two successes after 429 and 503, and the leadership-lost one; the
    // refused, cut and abandoned requests never reached the store.
    let counts = standin.counts();
    assert_eq!(
        (counts.txns, counts.operations, counts.writes),
        (3, 3, 3),
        "{counts:?}"
    );
    assert!(counts.requests > counts.txns, "{counts:?}");
}

#[tokio::test]
async fn errors_never_carry_the_token() {
    let token = "tok-5e3c7a1f-never-print-me";
    let consul = TestConsul::start_with(Options {
        token: Some("other".into()),
        ..Options::default()
    })
    .await;
    let standin = standin_or_skip!(consul);
    let client = consul.client(Some(token));
    let mut texts = vec![format!("{client:?}")];
    let err = client.txn(&[TxnOp::set("k", b"v")]).await.unwrap_err();
    texts.push(format!("{err} {err:?} {:?}", err.disposition()));
    standin.stop().await;
    let err = client.put("k", b"v").await.unwrap_err();
    texts.push(format!("{err} {err:?}"));
    for text in texts {
        assert!(!text.contains(token), "the token leaked: {text}");
    }
}

#[tokio::test]
async fn unix_socket_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("consul.sock");
    let standin = DevConsul::start(Options {
        listen: Listen::Unix(socket.clone()),
        ..Options::default()
    })
    .await
    .unwrap();
    assert_eq!(standin.address(), format!("unix://{}", socket.display()));
    let mut settings = cndspool::config::Config::default().consul;
    settings.endpoint = cndspool::config::Endpoint::parse(&standin.address(), false).unwrap();
    let client = cndspool::consul::Client::new(&settings, None).unwrap();
    client.txn(&[TxnOp::set("over/unix", b"v")]).await.unwrap();
    assert_eq!(standin.value("over/unix").as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn the_dev_consul_command_says_what_it_is() {
    let mut child = cndspool()
        .args(["dev-consul", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .to_owned();
    let mut settings = cndspool::config::Config::default().consul;
    settings.endpoint = cndspool::config::Endpoint::parse(&address, false).unwrap();
    let client = cndspool::consul::Client::new(&settings, None).unwrap();
    client.put("hello", b"world").await.unwrap();
    assert_eq!(
        client.get("hello").await.unwrap().unwrap().bytes(),
        b"world"
    );
    // SIGTERM: a clean exit.
    std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let banner = String::from_utf8_lossy(&out.stderr);
    assert!(
        banner.contains("in-memory stand-in") && banner.contains("not Consul"),
        "{banner}"
    );
}
