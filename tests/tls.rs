//! The client over HTTPS: CA file and folder, server name, skipped verification, client
//! certificates, against the stand-in serving TLS with certificates made here.

use std::fs;
use std::path::{Path, PathBuf};

use cndspool::config::{Config, ConsulSettings, Endpoint, TlsSettings};
use cndspool::consul::standin::{DevConsul, Options, TlsOptions};
use cndspool::consul::wire::TxnOp;
use cndspool::consul::{Client, ConsulError, Disposition};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA, a server certificate for `consul.test` only, and a client certificate, as PEM
/// files in a temporary folder.
struct Pki {
    dir: tempfile::TempDir,
    server: TlsOptions,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![name.to_owned()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf("consul.test");
        let (client_cert, client_key) = leaf("cndspool.client");
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("cas")).unwrap();
        for (name, pem) in [
            ("ca.pem", ca_cert.pem()),
            ("cas/ca.pem", ca_cert.pem()),
            ("client.pem", client_cert),
            ("client-key.pem", client_key),
        ] {
            fs::write(dir.path().join(name), pem).unwrap();
        }
        let server = TlsOptions {
            cert_pem: server_cert,
            key_pem: server_key,
            client_ca_pem: None,
        };
        Self { dir, server }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca_pem(&self) -> String {
        fs::read_to_string(self.path("ca.pem")).unwrap()
    }
}

fn settings(address: &str, tls: TlsSettings) -> ConsulSettings {
    let mut settings = Config::default().consul;
    settings.endpoint = Endpoint::parse(address, false).unwrap();
    settings.tls = tls;
    settings
}

async fn write(settings: &ConsulSettings) -> Result<(), ConsulError> {
    let client = Client::new(settings, None).unwrap();
    client
        .txn(&[TxnOp::set("over/tls", b"v")])
        .await
        .map(|_| ())
}

fn expect_refused(result: Result<(), ConsulError>, what: &str) {
    let err = result.expect_err(what);
    assert!(
        matches!(err, ConsulError::Transport { .. }),
        "{what}: {err}"
    );
    assert_eq!(err.disposition(), Disposition::Retry, "{what}");
}

#[tokio::test]
async fn certificates_are_verified_against_the_configured_ca_and_name() {
    let pki = Pki::new();
    let consul = DevConsul::start(Options {
        tls: Some(pki.server.clone()),
        ..Options::default()
    })
    .await
    .unwrap();
    let address = consul.address();
    assert!(address.starts_with("https://127.0.0.1:"), "{address}");
    let ca_file = Some(pki.path("ca.pem"));

    // The system's roots do not know this CA.
    expect_refused(
        write(&settings(&address, TlsSettings::default())).await,
        "unknown CA",
    );
    // The right CA, but the certificate names consul.test, not 127.0.0.1.
    let tls = TlsSettings {
        ca_file: ca_file.clone(),
        ..TlsSettings::default()
    };
    expect_refused(write(&settings(&address, tls)).await, "wrong name");
    // The right CA and the server's name.
    let tls = TlsSettings {
        ca_file: ca_file.clone(),
        server_name: Some("consul.test".into()),
        ..TlsSettings::default()
    };
    write(&settings(&address, tls)).await.expect("verified");
    // A folder of CA certificates does the same.
    let tls = TlsSettings {
        ca_path: Some(pki.path("cas")),
        server_name: Some("consul.test".into()),
        ..TlsSettings::default()
    };
    write(&settings(&address, tls))
        .await
        .expect("verified through ca_path");
    // Verification off: anything goes (and the daemon warns about it).
    let tls = TlsSettings {
        skip_verify: true,
        ..TlsSettings::default()
    };
    write(&settings(&address, tls)).await.expect("unverified");
    assert_eq!(consul.value("over/tls").as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn client_certificates_for_mutual_tls() {
    let pki = Pki::new();
    let server = TlsOptions {
        client_ca_pem: Some(pki.ca_pem()),
        ..pki.server.clone()
    };
    let consul = DevConsul::start(Options {
        tls: Some(server),
        ..Options::default()
    })
    .await
    .unwrap();
    let verified = TlsSettings {
        ca_file: Some(pki.path("ca.pem")),
        server_name: Some("consul.test".into()),
        ..TlsSettings::default()
    };
    expect_refused(
        write(&settings(&consul.address(), verified.clone())).await,
        "no client certificate",
    );
    let with_cert = TlsSettings {
        client_cert: Some((pki.path("client.pem"), pki.path("client-key.pem"))),
        ..verified
    };
    write(&settings(&consul.address(), with_cert))
        .await
        .expect("mutual TLS");
}

#[test]
fn the_daemon_reads_tls_settings_from_the_environment() {
    let pki = Pki::new();
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let env = cndspool::config::Env::from_pairs([
        ("CONSUL_HTTP_ADDR", "https://127.0.0.1:8501".to_owned()),
        ("CONSUL_CACERT", path(&pki.path("ca.pem"))),
        ("CONSUL_CLIENT_CERT", path(&pki.path("client.pem"))),
        ("CONSUL_CLIENT_KEY", path(&pki.path("client-key.pem"))),
        ("CONSUL_TLS_SERVER_NAME", "consul.test".to_owned()),
    ]);
    let config = Config::from_toml("", "test", &env, &Default::default()).unwrap();
    assert_eq!(config.consul.tls.ca_file, Some(pki.path("ca.pem")));
    assert_eq!(
        config.consul.tls.server_name.as_deref(),
        Some("consul.test")
    );
    Client::new(&config.consul, None).expect("a client with every TLS setting");
}
