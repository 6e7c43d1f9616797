//! The stand-in's HTTP surface: routing, Consul's path rules, ACLs, limits with Consul's
//! texts, strict transaction decoding, and injected faults (consul-api.md §1–§5, §8).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

use super::store::Op;
use super::{Fault, Shared};
use crate::consul::client::encode_segments;
use crate::consul::wire::{KvEntry, TxnOpError, TxnResult, decode_base64};

/// Consul's default `kv_max_value_size` and `txn_max_req_len`.
pub const MAX_VALUE_BYTES: usize = 524_288;
const KV_LIMIT_LINK: &str =
    "https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size";
const TXN_LIMIT_LINK: &str = "https://www.consul.io/docs/agent/config/config-files#txn_max_req_len";
const LEADER: &str = "127.0.0.1:8300";
const DATACENTER: &str = "dc1";

/// The service's error: hyper closes the connection without an answer (a cut).
#[derive(Debug)]
pub struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection cut by an injected fault")
    }
}

impl std::error::Error for Cut {}

type Reply = Response<Full<Bytes>>;

/// An answer that ends a request early (boxed: a `Response` is large).
type Refusal = Box<Reply>;

/// The endpoints, for routing and fault scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Kv,
    Txn,
    Leader,
    Other,
}

/// Handles one request.
pub async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Reply, Cut> {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let decoded = percent_decode_str(request.uri().path())
        .decode_utf8_lossy()
        .into_owned();
    let route = if decoded.starts_with("/v1/kv/") {
        Route::Kv
    } else if decoded == "/v1/txn" {
        Route::Txn
    } else if decoded == "/v1/status/leader" {
        Route::Leader
    } else {
        Route::Other
    };
    let writes = request.method() != Method::GET;
    let fault = shared.take_fault(|fault| match fault {
        Fault::Slow(_) | Fault::CutConnection => true,
        Fault::NoLeader | Fault::RateLimited | Fault::Unavailable => route != Route::Other,
        Fault::LeadershipLost => writes && matches!(route, Route::Kv | Route::Txn),
    });
    if let Some(Fault::Slow(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    if fault == Some(Fault::CutConnection) {
        return Err(Cut);
    }
    let mut reply = respond(&shared, request, decoded, route, fault).await;
    let acl = if shared.acl.lock().expect("acl lock").is_some() {
        "deny"
    } else {
        "allow"
    };
    let headers = reply.headers_mut();
    headers.insert("X-Consul-Default-Acl-Policy", HeaderValue::from_static(acl));
    headers.insert("Vary", HeaderValue::from_static("Accept-Encoding"));
    Ok(reply)
}

async fn respond(
    shared: &Shared,
    request: Request<Incoming>,
    decoded: String,
    route: Route,
    fault: Option<Fault>,
) -> Reply {
    // Go's printable-path filter, then ServeMux's canonicalisation.
    if decoded.chars().any(|c| !crate::keys::is_printable(c)) {
        return text(StatusCode::BAD_REQUEST, "");
    }
    let clean = clean_path(&decoded);
    if clean != decoded {
        let mut location = encode_segments(&clean);
        if let Some(query) = request.uri().query() {
            location = format!("{location}?{query}");
        }
        let mut reply = text(
            StatusCode::MOVED_PERMANENTLY,
            "<a href=\"\">Moved Permanently</a>.\n",
        );
        reply.headers_mut().insert("Location", header(&location));
        return reply;
    }
    let allowed: &str = match route {
        Route::Kv => "OPTIONS,GET,PUT,DELETE",
        Route::Txn => "OPTIONS,PUT",
        Route::Leader => "OPTIONS,GET",
        Route::Other if decoded.starts_with("/v1/") => {
            return text(
                StatusCode::NOT_FOUND,
                "Invalid URL path: not a recognized HTTP API endpoint\n",
            );
        }
        Route::Other => return text(StatusCode::NOT_FOUND, "404 page not found\n"),
    };
    let method = request.method().clone();
    if method == Method::OPTIONS || !allowed.split(',').any(|m| m == method.as_str()) {
        let status = if method == Method::OPTIONS {
            StatusCode::OK
        } else {
            StatusCode::METHOD_NOT_ALLOWED
        };
        let body = if method == Method::OPTIONS {
            String::new()
        } else {
            format!("method {method} not allowed")
        };
        let mut reply = text(status, &body);
        reply.headers_mut().insert("Allow", header(allowed));
        return reply;
    }
    let query = Query::parse(request.uri().query().unwrap_or(""));
    if let Some(ns) = query.get("ns").filter(|ns| !ns.is_empty()) {
        let _ = ns;
        return text(
            StatusCode::BAD_REQUEST,
            "Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature",
        );
    }
    if query
        .get("dc")
        .is_some_and(|dc| !dc.is_empty() && dc != DATACENTER)
    {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter");
    }
    if route == Route::Leader {
        let leader = if fault == Some(Fault::NoLeader) {
            ""
        } else {
            LEADER
        };
        return json_reply(
            StatusCode::OK,
            serde_json::to_vec(leader).expect("a string"),
        );
    }
    let caller = match shared.caller(&request, &query) {
        Ok(caller) => caller,
        Err(reply) => return *reply,
    };
    match fault {
        Some(Fault::NoLeader) => {
            return text(StatusCode::INTERNAL_SERVER_ERROR, "No cluster leader");
        }
        Some(Fault::RateLimited) => return text(StatusCode::TOO_MANY_REQUESTS, ""),
        Some(Fault::Unavailable) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "rate limit exceeded, try again later",
            );
        }
        _ => {}
    }
    if shared.key_regex_500 && route == Route::Kv && !regex_key(&decoded["/v1/kv/".len()..]) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, KEY_REGEX_ERROR);
    }
    let lost = fault == Some(Fault::LeadershipLost);
    let reply = match route {
        Route::Kv => {
            let key = decoded["/v1/kv/".len()..].to_owned();
            match method {
                Method::GET => kv_get(shared, &caller, &key, &query),
                Method::PUT => kv_put(shared, &caller, &key, &query, request).await,
                _ => kv_delete(shared, &caller, &key, &query).await,
            }
        }
        _ => txn(shared, &caller, request).await,
    };
    if lost && reply.status() == StatusCode::OK {
        // The write was applied; the answer says otherwise (consul#2893).
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "leadership lost while committing log",
        );
    }
    reply
}

/// Who is calling, as far as ACLs go.
pub enum Caller {
    /// ACLs are off: everything is allowed.
    Anyone,
    /// No token in ACL mode.
    Anonymous,
    /// The configured token, with its write denials.
    Token {
        accessor: String,
        deny_write: Vec<String>,
    },
}

impl Caller {
    fn write_denied(&self, key: &str) -> Option<String> {
        match self {
            Caller::Anyone => None,
            Caller::Anonymous => Some(format!(
                "Permission denied: anonymous token lacks permission 'key:write' on \"{key}\". The anonymous token is used implicitly when a request does not specify a token."
            )),
            Caller::Token { accessor, deny_write } => deny_write
                .iter()
                .any(|prefix| key.starts_with(prefix.as_str()))
                .then(|| {
                    format!(
                        "Permission denied: token with AccessorID '{accessor}' lacks permission 'key:write' on \"{key}\""
                    )
                }),
        }
    }

    fn can_read(&self) -> bool {
        !matches!(self, Caller::Anonymous)
    }
}

impl Shared {
    /// Resolves the request's token: `?token`, `X-Consul-Token`, `Authorization: Bearer`.
    fn caller(&self, request: &Request<Incoming>, query: &Query) -> Result<Caller, Refusal> {
        let acl = self.acl.lock().expect("acl lock");
        let Some(acl) = acl.as_ref() else {
            return Ok(Caller::Anyone);
        };
        let headers = request.headers();
        let bearer = headers
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .and_then(|(_, rest)| rest.split_whitespace().next());
        let token = query
            .get("token")
            .or_else(|| headers.get("X-Consul-Token").and_then(|v| v.to_str().ok()))
            .or(bearer)
            .filter(|t| !t.is_empty());
        match token {
            None => Ok(Caller::Anonymous),
            Some(token) if token == acl.token => Ok(Caller::Token {
                accessor: acl.accessor.clone(),
                deny_write: acl.deny_write.clone(),
            }),
            Some(_) => Err(Box::new(text(StatusCode::FORBIDDEN, "ACL not found"))),
        }
    }
}

fn kv_get(shared: &Shared, caller: &Caller, key: &str, query: &Query) -> Reply {
    let recurse = query.has("recurse");
    let keys = query.has("keys");
    if key.is_empty() && !recurse && !keys {
        return text(StatusCode::BAD_REQUEST, "Missing key name");
    }
    if query.has("stale") && query.has("consistent") {
        return text(
            StatusCode::BAD_REQUEST,
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        );
    }
    let store = shared.store.lock().expect("store lock");
    let index = store.read_index(key, recurse || keys);
    let mut reply = if keys {
        let separator = query.get("separator").or_else(|| query.get("seperator"));
        let found = if caller.can_read() {
            store.keys(key, separator)
        } else {
            Vec::new()
        };
        if found.is_empty() && !key.is_empty() {
            text(StatusCode::NOT_FOUND, "")
        } else {
            json_reply(StatusCode::OK, serde_json::to_vec(&found).expect("strings"))
        }
    } else if recurse {
        let found = if caller.can_read() {
            store.list(key)
        } else {
            Vec::new()
        };
        if found.is_empty() {
            text(StatusCode::NOT_FOUND, "")
        } else {
            json_reply(StatusCode::OK, serde_json::to_vec(&found).expect("entries"))
        }
    } else if !caller.can_read() {
        text(
            StatusCode::FORBIDDEN,
            &format!(
                "Permission denied: anonymous token lacks permission 'key:read' on \"{key}\". The anonymous token is used implicitly when a request does not specify a token."
            ),
        )
    } else {
        match store.get(key) {
            None => text(StatusCode::NOT_FOUND, ""),
            Some(entry) if query.has("raw") => raw_reply(entry),
            Some(entry) => json_reply(StatusCode::OK, serde_json::to_vec(&[entry]).expect("entry")),
        }
    };
    let headers = reply.headers_mut();
    headers.insert("X-Consul-Index", header(&index.to_string()));
    headers.insert("X-Consul-Knownleader", HeaderValue::from_static("true"));
    headers.insert("X-Consul-Lastcontact", HeaderValue::from_static("0"));
    reply
}

fn raw_reply(entry: KvEntry) -> Reply {
    let body = entry.value.unwrap_or_default();
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "Content-Security-Policy",
        HeaderValue::from_static("sandbox"),
    );
    reply
}

fn parse_u64(query: &Query, name: &str) -> Result<Option<u64>, Refusal> {
    match query.get(name) {
        None => Ok(None),
        Some(text_value) => text_value.parse().map(Some).map_err(|_| {
            Box::new(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("strconv.ParseUint: parsing {text_value:?}: invalid syntax"),
            ))
        }),
    }
}

fn conflicting(query: &Query) -> Reply {
    text(
        StatusCode::BAD_REQUEST,
        &format!("Conflicting flags: {}", query.raw),
    )
}

async fn kv_put(
    shared: &Shared,
    caller: &Caller,
    key: &str,
    query: &Query,
    request: Request<Incoming>,
) -> Reply {
    if key.is_empty() {
        return text(StatusCode::BAD_REQUEST, "Missing key name");
    }
    let lock_flags = ["cas", "acquire", "release"]
        .iter()
        .filter(|f| query.has(f))
        .count();
    if lock_flags > 1 {
        return conflicting(query);
    }
    let (flags, cas) = match (parse_u64(query, "flags"), parse_u64(query, "cas")) {
        (Ok(flags), Ok(cas)) => (flags.unwrap_or(0), cas),
        (Err(reply), _) | (_, Err(reply)) => return *reply,
    };
    let too_large = |n: usize| {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Request body({n} bytes) too large, max size: {MAX_VALUE_BYTES} bytes. See {KV_LIMIT_LINK}"
            ),
        )
    };
    if let Some(declared) = content_length(&request).filter(|n| *n > MAX_VALUE_BYTES) {
        return too_large(declared);
    }
    let body = match Limited::new(request.into_body(), MAX_VALUE_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return too_large(MAX_VALUE_BYTES + 1),
    };
    if let Some(session) = query.get("acquire").or_else(|| query.get("release")) {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("invalid session \"{session}\""),
        );
    }
    if let Some(denied) = caller.write_denied(key) {
        return text(StatusCode::FORBIDDEN, &denied);
    }
    shared.commit().await;
    let written = shared
        .store
        .lock()
        .expect("store lock")
        .put(key, body.to_vec(), flags, cas);
    if written {
        shared.counters.writes.fetch_add(1, Ordering::Relaxed);
    }
    json_reply(
        StatusCode::OK,
        if written {
            b"true".to_vec()
        } else {
            b"false".to_vec()
        },
    )
}

async fn kv_delete(shared: &Shared, caller: &Caller, key: &str, query: &Query) -> Reply {
    let recurse = query.has("recurse");
    if key.is_empty() && !recurse {
        return text(StatusCode::BAD_REQUEST, "Missing key name");
    }
    if recurse && query.has("cas") {
        return conflicting(query);
    }
    let cas = match parse_u64(query, "cas") {
        Ok(cas) => cas,
        Err(reply) => return *reply,
    };
    if let Some(denied) = caller.write_denied(key) {
        return text(StatusCode::FORBIDDEN, &denied);
    }
    shared.commit().await;
    let deleted = shared
        .store
        .lock()
        .expect("store lock")
        .delete(key, recurse, cas);
    json_reply(
        StatusCode::OK,
        if deleted {
            b"true".to_vec()
        } else {
            b"false".to_vec()
        },
    )
}

async fn txn(shared: &Shared, caller: &Caller, request: Request<Incoming>) -> Reply {
    if let Some(declared) = content_length(&request).filter(|n| *n > MAX_VALUE_BYTES) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Request body({declared} bytes) too large, max size: {MAX_VALUE_BYTES} bytes. See {TXN_LIMIT_LINK}."
            ),
        );
    }
    let body = match Limited::new(request.into_body(), MAX_VALUE_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "Request body too large, max size: {MAX_VALUE_BYTES} bytes. See {TXN_LIMIT_LINK}."
                ),
            );
        }
    };
    let ops = match decode_txn(&body) {
        Ok(ops) => ops,
        Err(problem) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Failed to parse body: {problem}"),
            );
        }
    };
    let max_ops = shared.max_txn_ops.load(Ordering::Relaxed);
    if ops.len() > max_ops {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Transaction contains too many operations ({} > {max_ops})",
                ops.len()
            ),
        );
    }
    if let Some(op) = ops.iter().find(|op| op.value.len() > MAX_VALUE_BYTES) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Value for key \"{}\" is too large ({} > {MAX_VALUE_BYTES} bytes)",
                op.key,
                op.value.len()
            ),
        );
    }
    if shared.key_regex_500 && ops.iter().any(|op| !regex_key(&op.key)) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, KEY_REGEX_ERROR);
    }
    shared.counters.txns.fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .operations
        .fetch_add(ops.len() as u64, Ordering::Relaxed);
    let denied = |i: usize| {
        let op: &Op = &ops[i];
        if op.is_write() {
            caller.write_denied(&op.key)
        } else {
            None
        }
    };
    if ops.iter().any(Op::is_write) {
        shared.commit().await;
    }
    let outcome = shared.store.lock().expect("store lock").txn(&ops, &denied);
    match outcome {
        Ok(entries) => {
            let sets = ops
                .iter()
                .filter(|op| op.verb == "set" || op.verb == "cas")
                .count();
            shared
                .counters
                .writes
                .fetch_add(sets as u64, Ordering::Relaxed);
            let results: Vec<TxnResult> = entries
                .into_iter()
                .filter(|_| caller.can_read())
                .map(|kv| TxnResult { kv })
                .collect();
            let body = json!({"Results": results, "Errors": null});
            json_reply(StatusCode::OK, serde_json::to_vec(&body).expect("json"))
        }
        Err(errors) => {
            let errors: Vec<TxnOpError> = errors
                .into_iter()
                .map(|(op_index, what)| TxnOpError { op_index, what })
                .collect();
            let body = json!({"Results": null, "Errors": errors});
            json_reply(
                StatusCode::CONFLICT,
                serde_json::to_vec(&body).expect("json"),
            )
        }
    }
}

/// Decodes a transaction body as Go's `encoding/json` would with unknown fields
/// disallowed and field names matched case-insensitively.
fn decode_txn(body: &[u8]) -> Result<Vec<Op>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Array(items) = value else {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type structs.TxnOps",
            go_type(&value)
        ));
    };
    items.iter().map(decode_op).collect()
}

fn decode_op(item: &Value) -> Result<Op, String> {
    let Value::Object(fields) = item else {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type structs.TxnOp",
            go_type(item)
        ));
    };
    let mut kv = None;
    for (name, value) in fields {
        match name.to_ascii_lowercase().as_str() {
            "kv" => kv = Some(value),
            "node" | "service" | "check" => {
                return Err(format!(
                    "the stand-in supports KV operations only, not {name:?}"
                ));
            }
            _ => return Err(format!("json: unknown field {name:?}")),
        }
    }
    let Some(Value::Object(kv)) = kv else {
        return Err("json: an operation needs a KV object".to_owned());
    };
    decode_kv(kv)
}

fn decode_kv(kv: &Map<String, Value>) -> Result<Op, String> {
    let mut op = Op::default();
    let string = |name: &str, v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        other => Err(format!(
            "json: cannot unmarshal {} into Go struct field TxnKVOp.KV.{name} of type string",
            go_type(other)
        )),
    };
    let number = |name: &str, v: &Value| match v {
        Value::Number(n) if n.is_u64() => Ok(n.as_u64().unwrap_or_default()),
        Value::Null => Ok(0),
        other => Err(format!(
            "json: cannot unmarshal {} into Go struct field TxnKVOp.KV.{name} of type uint64",
            go_type(other)
        )),
    };
    for (name, value) in kv {
        match name.to_ascii_lowercase().as_str() {
            "verb" => op.verb = string("Verb", value)?,
            "key" => op.key = string("Key", value)?,
            "value" => {
                let encoded = string("Value", value)?;
                op.value = decode_base64(&encoded)?;
            }
            "flags" => op.flags = number("Flags", value)?,
            "index" => op.index = number("Index", value)?,
            "session" => op.session = string("Session", value)?,
            "namespace" | "partition" => {}
            _ => return Err(format!("json: unknown field {name:?}")),
        }
    }
    Ok(op)
}

fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Consul 1.21.5's answer to a key outside its regex (a plain error, hence 500).
const KEY_REGEX_ERROR: &str =
    r#"invalid key name, keys should respect the "^[a-zA-Z0-9,_./\-?&=]+$" format."#;

/// Whether Consul 1.21.5's regex `^[a-zA-Z0-9,_./\-?&=]+$` accepts `key`.
fn regex_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b",_./-?&=".contains(&b))
}

/// Go's `cleanPath` as ServeMux applies it.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut clean = format!("/{}", parts.join("/"));
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    clean
}

fn content_length(request: &Request<Incoming>) -> Option<usize> {
    request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The query string: presence-based flags and decoded values.
struct Query {
    raw: String,
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(raw: &str) -> Self {
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(p), String::new()),
            })
            .collect();
        Self {
            raw: raw.to_owned(),
            pairs,
        }
    }

    fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A plain-text answer, typed as Go sniffs Consul's error texts.
fn text(status: StatusCode, body: &str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body.to_owned())));
    *reply.status_mut() = status;
    if !body.is_empty() {
        reply.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    reply
}

fn json_reply(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_clean_like_go() {
        assert_eq!(clean_path("/v1/kv/a"), "/v1/kv/a");
        assert_eq!(clean_path("/v1/kv//a"), "/v1/kv/a");
        assert_eq!(clean_path("/v1/kv/a/../b"), "/v1/kv/b");
        assert_eq!(clean_path("/v1/kv/./a/"), "/v1/kv/a/");
        assert_eq!(clean_path("/v1/kv/con..fig"), "/v1/kv/con..fig");
    }

    #[test]
    fn transactions_decode_strictly() {
        let ops =
            decode_txn(br#"[{"kv":{"verb":"set","KEY":"a","Value":"aGk=","Flags":3}}]"#).unwrap();
        assert_eq!(
            (
                ops[0].verb.as_str(),
                ops[0].key.as_str(),
                &ops[0].value[..],
                ops[0].flags
            ),
            ("set", "a", &b"hi"[..], 3)
        );
        let err = decode_txn(br#"[{"KV":{"Verb":"set","Key":"a","Foo":1}}]"#).unwrap_err();
        assert_eq!(err, "json: unknown field \"Foo\"");
        let err = decode_txn(br#"[{"KV":{"Verb":"set","Key":"a","Value":"a$Gk="}}]"#).unwrap_err();
        assert_eq!(err, "illegal base64 data at input byte 1");
        assert!(
            decode_txn(b"{}")
                .unwrap_err()
                .contains("cannot unmarshal object")
        );
        assert!(decode_txn(b"[").is_err());
    }
}
