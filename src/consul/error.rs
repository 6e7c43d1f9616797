//! Errors talking to Consul, and what the caller should do about each.
//!
//! Consul's error bodies are plain text (consul-api.md §1, §4); the one JSON error is the
//! transaction roll-back (409). [`ConsulError::disposition`] classifies by status and
//! substring, never by equality, because an RPC hop may prefix the text.

use std::fmt;

use super::wire::TxnOpError;

/// Which kind of request failed: the same status means different things for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `PUT /v1/txn`.
    Txn,
    /// `PUT /v1/kv/<key>`: one record too large for any transaction body.
    Put,
    /// A read (`GET /v1/kv`, `/v1/status/leader`).
    Read,
}

/// A failed request. Its `Display` never contains the token (it is a header, never in
/// the URL, and never echoed).
#[derive(Debug, thiserror::Error)]
pub enum ConsulError {
    /// No answer: refused, reset, cut, timed out, TLS failure.
    #[error("{}", transport_text(*.kind, .source))]
    Transport {
        kind: RequestKind,
        #[source]
        source: reqwest::Error,
    },
    /// An answer with a status other than success.
    #[error("Consul answered {status}{}", body_suffix(.body))]
    Status {
        kind: RequestKind,
        status: u16,
        body: String,
    },
    /// The transaction was rolled back (409): nothing was applied.
    #[error("Consul rolled the transaction back: {}", describe_ops(.errors))]
    RolledBack { errors: Vec<TxnOpError> },
    /// A success status with a body that is not what Consul sends.
    #[error("Consul's answer could not be read: {problem}")]
    Decode { kind: RequestKind, problem: String },
}

/// What to do about a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Consul is unavailable, overloaded or refuses the token: keep everything and retry
    /// with back-off.
    Retry,
    /// The transaction is too large as a whole (413): split it.
    Split,
    /// Consul could not take the request (400, or a redirect): bisect it to find the
    /// operation at fault; a single operation is quarantined.
    Bisect,
    /// The key may not be written with this token: hold the file and retry later.
    Hold,
    /// Consul refuses the record itself: quarantine its file with Consul's text.
    Quarantine,
    /// Some operations of a rolled-back transaction failed; the others are resent at once.
    Operations(Vec<OpFailure>),
}

/// One failed operation of a rolled-back transaction, and what to do with its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpFailure {
    /// The operation's position in the request.
    pub index: usize,
    /// Hold or quarantine.
    pub action: OpAction,
    /// Consul's text.
    pub what: String,
}

/// What to do with the file of one failed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpAction {
    /// `Permission denied`: the file waits in `new/` and is retried at the back-off pace.
    Hold,
    /// Any other per-operation failure: the file is quarantined with Consul's text.
    Quarantine,
}

impl ConsulError {
    /// What the caller should do (SPEC §4).
    pub fn disposition(&self) -> Disposition {
        match self {
            ConsulError::Transport { .. } => Disposition::Retry,
            ConsulError::RolledBack { errors } => Disposition::Operations(
                errors
                    .iter()
                    .map(|e| OpFailure {
                        index: e.op_index,
                        action: if e.what.contains("Permission denied") {
                            OpAction::Hold
                        } else {
                            OpAction::Quarantine
                        },
                        what: e.what.clone(),
                    })
                    .collect(),
            ),
            ConsulError::Status { kind, status, body } => status_disposition(*kind, *status, body),
            // A garbled success may have been applied; a `set` is idempotent, so resend.
            ConsulError::Decode { .. } => Disposition::Retry,
        }
    }

    /// A few words for a status line: `connection refused`, `timed out`,
    /// `500 No cluster leader`, `403 ACL not found`.
    pub fn brief(&self) -> String {
        match self {
            ConsulError::Transport { source, .. } if source.is_timeout() => "timed out".to_owned(),
            ConsulError::Transport { source, .. } => {
                let mut cause: &dyn std::error::Error = source;
                while let Some(next) = cause.source() {
                    cause = next;
                }
                let text = cause.to_string();
                let text = text.split(" (os error").next().unwrap_or(&text);
                text.to_lowercase()
            }
            ConsulError::Status { status, body, .. } => {
                let line = body.lines().next().unwrap_or_default().trim();
                let line: String = line.chars().take(60).collect();
                format!("{status} {line}").trim_end().to_owned()
            }
            ConsulError::RolledBack { .. } => "transaction rolled back".to_owned(),
            ConsulError::Decode { .. } => "unreadable answer".to_owned(),
        }
    }
}

fn status_disposition(kind: RequestKind, status: u16, body: &str) -> Disposition {
    match (status, kind) {
        // Consul 1.21.5 refused keys outside its regex with a 500 (consul-api.md §2.5): a
        // refusal of one record, not an outage, or one file would stall all delivery.
        (500, RequestKind::Txn) if body.contains("invalid key name") => Disposition::Bisect,
        (500, RequestKind::Put) if body.contains("invalid key name") => Disposition::Quarantine,
        // 500 (no leader, leadership lost, enqueue time-out: a `set` retried is safe),
        // 429 and 503 (rate limits), 502/504 from a proxy in front.
        (500..=599 | 429, _) => Disposition::Retry,
        (403, _) if body.contains("ACL not found") => Disposition::Retry,
        (403, RequestKind::Put) if body.contains("Permission denied") => Disposition::Hold,
        (413, RequestKind::Txn) => Disposition::Split,
        (413 | 400, RequestKind::Put) => Disposition::Quarantine,
        (400, RequestKind::Txn) => Disposition::Bisect,
        // A redirect means the key's encoding was not canonical: never follow it.
        (300..=399, RequestKind::Put) => Disposition::Quarantine,
        (300..=399, RequestKind::Txn) => Disposition::Bisect,
        // 401, 403 without a token problem, 404 (a wrong address or proxy prefix), 405:
        // an operator fixes these; nothing is dropped meanwhile.
        _ => Disposition::Retry,
    }
}

fn transport_text(kind: RequestKind, source: &reqwest::Error) -> String {
    let what = match kind {
        RequestKind::Txn => "the transaction",
        RequestKind::Put => "the write",
        RequestKind::Read => "the read",
    };
    let why = if source.is_timeout() {
        "timed out"
    } else if source.is_connect() {
        "could not connect"
    } else {
        "the connection failed"
    };
    // The innermost cause says "Connection refused", "connection reset", ...
    let mut cause: &dyn std::error::Error = source;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("{what} failed: {why} ({cause})")
}

fn body_suffix(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(": {}", crate::record::quote(body).trim_matches('"'))
    }
}

fn describe_ops(errors: &[TxnOpError]) -> String {
    errors
        .iter()
        .map(|e| format!("operation {}: {}", e.op_index, e.what))
        .collect::<Vec<_>>()
        .join("; ")
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestKind::Txn => "transaction",
            RequestKind::Put => "write",
            RequestKind::Read => "read",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(kind: RequestKind, status: u16, body: &str) -> Disposition {
        ConsulError::Status {
            kind,
            status,
            body: body.into(),
        }
        .disposition()
    }

    #[test]
    fn unavailability_is_retried() {
        use RequestKind::*;
        for (code, body) in [
            (500, "No cluster leader"),
            (500, "rpc error making call: No cluster leader"),
            (500, "leadership lost while committing log"),
            (
                500,
                "raft apply failed: leadership lost while committing log",
            ),
            (500, "timed out enqueuing operation"),
            (500, "No known Consul servers"),
            (429, ""),
            (
                429,
                "Your IP is issuing too many concurrent connections, please rate limit your calls\n",
            ),
            (429, "rate limit exceeded, try a different server"),
            (503, "rate limit exceeded, try again later"),
            (403, "ACL not found"),
            (403, "rpc error making call: ACL not found"),
        ] {
            assert_eq!(status(Txn, code, body), Disposition::Retry, "{code} {body}");
            assert_eq!(status(Put, code, body), Disposition::Retry, "{code} {body}");
        }
    }

    #[test]
    fn size_and_parse_errors() {
        use RequestKind::*;
        assert_eq!(
            status(
                Txn,
                413,
                "Transaction contains too many operations (129 > 128)"
            ),
            Disposition::Split
        );
        assert_eq!(
            status(
                Txn,
                413,
                "Request body(600000 bytes) too large, max size: 524288 bytes. See https://www.consul.io/docs/agent/config/config-files#txn_max_req_len."
            ),
            Disposition::Split
        );
        assert_eq!(
            status(
                Txn,
                413,
                "Value for key \"k\" is too large (524289 > 524288 bytes)"
            ),
            Disposition::Split
        );
        assert_eq!(
            status(
                Txn,
                400,
                "Failed to parse body: json: unknown field \"Foo\""
            ),
            Disposition::Bisect
        );
        assert_eq!(status(Txn, 301, ""), Disposition::Bisect);
        assert_eq!(
            status(
                Put,
                413,
                "Request body(524289 bytes) too large, max size: 524288 bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size"
            ),
            Disposition::Quarantine
        );
        assert_eq!(status(Put, 400, ""), Disposition::Quarantine);
        assert_eq!(status(Put, 301, ""), Disposition::Quarantine);
        assert_eq!(
            status(
                Put,
                403,
                "Permission denied: token with AccessorID 'a1' lacks permission 'key:write' on \"x\""
            ),
            Disposition::Hold
        );
        assert_eq!(
            status(
                Txn,
                404,
                "Invalid URL path: not a recognized HTTP API endpoint\n"
            ),
            Disposition::Retry
        );
        let regex =
            r#"invalid key name, keys should respect the "^[a-zA-Z0-9,_./\\-?&=]+$" format."#;
        assert_eq!(status(Txn, 500, regex), Disposition::Bisect);
        assert_eq!(status(Put, 500, regex), Disposition::Quarantine);
    }

    #[test]
    fn rolled_back_operations_hold_or_quarantine() {
        let err = ConsulError::RolledBack {
            errors: vec![
                TxnOpError { op_index: 1, what: "Permission denied: token with AccessorID 'a' lacks permission 'key:write' on \"k\"".into() },
                TxnOpError { op_index: 4, what: "rpc error making call: Permission denied".into() },
                TxnOpError { op_index: 6, what: "failed to set key \"k\", index is stale".into() },
                TxnOpError { op_index: 7, what: "Must provide key".into() },
            ],
        };
        let Disposition::Operations(ops) = err.disposition() else {
            panic!()
        };
        let actions: Vec<_> = ops.iter().map(|o| (o.index, o.action)).collect();
        assert_eq!(
            actions,
            [
                (1, OpAction::Hold),
                (4, OpAction::Hold),
                (6, OpAction::Quarantine),
                (7, OpAction::Quarantine)
            ]
        );
        assert!(
            err.to_string().contains("operation 6: failed to set key"),
            "{err}"
        );
    }
}
