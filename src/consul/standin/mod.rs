//! An in-memory stand-in for the part of Consul's HTTP API cndspool uses (SPEC §8).
//!
//! Real Consul cannot be installed where this project is built and tested, so this
//! stand-in carries the tests, the benchmarks and the demo. It follows consul-api.md:
//! KV reads and writes with Consul's JSON shapes, indexes and headers; transactions with
//! Consul's limits, texts and atomic roll-back; ACL tokens; Go's path rules. Tests drive
//! its faults: refused connections ([`DevConsul::stop`] / [`DevConsul::resume`], data
//! kept), no leader, leadership lost after applying, rate limits, slowness, cut
//! connections. It is not Consul: nothing is persisted, there are no sessions, no
//! blocking queries (an `?index` read answers at once, which Consul also may).

mod http;
mod store;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

pub use self::http::MAX_VALUE_BYTES;
use self::store::Store;

/// What the stand-in says about itself when it starts.
pub const BANNER: &str = "cndspool dev-consul: an in-memory stand-in for Consul's KV API, for development and tests. It is not Consul: nothing is persisted.";

/// A fault the stand-in injects into the requests it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// KV and transactions answer 500 `No cluster leader`; the leader endpoint `""`.
    NoLeader,
    /// Writes are applied, then answered 500 `leadership lost while committing log`.
    LeadershipLost,
    /// KV and transactions answer 429 with an empty body (the agent's RPC rate limit).
    RateLimited,
    /// KV and transactions answer 503 `rate limit exceeded, try again later`.
    Unavailable,
    /// Every answer is delayed.
    Slow(Duration),
    /// Every connection is closed without an answer, mid-request.
    CutConnection,
}

#[derive(Debug, Clone, Copy)]
struct FaultPlan {
    fault: Fault,
    /// How many more requests it applies to; `None` until cleared.
    remaining: Option<u64>,
}

/// Request counters, for tests and benchmarks.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    txns: AtomicU64,
    operations: AtomicU64,
    writes: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// HTTP requests received.
    pub requests: u64,
    /// Transactions decoded and evaluated.
    pub txns: u64,
    /// Operations in those transactions.
    pub operations: u64,
    /// Keys written by committed transactions and plain PUTs.
    pub writes: u64,
}

/// ACL mode: one token that may write everything but the denied prefixes.
#[derive(Debug, Clone)]
struct Acl {
    token: String,
    accessor: String,
    deny_write: Vec<String>,
}

/// State shared by every connection.
#[derive(Debug)]
struct Shared {
    store: Mutex<Store>,
    acl: Mutex<Option<Acl>>,
    fault: Mutex<Option<FaultPlan>>,
    counters: Counters,
    max_txn_ops: AtomicUsize,
    /// The Raft applier, when writes have a commit latency.
    raft: Option<Raft>,
    /// Consul 1.21.5's key regex, answered with a 500.
    key_regex_500: bool,
}

/// A model of Raft's write path: one apply at a time, each taking the commit latency, and
/// every write that arrived during an apply committed together in the next one (Raft
/// batches concurrent log entries). A real server appends and fsyncs; without this the
/// stand-in commits for free.
#[derive(Debug)]
struct Raft {
    requests: std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
}

impl Raft {
    fn start(latency: Duration) -> Self {
        let (requests, pending) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>();
        std::thread::Builder::new()
            .name("dev-consul-raft".to_owned())
            .spawn(move || {
                while let Ok(first) = pending.recv() {
                    let batch: Vec<_> = std::iter::once(first).chain(pending.try_iter()).collect();
                    // A thread's sleep, not tokio's: its timer rounds up to whole ms.
                    std::thread::sleep(latency);
                    for waiter in batch {
                        let _ = waiter.send(());
                    }
                }
            })
            .expect("a thread starts");
        Self { requests }
    }
}

impl Shared {
    /// Waits for the Raft apply that commits this write (at once without a latency).
    async fn commit(&self) {
        if let Some(raft) = &self.raft {
            let (done, committed) = tokio::sync::oneshot::channel();
            if raft.requests.send(done).is_ok() {
                let _ = committed.await;
            }
        }
    }

    /// The fault for this request, if one is planned and `applies` to it.
    fn take_fault(&self, applies: impl Fn(Fault) -> bool) -> Option<Fault> {
        let mut plan = self.fault.lock().expect("fault lock");
        let current = (*plan)?;
        if !applies(current.fault) {
            return None;
        }
        match current.remaining {
            Some(0) => {
                *plan = None;
                None
            }
            Some(n) => {
                *plan = (n > 1).then_some(FaultPlan {
                    remaining: Some(n - 1),
                    ..current
                });
                Some(current.fault)
            }
            None => Some(current.fault),
        }
    }
}

/// Where the stand-in listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address; port 0 picks a free one (kept across stop and resume).
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix://") {
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        let s = s.strip_prefix("http://").unwrap_or(s);
        s.parse()
            .map(Listen::Tcp)
            .map_err(|_| format!("{s:?} is not an address; use 127.0.0.1:8500 or unix:///path"))
    }
}

/// TLS for the stand-in's listener (PEM text).
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The server's certificate chain.
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca_pem: Option<String>,
}

/// Options for starting the stand-in.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen.
    pub listen: Listen,
    /// ACL mode with this token when set.
    pub token: Option<String>,
    /// The transaction operation cap: 128 (Consul ≥ 1.14) or 64.
    pub max_txn_ops: usize,
    /// How long each Raft apply takes (writes arriving meanwhile commit together in the
    /// next one); zero by default: the stand-in then answers at once.
    pub commit_latency: Duration,
    /// Serve HTTPS instead of HTTP.
    pub tls: Option<TlsOptions>,
    /// Refuse keys outside `[A-Za-z0-9,_./\-?&=]` with a 500, as Consul 1.21.5 did.
    pub key_regex_500: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            token: None,
            max_txn_ops: 128,
            commit_latency: Duration::ZERO,
            tls: None,
            key_regex_500: false,
        }
    }
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// A bound TCP or Unix listener.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Listener {
    async fn accept(&self) -> io::Result<Either<tokio::net::TcpStream, tokio::net::UnixStream>> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok(Either::Left(stream))
            }
            Listener::Unix(listener) => Ok(Either::Right(listener.accept().await?.0)),
        }
    }
}

/// A running stand-in. Dropping it stops it.
pub struct DevConsul {
    shared: Arc<Shared>,
    listen: Listen,
    tls: Option<tokio_rustls::TlsAcceptor>,
    running: Mutex<Option<Running>>,
}

impl DevConsul {
    /// Starts listening on the current tokio runtime.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn start(options: Options) -> io::Result<Self> {
        let acl = options.token.map(|token| Acl {
            token,
            accessor: "5a6b2d3c-0000-4000-8000-00000000c0de".to_owned(),
            deny_write: Vec::new(),
        });
        let shared = Arc::new(Shared {
            store: Mutex::default(),
            acl: Mutex::new(acl),
            fault: Mutex::default(),
            counters: Counters::default(),
            max_txn_ops: AtomicUsize::new(options.max_txn_ops),
            raft: (!options.commit_latency.is_zero()).then(|| Raft::start(options.commit_latency)),
            key_regex_500: options.key_regex_500,
        });
        let tls = options.tls.as_ref().map(acceptor).transpose()?;
        let mut consul = Self {
            shared,
            listen: options.listen,
            tls,
            running: Mutex::default(),
        };
        consul.listen = consul.bind().await?;
        Ok(consul)
    }

    /// Binds the address and spawns the accept loop; returns the bound address.
    async fn bind(&self) -> io::Result<Listen> {
        let (listener, bound) = match &self.listen {
            Listen::Tcp(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let bound = Listen::Tcp(listener.local_addr()?);
                (Listener::Tcp(listener), bound)
            }
            Listen::Unix(path) => {
                let _ = std::fs::remove_file(path);
                let listener = tokio::net::UnixListener::bind(path)?;
                (Listener::Unix(listener), self.listen.clone())
            }
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (shared, stop, tls) = (self.shared.clone(), stop.clone(), self.tls.clone());
            async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        accepted = listener.accept() => match (accepted, &tls) {
                            (Ok(stream), None) => serve(stream, shared.clone(), stop.clone()),
                            (Ok(stream), Some(tls)) => {
                                let (tls, shared, stop) = (tls.clone(), shared.clone(), stop.clone());
                                tokio::spawn(async move {
                                    // A failed handshake is the client's problem to report.
                                    if let Ok(stream) = tls.accept(stream).await {
                                        serve(stream, shared, stop);
                                    }
                                });
                            }
                            (Err(_), _) => tokio::time::sleep(Duration::from_millis(10)).await,
                        },
                    }
                }
            }
        });
        *self.running.lock().expect("running lock") = Some(Running { stop, task });
        Ok(bound)
    }

    /// Where it listens, as a Consul address (`http://127.0.0.1:PORT`, `unix:///path`).
    pub fn address(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        match &self.listen {
            Listen::Tcp(addr) => format!("{scheme}://{addr}"),
            Listen::Unix(path) => format!("unix://{}", path.display()),
        }
    }

    /// Stops listening and cuts every open connection: connections are then refused.
    /// The data is kept.
    pub async fn stop(&self) {
        let running = self.running.lock().expect("running lock").take();
        if let Some(running) = running {
            running.stop.cancel();
            let _ = running.task.await;
        }
    }

    /// Listens again on the same address after [`DevConsul::stop`].
    ///
    /// # Errors
    /// The address cannot be bound again.
    pub async fn resume(&self) -> io::Result<()> {
        if self.running.lock().expect("running lock").is_some() {
            return Ok(());
        }
        self.bind().await.map(|_| ())
    }

    /// Injects `fault` into the next `times` requests it applies to (`None`: until cleared).
    pub fn set_fault(&self, fault: Fault, times: Option<u64>) {
        *self.shared.fault.lock().expect("fault lock") = Some(FaultPlan {
            fault,
            remaining: times,
        });
    }

    /// Stops injecting faults.
    pub fn clear_fault(&self) {
        *self.shared.fault.lock().expect("fault lock") = None;
    }

    /// Denies the ACL token writes under `prefix` (403 on KV, 409 in a transaction).
    pub fn deny_writes(&self, prefix: &str) {
        if let Some(acl) = self.shared.acl.lock().expect("acl lock").as_mut() {
            acl.deny_write.push(prefix.to_owned());
        }
    }

    /// Allows every write again.
    pub fn allow_all_writes(&self) {
        if let Some(acl) = self.shared.acl.lock().expect("acl lock").as_mut() {
            acl.deny_write.clear();
        }
    }

    /// Sets the transaction operation cap (128, or 64 to mimic Consul before 1.14).
    pub fn set_max_txn_ops(&self, max: usize) {
        self.shared.max_txn_ops.store(max, Ordering::Relaxed);
    }

    /// The counters so far.
    pub fn counts(&self) -> Counts {
        let c = &self.shared.counters;
        Counts {
            requests: c.requests.load(Ordering::Relaxed),
            txns: c.txns.load(Ordering::Relaxed),
            operations: c.operations.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
        }
    }

    /// One key's value, read directly.
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        let store = self.shared.store.lock().expect("store lock");
        store.get(key).map(|e| e.bytes().to_vec())
    }
}

impl Drop for DevConsul {
    fn drop(&mut self) {
        if let Some(running) = self.running.get_mut().ok().and_then(Option::take) {
            running.stop.cancel();
        }
    }
}

/// A TLS acceptor for `tls`, on the *ring* provider.
fn acceptor(tls: &TlsOptions) -> io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("the TLS certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|e| invalid("the TLS key", &e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS", &e))?;
    let builder = match &tls.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots
                    .add(cert.map_err(|e| invalid("the client CA", &e))?)
                    .map_err(|e| invalid("the client CA", &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| invalid("the client CA", &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid("the TLS certificate", &e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves one connection until it ends or the stand-in stops (then the socket is closed
/// without ceremony, as a crashed agent's would be).
fn serve<S>(stream: S, shared: Arc<Shared>, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |request| http::handle(shared.clone(), request));
        let connection = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        tokio::select! {
            _ = connection => {}
            () = stop.cancelled() => {}
        }
    });
}
