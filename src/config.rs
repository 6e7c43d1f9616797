//! Configuration: TOML file → raw structs → merged with environment and flags → a
//! validated [`Config`].
//!
//! Precedence for each setting (SPEC §4, §7): command-line flag, then the `CONSUL_*`
//! environment variables, then the file, then the built-in default. The token has its own
//! order (SPEC §5): token file option, `token`, `CONSUL_HTTP_TOKEN_FILE`,
//! `CONSUL_HTTP_TOKEN`, then systemd's credential `consul-token`. Nothing after start-up
//! sees unvalidated settings; a reload builds a new `Config` and swaps it in only if valid.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::keys::{self, KeyLayout};
use crate::record::Family;

/// Where the configuration is read from when `--config` is not given and it exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cndspool/cndspool.toml";
/// The default spool folder.
pub const DEFAULT_SPOOL_DIR: &str = "/var/spool/cndspool";
/// The default Consul address.
pub const DEFAULT_CONSUL_ADDRESS: &str = "http://127.0.0.1:8500";
/// Consul's transaction operation cap since 1.14 (64 before).
pub const CONSUL_MAX_TXN_OPS: usize = 128;
/// Consul's default transaction body limit (`txn_max_req_len`).
pub const CONSUL_MAX_TXN_BYTES: usize = 524_288;
/// The name of systemd's credential holding the token (`LoadCredential=consul-token:...`).
pub const TOKEN_CREDENTIAL: &str = "consul-token";

/// A configuration problem: the daemon exits 78 and systemd does not restart it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a value of the wrong type.
    #[error("configuration file {origin}: {message}")]
    Parse { origin: String, message: String },
    /// A setting has an unusable value.
    #[error("{setting}: {problem}")]
    Invalid { setting: String, problem: String },
    /// The token file could not be read (raised by [`TokenSource::load`]).
    #[error("cannot read the Consul token file {}: {source}; fix its path or permissions", path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn invalid(setting: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.into(),
        problem: problem.into(),
    }
}

/// A secret (the Consul token): never shown by `Debug`, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

// ---------------------------------------------------------------------------------------
// The file, as written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    spool: RawSpool,
    consul: RawConsul,
    delivery: RawDelivery,
    keys: RawKeys,
    log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSpool {
    dir: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    settle: Option<Duration>,
    max_file_bytes: Option<u64>,
    #[serde(with = "humantime_serde")]
    rescan_interval: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConsul {
    address: Option<String>,
    token_file: Option<PathBuf>,
    token: Option<String>,
    datacenter: Option<String>,
    namespace: Option<String>,
    ca_file: Option<PathBuf>,
    ca_path: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    tls_server_name: Option<String>,
    tls_skip_verify: Option<bool>,
    #[serde(with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    #[serde(with = "humantime_serde")]
    request_timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDelivery {
    max_batch_ops: Option<usize>,
    max_batch_bytes: Option<usize>,
    #[serde(with = "humantime_serde")]
    linger: Option<Duration>,
    #[serde(with = "humantime_serde")]
    retry_initial: Option<Duration>,
    #[serde(with = "humantime_serde")]
    retry_max: Option<Duration>,
    #[serde(with = "humantime_serde")]
    shutdown_timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawKeys {
    prefix: Option<String>,
    deployment: Option<String>,
    host: Option<String>,
    host_workflow: Option<String>,
    vra: Option<String>,
    app: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
    #[serde(with = "humantime_serde")]
    stats_interval: Option<Duration>,
}

// ---------------------------------------------------------------------------------------
// Inputs besides the file.

/// The process environment as configuration sees it: empty values count as unset.
#[derive(Debug, Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// The current process's environment.
    pub fn from_process() -> Self {
        Self::from_pairs(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// An environment made of `pairs` (tests, reloads).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .filter(|(_, v)| !v.trim().is_empty())
                .collect(),
        )
    }

    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        self.get(name)
            .map(|v| {
                parse_go_bool(v).ok_or_else(|| {
                    invalid(name, format!("{v:?} is not a boolean; use true or false"))
                })
            })
            .transpose()
    }
}

/// Go's `strconv.ParseBool`, which the Consul CLI uses for its variables.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Settings given on the command line; they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--spool`.
    pub spool_dir: Option<PathBuf>,
    /// `--consul-addr`.
    pub consul_address: Option<String>,
    /// `--consul-token-file`.
    pub token_file: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<String>,
    /// `--log-level`.
    pub log_level: Option<String>,
}

// ---------------------------------------------------------------------------------------
// The validated configuration.

/// The validated configuration of the whole program.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[spool]`.
    pub spool: SpoolSettings,
    /// `[consul]`, merged with the environment.
    pub consul: ConsulSettings,
    /// `[delivery]`.
    pub delivery: DeliverySettings,
    /// `[keys]`, parsed into templates.
    pub keys: KeyLayout,
    /// `[log]`.
    pub log: LogSettings,
}

/// `[spool]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// The spool's root folder (holds `tmp/`, `new/`, `failed/`).
    pub dir: PathBuf,
    /// A file younger than this that fails to parse is retried, not quarantined.
    pub settle: Duration,
    /// Files larger than this are quarantined unread (at most this much is read).
    pub max_file_bytes: u64,
    /// The safety rescan period behind inotify.
    pub rescan_interval: Duration,
}

/// Where Consul's HTTP API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `http://` or `https://`, with an optional path prefix (a reverse proxy).
    Http {
        /// Scheme, host, port and prefix, without a trailing `/`.
        base: String,
        /// Whether the scheme is https.
        tls: bool,
    },
    /// A Unix socket (`unix:///run/consul/http.sock`).
    Unix {
        /// The socket's path.
        path: PathBuf,
    },
}

impl Endpoint {
    /// Parses an address in the Consul CLI's forms: `host:port`, `http://...`,
    /// `https://...`, `unix:///path`. `force_tls` (`CONSUL_HTTP_SSL`) turns http into https.
    ///
    /// # Errors
    /// An unknown scheme or an address without a host.
    pub fn parse(address: &str, force_tls: bool) -> Result<Self, String> {
        let address = address.trim();
        if let Some(path) = address.strip_prefix("unix://") {
            if path.is_empty() {
                return Err("a unix:// address needs the socket's path".to_owned());
            }
            return Ok(Endpoint::Unix {
                path: PathBuf::from(path),
            });
        }
        let (scheme, rest) = match address.split_once("://") {
            Some((scheme @ ("http" | "https"), rest)) => (scheme, rest),
            Some((other, _)) => {
                return Err(format!(
                    "unknown protocol scheme {other:?}; use http://, https:// or unix://"
                ));
            }
            None => ("http", address),
        };
        let tls = scheme == "https" || force_tls;
        let rest = rest.trim_end_matches('/');
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("{address:?} names no host"));
        }
        let base = format!("{}://{rest}", if tls { "https" } else { "http" });
        reqwest::Url::parse(&base)
            .map_err(|e| format!("{address:?} is not a usable address: {e}"))?;
        Ok(Endpoint::Http { base, tls })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Http { base, .. } => f.write_str(base),
            Endpoint::Unix { path } => write!(f, "unix://{}", path.display()),
        }
    }
}

/// TLS settings for an https endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// A CA bundle to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A folder of CA certificates to trust.
    pub ca_path: Option<PathBuf>,
    /// Client certificate and key, for mutual TLS (both or neither).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The name to verify the server's certificate against, when not the address's host.
    pub server_name: Option<String>,
    /// Accept any server certificate (logged as a warning at start).
    pub skip_verify: bool,
}

/// `[consul]`, merged with the `CONSUL_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsulSettings {
    /// Where to reach Consul.
    pub endpoint: Endpoint,
    /// Where the ACL token (sent as `X-Consul-Token`) comes from; read by the commands
    /// that talk to Consul, so that a producer running `emit` never needs it.
    pub token: TokenSource,
    /// `?dc=`, sent only when configured.
    pub datacenter: Option<String>,
    /// `?ns=`, sent only when configured (a community-edition server refuses it).
    pub namespace: Option<String>,
    /// TLS settings (used for https endpoints).
    pub tls: TlsSettings,
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// How long one request may take, answer included.
    pub request_timeout: Duration,
}

/// `[delivery]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Operations per transaction: 1 to 128.
    pub max_batch_ops: NonZeroUsize,
    /// JSON body bytes per transaction, base64 growth included: 1 KiB to 512 KiB.
    pub max_batch_bytes: usize,
    /// How long a batch waits to fill when files trickle in.
    pub linger: Duration,
    /// The first back-off delay.
    pub retry_initial: Duration,
    /// The longest back-off delay.
    pub retry_max: Duration,
    /// How long a shutdown waits for the request in flight.
    pub shutdown_timeout: Duration,
}

/// The log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (journald-native under systemd).
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not a log format; use text or json")),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The most verbose level logged.
    pub level: tracing::Level,
    /// Text or JSON.
    pub format: LogFormat,
    /// How often the summary line is logged.
    pub stats_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self::resolve(RawConfig::default(), &Env::default(), &Overrides::default())
            .expect("the built-in defaults are valid")
    }
}

impl Config {
    /// Loads the configuration: the file at `path` (or [`DEFAULT_CONFIG_PATH`] when that
    /// exists, or nothing), merged with `env` and `overrides`.
    ///
    /// # Errors
    /// An unreadable or invalid file, an invalid setting.
    pub fn load(
        path: Option<&Path>,
        env: &Env,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let default = Path::new(DEFAULT_CONFIG_PATH);
        let path = match path {
            Some(path) => Some(path),
            None if default.exists() => Some(default),
            None => None,
        };
        let Some(path) = path else {
            return Self::resolve(RawConfig::default(), env, overrides);
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string(), env, overrides)
    }

    /// Parses TOML `text` (named `origin` in errors) and merges it.
    ///
    /// # Errors
    /// Invalid TOML, an unknown key, an invalid setting.
    pub fn from_toml(
        text: &str,
        origin: &str,
        env: &Env,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Self::resolve(raw, env, overrides)
    }

    fn resolve(raw: RawConfig, env: &Env, flags: &Overrides) -> Result<Self, ConfigError> {
        Ok(Self {
            spool: resolve_spool(raw.spool, flags)?,
            consul: resolve_consul(raw.consul, env, flags)?,
            delivery: resolve_delivery(raw.delivery)?,
            keys: resolve_keys(raw.keys)?,
            log: resolve_log(raw.log, flags)?,
        })
    }
}

fn positive(setting: &str, value: Duration) -> Result<Duration, ConfigError> {
    if value.is_zero() {
        return Err(invalid(setting, "must be longer than 0s"));
    }
    Ok(value)
}

fn resolve_spool(raw: RawSpool, flags: &Overrides) -> Result<SpoolSettings, ConfigError> {
    let dir = flags
        .spool_dir
        .clone()
        .or(raw.dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR));
    if dir.as_os_str().is_empty() {
        return Err(invalid("[spool] dir", "must name a folder"));
    }
    let max_file_bytes = raw.max_file_bytes.unwrap_or(8 * 1024 * 1024);
    if max_file_bytes == 0 {
        return Err(invalid("[spool] max_file_bytes", "must be at least 1"));
    }
    Ok(SpoolSettings {
        dir,
        settle: raw.settle.unwrap_or(Duration::from_secs(2)),
        max_file_bytes,
        rescan_interval: positive(
            "[spool] rescan_interval",
            raw.rescan_interval.unwrap_or(Duration::from_secs(60)),
        )?,
    })
}

/// A path setting: the empty string (the sample's way of saying "unset") is unset.
fn path_setting(value: Option<PathBuf>) -> Option<PathBuf> {
    value.filter(|p| !p.as_os_str().is_empty())
}

fn text_setting(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.trim().is_empty())
}

fn resolve_consul(
    raw: RawConsul,
    env: &Env,
    flags: &Overrides,
) -> Result<ConsulSettings, ConfigError> {
    let force_tls = env.bool("CONSUL_HTTP_SSL")?.unwrap_or(false);
    let (setting, address) = if let Some(a) = &flags.consul_address {
        ("--consul-addr", a.clone())
    } else if let Some(a) = env.get("CONSUL_HTTP_ADDR") {
        ("CONSUL_HTTP_ADDR", a.to_owned())
    } else if let Some(a) = text_setting(raw.address) {
        ("[consul] address", a)
    } else {
        ("[consul] address", DEFAULT_CONSUL_ADDRESS.to_owned())
    };
    let endpoint = Endpoint::parse(&address, force_tls).map_err(|p| invalid(setting, p))?;

    let token = token_source(
        path_setting(flags.token_file.clone().or(raw.token_file)),
        text_setting(raw.token),
        env,
    );

    let env_path = |name: &str| env.get(name).map(PathBuf::from);
    let client_cert = env_path("CONSUL_CLIENT_CERT").or(path_setting(raw.client_cert));
    let client_key = env_path("CONSUL_CLIENT_KEY").or(path_setting(raw.client_key));
    let client_cert = match (client_cert, client_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "[consul] client_cert / client_key",
                "both client cert and client key must be provided",
            ));
        }
    };
    let skip_verify = match env.bool("CONSUL_HTTP_SSL_VERIFY")? {
        Some(verify) => !verify,
        None => raw.tls_skip_verify.unwrap_or(false),
    };
    let server_name = env
        .get("CONSUL_TLS_SERVER_NAME")
        .map(str::to_owned)
        .or(text_setting(raw.tls_server_name))
        .map(|name| match name.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host.to_owned(),
            _ => name,
        });
    let tls = TlsSettings {
        ca_file: env_path("CONSUL_CACERT").or(path_setting(raw.ca_file)),
        ca_path: env_path("CONSUL_CAPATH").or(path_setting(raw.ca_path)),
        client_cert,
        server_name,
        skip_verify,
    };
    Ok(ConsulSettings {
        endpoint,
        token,
        datacenter: text_setting(raw.datacenter),
        namespace: env
            .get("CONSUL_NAMESPACE")
            .map(str::to_owned)
            .or(text_setting(raw.namespace)),
        tls,
        connect_timeout: positive(
            "[consul] connect_timeout",
            raw.connect_timeout.unwrap_or(Duration::from_secs(5)),
        )?,
        request_timeout: positive(
            "[consul] request_timeout",
            raw.request_timeout.unwrap_or(Duration::from_secs(10)),
        )?,
    })
}

/// Where the token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// No token: requests go out as the anonymous token.
    None,
    /// A token given as a value, with the setting it came from.
    Value {
        secret: Secret,
        origin: &'static str,
    },
    /// A file holding the token, read at start and on every reload.
    File(PathBuf),
}

impl TokenSource {
    /// The token: read from its file now, if it lives in one.
    ///
    /// # Errors
    /// The token file cannot be read.
    pub fn load(&self) -> Result<Option<Secret>, ConfigError> {
        match self {
            TokenSource::None => Ok(None),
            TokenSource::Value { secret, .. } => Ok(Some(secret.clone())),
            TokenSource::File(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFile {
                        path: path.clone(),
                        source,
                    })?;
                let token = text.trim();
                Ok((!token.is_empty()).then(|| Secret::new(token)))
            }
        }
    }

    /// Where the token comes from, for logs (never the token itself).
    pub fn origin(&self) -> String {
        match self {
            TokenSource::None => "no token".to_owned(),
            TokenSource::Value { origin, .. } => (*origin).to_owned(),
            TokenSource::File(path) => path.display().to_string(),
        }
    }
}

/// The token's source, by SPEC §5's order.
fn token_source(token_file: Option<PathBuf>, token: Option<String>, env: &Env) -> TokenSource {
    let value = |token: &str, origin| TokenSource::Value {
        secret: Secret::new(token.trim()),
        origin,
    };
    if let Some(path) = token_file {
        TokenSource::File(path)
    } else if let Some(token) = token {
        value(&token, "[consul] token")
    } else if let Some(path) = env.get("CONSUL_HTTP_TOKEN_FILE") {
        TokenSource::File(PathBuf::from(path))
    } else if let Some(token) = env.get("CONSUL_HTTP_TOKEN") {
        value(token, "CONSUL_HTTP_TOKEN")
    } else {
        env.get("CREDENTIALS_DIRECTORY")
            .map(|dir| Path::new(dir).join(TOKEN_CREDENTIAL))
            .filter(|path| path.exists())
            .map_or(TokenSource::None, TokenSource::File)
    }
}

fn resolve_delivery(raw: RawDelivery) -> Result<DeliverySettings, ConfigError> {
    let ops = raw.max_batch_ops.unwrap_or(64);
    let max_batch_ops = NonZeroUsize::new(ops)
        .filter(|n| n.get() <= CONSUL_MAX_TXN_OPS)
        .ok_or_else(|| {
            invalid(
                "[delivery] max_batch_ops",
                format!(
                    "{ops} is outside 1..={CONSUL_MAX_TXN_OPS} (Consul's limit per transaction)"
                ),
            )
        })?;
    let max_batch_bytes = raw.max_batch_bytes.unwrap_or(262_144);
    if !(1024..=CONSUL_MAX_TXN_BYTES).contains(&max_batch_bytes) {
        return Err(invalid(
            "[delivery] max_batch_bytes",
            format!(
                "{max_batch_bytes} is outside 1024..={CONSUL_MAX_TXN_BYTES} (Consul's body limit)"
            ),
        ));
    }
    let retry_initial = positive(
        "[delivery] retry_initial",
        raw.retry_initial.unwrap_or(Duration::from_secs(1)),
    )?;
    let retry_max = positive(
        "[delivery] retry_max",
        raw.retry_max.unwrap_or(Duration::from_secs(60)),
    )?;
    if retry_max < retry_initial {
        return Err(invalid(
            "[delivery] retry_max",
            "must not be shorter than retry_initial",
        ));
    }
    Ok(DeliverySettings {
        max_batch_ops,
        max_batch_bytes,
        linger: raw.linger.unwrap_or(Duration::from_millis(2)),
        retry_initial,
        retry_max,
        shutdown_timeout: raw.shutdown_timeout.unwrap_or(Duration::from_secs(10)),
    })
}

fn resolve_keys(raw: RawKeys) -> Result<KeyLayout, ConfigError> {
    let prefix = raw
        .prefix
        .unwrap_or_else(|| keys::DEFAULT_PREFIX.to_owned());
    let given = |family: Family| match family {
        Family::Deployment => raw.deployment.as_deref(),
        Family::Host => raw.host.as_deref(),
        Family::HostWorkflow => raw.host_workflow.as_deref(),
        Family::Vra => raw.vra.as_deref(),
        Family::App => raw.app.as_deref(),
    };
    KeyLayout::new(&prefix, |family| {
        given(family).unwrap_or_else(|| keys::default_template(family))
    })
    .map_err(|(family, e)| {
        let setting = family.map_or("prefix", Family::name);
        invalid(format!("[keys] {setting}"), e.to_string())
    })
}

fn resolve_log(raw: RawLog, flags: &Overrides) -> Result<LogSettings, ConfigError> {
    let (setting, level) = match (&flags.log_level, raw.level) {
        (Some(level), _) => ("--log-level", level.clone()),
        (None, Some(level)) => ("[log] level", level),
        (None, None) => ("[log] level", "info".to_owned()),
    };
    let level = tracing::Level::from_str(&level).map_err(|_| {
        invalid(
            setting,
            format!("{level:?} is not a level; use error, warn, info, debug or trace"),
        )
    })?;
    let (setting, format) = match (&flags.log_format, raw.format) {
        (Some(format), _) => ("--log-format", format.clone()),
        (None, Some(format)) => ("[log] format", format),
        (None, None) => ("[log] format", "text".to_owned()),
    };
    Ok(LogSettings {
        level,
        format: format.parse().map_err(|p: String| invalid(setting, p))?,
        stats_interval: positive(
            "[log] stats_interval",
            raw.stats_interval.unwrap_or(Duration::from_secs(300)),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)], flags: &Overrides) -> Result<Config, ConfigError> {
        Config::from_toml(
            text,
            "test.toml",
            &Env::from_pairs(env.iter().copied()),
            flags,
        )
    }

    #[test]
    fn the_sample_file_is_exactly_the_defaults() {
        let sample = include_str!("../config/cndspool.toml");
        assert_eq!(
            load(sample, &[], &Overrides::default()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn the_sample_file_documents_every_key() {
        let sample: toml::Table = toml::from_str(include_str!("../config/cndspool.toml")).unwrap();
        let keys = |section: &str| -> Vec<&str> {
            let mut keys: Vec<_> = sample[section]
                .as_table()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            keys
        };
        assert_eq!(
            keys("spool"),
            ["dir", "max_file_bytes", "rescan_interval", "settle"]
        );
        assert_eq!(
            keys("consul"),
            [
                "address",
                "ca_file",
                "ca_path",
                "client_cert",
                "client_key",
                "connect_timeout",
                "datacenter",
                "namespace",
                "request_timeout",
                "tls_server_name",
                "tls_skip_verify",
                "token",
                "token_file"
            ]
        );
        assert_eq!(
            keys("delivery"),
            [
                "linger",
                "max_batch_bytes",
                "max_batch_ops",
                "retry_initial",
                "retry_max",
                "shutdown_timeout"
            ]
        );
        assert_eq!(
            keys("keys"),
            [
                "app",
                "deployment",
                "host",
                "host_workflow",
                "prefix",
                "vra"
            ]
        );
        assert_eq!(keys("log"), ["format", "level", "stats_interval"]);
        assert_eq!(sample.len(), 5);
        // Every documented key is one the parser knows: an unknown one would fail to load.
        assert!(
            load(
                include_str!("../config/cndspool.toml"),
                &[],
                &Overrides::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c.spool.dir, PathBuf::from("/var/spool/cndspool"));
        assert_eq!(c.spool.settle, Duration::from_secs(2));
        assert_eq!(
            c.consul.endpoint,
            Endpoint::Http {
                base: "http://127.0.0.1:8500".into(),
                tls: false
            }
        );
        assert_eq!(c.delivery.max_batch_ops.get(), 64);
        assert_eq!(c.delivery.linger, Duration::from_millis(2));
        assert_eq!(c.log.stats_interval, Duration::from_secs(300));
        assert_eq!(c.consul.token, TokenSource::None);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load(
            "[delivery]\nmax_batch_opps = 3\n",
            &[],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("max_batch_opps"), "{err}");
        let err = load("[consol]\n", &[], &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("consol"), "{err}");
    }

    #[test]
    fn invalid_values_are_named() {
        for (text, needle) in [
            (
                "[delivery]\nmax_batch_ops = 129",
                "[delivery] max_batch_ops",
            ),
            ("[delivery]\nmax_batch_ops = 0", "[delivery] max_batch_ops"),
            (
                "[delivery]\nmax_batch_bytes = 600000",
                "[delivery] max_batch_bytes",
            ),
            (
                "[delivery]\nretry_initial = \"2m\"\nretry_max = \"1m\"",
                "retry_max",
            ),
            ("[spool]\nsettle = \"two seconds\"", "settle"),
            ("[keys]\nvra = \"{prefix}/{sauce}\"", "[keys] vra"),
            ("[keys]\nprefix = \"/abs\"", "[keys] prefix"),
            ("[consul]\naddress = \"ftp://x\"", "[consul] address"),
            ("[consul]\nclient_cert = \"/c.pem\"", "client key"),
            ("[log]\nlevel = \"loud\"", "[log] level"),
            ("[log]\nformat = \"xml\"", "[log] format"),
        ] {
            let err = load(text, &[], &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let file = "[consul]\naddress = \"file:1\"\n[spool]\ndir = \"/from/file\"";
        let c = load(file, &[], &Overrides::default()).unwrap();
        assert_eq!(c.consul.endpoint.to_string(), "http://file:1");
        let env = [("CONSUL_HTTP_ADDR", "https://env:2")];
        let c = load(file, &env, &Overrides::default()).unwrap();
        assert_eq!(
            c.consul.endpoint,
            Endpoint::Http {
                base: "https://env:2".into(),
                tls: true
            }
        );
        let flags = Overrides {
            consul_address: Some("unix:///run/consul.sock".into()),
            spool_dir: Some("/from/flag".into()),
            ..Overrides::default()
        };
        let c = load(file, &env, &flags).unwrap();
        assert_eq!(
            c.consul.endpoint,
            Endpoint::Unix {
                path: "/run/consul.sock".into()
            }
        );
        assert_eq!(c.spool.dir, PathBuf::from("/from/flag"));
        let c = load(
            "",
            &[("CONSUL_HTTP_ADDR", "h:1"), ("CONSUL_HTTP_SSL", "true")],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.consul.endpoint.to_string(), "https://h:1");
        let err = load(
            "",
            &[("CONSUL_HTTP_SSL_VERIFY", "nope")],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("CONSUL_HTTP_SSL_VERIFY"), "{err}");
        let c = load(
            "",
            &[
                ("CONSUL_HTTP_SSL_VERIFY", "0"),
                ("CONSUL_TLS_SERVER_NAME", "consul.local:8501"),
            ],
            &Overrides::default(),
        )
        .unwrap();
        assert!(c.consul.tls.skip_verify);
        assert_eq!(c.consul.tls.server_name.as_deref(), Some("consul.local"));
    }

    #[test]
    fn token_order_and_redaction() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tok");
        std::fs::write(&file, "from-file\n").unwrap();
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        std::fs::write(creds.join(TOKEN_CREDENTIAL), "from-credential").unwrap();
        let creds = creds.to_str().unwrap();
        let file_s = file.to_str().unwrap();
        let none = Overrides::default();
        let token = |text: &str, env: &[(&str, &str)], flags: &Overrides| {
            let source = load(text, env, flags).unwrap().consul.token;
            source.load().unwrap().map(|t| t.expose().to_owned())
        };
        assert_eq!(
            token("", &[("CREDENTIALS_DIRECTORY", creds)], &none).as_deref(),
            Some("from-credential")
        );
        let env = [
            ("CREDENTIALS_DIRECTORY", creds),
            ("CONSUL_HTTP_TOKEN", "from-env"),
        ];
        assert_eq!(token("", &env, &none).as_deref(), Some("from-env"));
        let env = [
            ("CONSUL_HTTP_TOKEN_FILE", file_s),
            ("CONSUL_HTTP_TOKEN", "from-env"),
        ];
        assert_eq!(token("", &env, &none).as_deref(), Some("from-file"));
        assert_eq!(
            token("[consul]\ntoken = \"from-config\"", &env, &none).as_deref(),
            Some("from-config")
        );
        let flags = Overrides {
            token_file: Some(file.clone()),
            ..Overrides::default()
        };
        assert_eq!(
            token("[consul]\ntoken = \"from-config\"", &env, &flags).as_deref(),
            Some("from-file")
        );

        let c = load("[consul]\ntoken = \"s3cr3t-t0ken\"", &[], &none).unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t-t0ken"));
        let missing = dir.path().join("missing");
        let flags = Overrides {
            token_file: Some(missing),
            ..Overrides::default()
        };
        let err = load("", &[], &flags)
            .unwrap()
            .consul
            .token
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("token file"), "{err}");
    }
}
