//! Consul's JSON shapes for KV entries and transactions (consul-api.md §2.1, §3).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// One KV entry as Consul serialises it, fields in Consul's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KvEntry {
    /// Number of lock acquisitions.
    pub lock_index: u64,
    /// The full key, without a leading `/`.
    pub key: String,
    /// Opaque flags.
    pub flags: u64,
    /// Standard base64 with padding; `None` (JSON `null`) for an empty value.
    #[serde(with = "base64_value")]
    pub value: Option<Vec<u8>>,
    /// The session holding the key; omitted when none does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Raft index of creation.
    pub create_index: u64,
    /// Raft index of the last actual change.
    pub modify_index: u64,
}

impl KvEntry {
    /// The value's bytes (an empty value reads back as `null`).
    pub fn bytes(&self) -> &[u8] {
        self.value.as_deref().unwrap_or_default()
    }
}

/// `{"KV": {...}}`: one operation of a transaction request, as cndspool writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxnOp<'a> {
    /// The KV operation.
    #[serde(rename = "KV")]
    pub kv: KvOp<'a>,
}

/// A KV operation inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KvOp<'a> {
    /// `set`, `get`, `delete`, ...
    pub verb: &'a str,
    /// The full key.
    pub key: &'a str,
    /// The value, base64-encoded on the wire.
    #[serde(with = "base64_value", skip_serializing_if = "Option::is_none")]
    pub value: Option<&'a [u8]>,
}

impl<'a> TxnOp<'a> {
    /// `set key = value`.
    pub fn set(key: &'a str, value: &'a [u8]) -> Self {
        Self {
            kv: KvOp {
                verb: "set",
                key,
                value: Some(value),
            },
        }
    }
}

/// The body of a transaction's answer (200 and 409).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TxnResponse {
    /// One result per operation that yields one (writes: `Value` is `null`).
    #[serde(default)]
    pub results: Option<Vec<TxnResult>>,
    /// One error per failing operation (409 only).
    #[serde(default)]
    pub errors: Option<Vec<TxnOpError>>,
}

/// `{"KV": entry}` in a transaction's results.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TxnResult {
    /// The entry the operation touched or read.
    #[serde(rename = "KV")]
    pub kv: KvEntry,
}

/// One failing operation of a rolled-back transaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TxnOpError {
    /// The 0-based position of the operation in the request.
    pub op_index: usize,
    /// Consul's text for the failure.
    pub what: String,
}

/// The exact length of `{"KV":{"Verb":"set","Key":<key>,"Value":"<base64>"}}` as
/// serde_json writes it: what batching counts against `max_batch_bytes`.
pub fn set_op_json_len(key: &str, value_len: usize) -> usize {
    const FRAME: usize = r#"{"KV":{"Verb":"set","Key":,"Value":}}"#.len();
    // An empty value travels as `null`, any other as a base64 string.
    let value = if value_len == 0 {
        "null".len()
    } else {
        base64_len(value_len) + 2
    };
    FRAME + json_string_len(key) + value
}

/// The length of `bytes` once base64-encoded with padding.
pub fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// The length of `text` as a JSON string literal, quotes and escapes included.
pub fn json_string_len(text: &str) -> usize {
    2 + text
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

/// Serde for base64 `Value` fields: `null` both ways for an empty value.
pub mod base64_value {
    use super::BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `None` or an empty value as `null`, anything else as base64.
    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value.as_ref().map(AsRef::as_ref) {
            Some(bytes) if !bytes.is_empty() => serializer.serialize_str(&BASE64.encode(bytes)),
            _ => serializer.serialize_none(),
        }
    }

    /// Reads `null` and `""` as empty, anything else as base64.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(text) if text.is_empty() => Ok(None),
            Some(text) => BASE64
                .decode(text)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Decodes a standard base64 string as Go's `encoding/base64` does, with its error text.
///
/// # Errors
/// `illegal base64 data at input byte N`.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    BASE64.decode(text).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(at, _)
            | base64::DecodeError::InvalidLastSymbol(at, _) => at,
            base64::DecodeError::InvalidLength(len) => len,
            base64::DecodeError::InvalidPadding => text.len().saturating_sub(1),
        };
        format!("illegal base64 data at input byte {at}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_use_consuls_shape() {
        let entry = KvEntry {
            lock_index: 0,
            key: "a/b".into(),
            flags: 0,
            value: None,
            session: None,
            create_index: 5,
            modify_index: 7,
        };
        assert_eq!(
            serde_json::to_string(&entry).unwrap(),
            r#"{"LockIndex":0,"Key":"a/b","Flags":0,"Value":null,"CreateIndex":5,"ModifyIndex":7}"#
        );
        let parsed: KvEntry = serde_json::from_str(
            r#"{"LockIndex":0,"Key":"k","Flags":3,"Value":"aGk=","CreateIndex":1,"ModifyIndex":2,"Future":true}"#,
        )
        .unwrap();
        assert_eq!(parsed.bytes(), b"hi");
    }

    proptest! {
        #[test]
        fn op_length_is_exact(key in "\\PC{0,40}|[\\x00-\\x1f\"\\\\]{0,5}", len in prop_oneof![Just(0usize), 0usize..300]) {
            let value = vec![7u8; len];
            let json = serde_json::to_string(&TxnOp::set(&key, &value)).unwrap();
            prop_assert_eq!(json.len(), set_op_json_len(&key, len));
        }
    }
}
