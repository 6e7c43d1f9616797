//! A thin client for the parts of Consul's HTTP API that cndspool uses.
//!
//! `PUT /v1/txn` with KV `set` operations, `PUT /v1/kv/<key>` for a record too large for
//! any transaction body, `GET /v1/kv/<prefix>?recurse` / `?keys`, and
//! `GET /v1/status/leader`. Redirects are never followed (a followed 301 can drop a PUT's
//! body), no system proxy is used, keys are percent-encoded segment by segment, and the
//! token travels only in the `X-Consul-Token` header, marked sensitive.

use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Once;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};

use super::error::{ConsulError, RequestKind};
use super::wire::{KvEntry, TxnOp, TxnResponse, TxnResult};
use crate::config::{ConfigError, ConsulSettings, Endpoint, Secret, TlsSettings};

/// Characters left as they are in a path segment or query value: RFC 3986's unreserved.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The longest error body kept (Consul's are a line of text).
const MAX_ERROR_BODY: usize = 4096;

/// A Consul HTTP client. Cheap to clone; connections are pooled and kept alive.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Scheme, authority and optional path prefix, without a trailing `/`.
    base: String,
    /// Sent as `X-Consul-Token`, never logged.
    token: Option<HeaderValue>,
    /// `dc=...&ns=...` (each only when configured), or empty.
    query: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client for `settings`, sending `token`.
    ///
    /// # Errors
    /// TLS material that cannot be read or parsed, a token that is not a valid header,
    /// a `tls_server_name` whose real address cannot be resolved.
    pub fn new(settings: &ConsulSettings, token: Option<&Secret>) -> Result<Self, ConfigError> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .user_agent(concat!("cndspool/", env!("CARGO_PKG_VERSION")));
        let base = match &settings.endpoint {
            Endpoint::Unix { path } => {
                builder = builder.unix_socket(path.clone());
                "http://localhost".to_owned()
            }
            Endpoint::Http { base, tls: false } => base.clone(),
            Endpoint::Http { base, tls: true } => {
                let (b, base) = configure_tls(builder, base, &settings.tls)?;
                builder = b;
                base
            }
        };
        let http = builder
            .build()
            .map_err(|e| invalid("[consul]", format!("cannot build the HTTP client: {e}")))?;
        let token = token
            .map(|t| {
                let mut value = HeaderValue::from_str(t.expose()).map_err(|_| {
                    invalid(
                        "the Consul token",
                        "contains characters a header cannot carry",
                    )
                })?;
                value.set_sensitive(true);
                Ok::<_, ConfigError>(value)
            })
            .transpose()?;
        let mut query = String::new();
        for (name, value) in [("dc", &settings.datacenter), ("ns", &settings.namespace)] {
            if let Some(value) = value {
                let sep = if query.is_empty() { "" } else { "&" };
                let _ = write!(
                    query,
                    "{sep}{name}={}",
                    utf8_percent_encode(value, UNRESERVED)
                );
            }
        }
        Ok(Self {
            http,
            base,
            token,
            query,
        })
    }

    /// The URL of `path` (which starts with `/v1/`), with `extra` query parameters.
    fn url(&self, path: &str, extra: &str) -> String {
        let mut url = format!("{}{path}", self.base);
        for (i, part) in [extra, &self.query]
            .into_iter()
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(part);
        }
        url
    }

    /// Sends one request; a non-success status becomes [`ConsulError::Status`] except the
    /// ones the caller decodes (`accept`).
    async fn send(
        &self,
        kind: RequestKind,
        method: Method,
        url: String,
        body: Option<Vec<u8>>,
        accept: &[StatusCode],
    ) -> Result<(StatusCode, bytes::Bytes), ConsulError> {
        let transport = |source| ConsulError::Transport { kind, source };
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token.clone());
        }
        if let Some(body) = body {
            // Consul ignores the type, but some proxies refuse a body without one.
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() || accept.contains(&status) {
            return Ok((status, bytes));
        }
        let body = &bytes[..bytes.len().min(MAX_ERROR_BODY)];
        Err(ConsulError::Status {
            kind,
            status: status.as_u16(),
            body: String::from_utf8_lossy(body).into_owned(),
        })
    }

    /// Applies `ops` atomically with `PUT /v1/txn`.
    ///
    /// # Errors
    /// [`ConsulError::RolledBack`] for a 409 (nothing applied); any other failure.
    pub async fn txn(&self, ops: &[TxnOp<'_>]) -> Result<Vec<TxnResult>, ConsulError> {
        let body = serde_json::to_vec(ops).expect("operations serialise");
        self.txn_body(body).await
    }

    /// Sends an already-serialised transaction body (batching builds it to a size).
    ///
    /// # Errors
    /// As [`Client::txn`].
    pub async fn txn_body(&self, body: Vec<u8>) -> Result<Vec<TxnResult>, ConsulError> {
        let kind = RequestKind::Txn;
        let (status, bytes) = self
            .send(
                kind,
                Method::PUT,
                self.url("/v1/txn", ""),
                Some(body),
                &[StatusCode::CONFLICT],
            )
            .await?;
        let response: TxnResponse =
            serde_json::from_slice(&bytes).map_err(|e| ConsulError::Decode {
                kind,
                problem: format!("transaction answer ({status}): {e}"),
            })?;
        if status == StatusCode::CONFLICT {
            return Err(ConsulError::RolledBack {
                errors: response.errors.unwrap_or_default(),
            });
        }
        Ok(response.results.unwrap_or_default())
    }

    /// Writes one key with `PUT /v1/kv/<key>`.
    ///
    /// # Errors
    /// Any failure; a `false` answer (impossible for a plain PUT) is a decode error.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), ConsulError> {
        let kind = RequestKind::Put;
        let url = self.url(&kv_path(key), "");
        let (_, bytes) = self
            .send(kind, Method::PUT, url, Some(value.to_vec()), &[])
            .await?;
        match serde_json::from_slice::<bool>(bytes.trim_ascii()) {
            Ok(true) => Ok(()),
            other => Err(ConsulError::Decode {
                kind,
                problem: format!("a write answered {other:?} instead of true"),
            }),
        }
    }

    /// Reads one key; `None` when it does not exist.
    ///
    /// # Errors
    /// Any failure but 404.
    pub async fn get(&self, key: &str) -> Result<Option<KvEntry>, ConsulError> {
        let entries = self.read_entries(&kv_path(key), "").await?;
        Ok(entries.into_iter().next())
    }

    /// Reads every entry under `prefix` (`?recurse`); empty when none.
    ///
    /// # Errors
    /// Any failure but 404.
    pub async fn list(&self, prefix: &str) -> Result<Vec<KvEntry>, ConsulError> {
        self.read_entries(&kv_path(prefix), "recurse").await
    }

    /// Lists the keys under `prefix` (`?keys`), cut after `separator` when given.
    ///
    /// # Errors
    /// Any failure but 404.
    pub async fn keys(
        &self,
        prefix: &str,
        separator: Option<&str>,
    ) -> Result<Vec<String>, ConsulError> {
        let query = match separator {
            Some(sep) => format!("keys&separator={}", utf8_percent_encode(sep, UNRESERVED)),
            None => "keys".to_owned(),
        };
        self.read_json(&kv_path(prefix), &query).await
    }

    /// Deletes every key under `prefix` (test clean-up on a real agent).
    ///
    /// # Errors
    /// Any failure.
    pub async fn delete_tree(&self, prefix: &str) -> Result<(), ConsulError> {
        let url = self.url(&kv_path(prefix), "recurse");
        self.send(RequestKind::Put, Method::DELETE, url, None, &[])
            .await?;
        Ok(())
    }

    /// The leader's address (`GET /v1/status/leader`); empty when there is none.
    ///
    /// # Errors
    /// Any failure.
    pub async fn leader(&self) -> Result<String, ConsulError> {
        self.read_json("/v1/status/leader", "")
            .await
            .map(|l: Option<String>| l.unwrap_or_default())
    }

    async fn read_entries(&self, path: &str, query: &str) -> Result<Vec<KvEntry>, ConsulError> {
        self.read_json::<Option<Vec<KvEntry>>>(path, query)
            .await
            .map(Option::unwrap_or_default)
    }

    /// GETs JSON; a 404 reads as JSON `null`/empty (`T::default()`).
    async fn read_json<T: serde::de::DeserializeOwned + Default>(
        &self,
        path: &str,
        query: &str,
    ) -> Result<T, ConsulError> {
        let kind = RequestKind::Read;
        let url = self.url(path, query);
        let (status, bytes) = self
            .send(kind, Method::GET, url, None, &[StatusCode::NOT_FOUND])
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(T::default());
        }
        serde_json::from_slice(&bytes).map_err(|e| ConsulError::Decode {
            kind,
            problem: format!("{path}: {e}"),
        })
    }
}

/// `/v1/kv/` followed by the key, each segment percent-encoded on its own.
pub fn kv_path(key: &str) -> String {
    format!("/v1/kv/{}", encode_segments(key))
}

/// `path` with each `/`-separated segment percent-encoded on its own.
pub fn encode_segments(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            encoded.push('/');
        }
        encoded.extend(utf8_percent_encode(segment, UNRESERVED));
    }
    encoded
}

fn invalid(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        problem: problem.into(),
    }
}

/// reqwest is built without a default rustls provider; installs *ring*, once. Call it
/// before building any other reqwest client in the process.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed one already: that is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Applies `[consul]` TLS settings; returns the builder and the base URL to use (its host
/// replaced by `tls_server_name`, pinned to the real address, when one is set).
fn configure_tls(
    mut builder: reqwest::ClientBuilder,
    base: &str,
    tls: &TlsSettings,
) -> Result<(reqwest::ClientBuilder, String), ConfigError> {
    let mut roots = Vec::new();
    if let Some(file) = &tls.ca_file {
        roots.extend(read_certs(file, "[consul] ca_file / CONSUL_CACERT")?);
    }
    if let Some(dir) = &tls.ca_path {
        let setting = "[consul] ca_path / CONSUL_CAPATH";
        let entries = std::fs::read_dir(dir)
            .map_err(|e| invalid(setting, format!("cannot read {}: {e}", dir.display())))?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.iter().filter(|p| p.is_file()) {
            roots.extend(read_certs(path, setting)?);
        }
    }
    if !roots.is_empty() {
        builder = builder.tls_certs_only(roots);
    }
    if let Some((cert, key)) = &tls.client_cert {
        let setting = "[consul] client_cert / client_key";
        let mut pem = read_file(cert, setting)?;
        pem.push(b'\n');
        pem.extend(read_file(key, setting)?);
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| invalid(setting, format!("not a usable certificate and key: {e}")))?;
        builder = builder.identity(identity);
    }
    if tls.skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    let mut base = base.to_owned();
    if let Some(name) = &tls.server_name {
        let url =
            reqwest::Url::parse(&base).map_err(|e| invalid("[consul] address", e.to_string()))?;
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = (host.trim_matches(['[', ']']), port)
            .to_socket_addrs()
            .map_err(|e| invalid("[consul] address", format!("cannot resolve {host}: {e}")))?
            .collect();
        builder = builder.resolve_to_addrs(name, &addrs);
        let mut named = url.clone();
        named
            .set_host(Some(name))
            .map_err(|e| invalid("[consul] tls_server_name", e.to_string()))?;
        base = named.as_str().trim_end_matches('/').to_owned();
    }
    Ok((builder, base))
}

fn read_file(path: &Path, setting: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| invalid(setting, format!("cannot read {}: {e}", path.display())))
}

fn read_certs(path: &Path, setting: &str) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let pem = read_file(path, setting)?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        invalid(
            setting,
            format!("{} holds no usable certificate: {e}", path.display()),
        )
    })?;
    if certs.is_empty() {
        return Err(invalid(
            setting,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn keys_are_encoded_segment_by_segment() {
        assert_eq!(
            kv_path("iaas_inventory/hosts/vra8/web01"),
            "/v1/kv/iaas_inventory/hosts/vra8/web01"
        );
        assert_eq!(kv_path("a b/c%d/e?f#g"), "/v1/kv/a%20b/c%25d/e%3Ff%23g");
        assert_eq!(kv_path("ünï/x"), "/v1/kv/%C3%BCn%C3%AF/x");
    }

    #[test]
    fn queries_carry_dc_and_ns_only_when_set() {
        let mut settings = Config::default().consul;
        let client = Client::new(&settings, None).unwrap();
        assert_eq!(client.url("/v1/txn", ""), "http://127.0.0.1:8500/v1/txn");
        settings.datacenter = Some("dc 2".into());
        settings.namespace = Some("team".into());
        let client = Client::new(&settings, None).unwrap();
        assert_eq!(
            client.url("/v1/kv/a", "recurse"),
            "http://127.0.0.1:8500/v1/kv/a?recurse&dc=dc%202&ns=team"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let settings = Config::default().consul;
        let client = Client::new(&settings, Some(&Secret::new("tok-9f8e7d"))).unwrap();
        assert!(!format!("{client:?}").contains("tok-9f8e7d"));
    }

    #[test]
    fn unreadable_tls_material_is_a_config_error() {
        let mut settings = Config::default().consul;
        settings.endpoint = Endpoint::Http {
            base: "https://127.0.0.1:8501".into(),
            tls: true,
        };
        settings.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let err = Client::new(&settings, None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
