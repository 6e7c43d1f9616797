//! Batching: records in drop order → Consul requests within the limits.
//!
//! Pure code. Records for the same key are coalesced so only the newest is sent; the
//! older ones ride along as `origins` of the operation that supersedes them, so the caller
//! can settle their files when it is acknowledged. Transactions never exceed
//! `max_batch_ops` operations nor `max_batch_bytes` of JSON body (base64 growth counted
//! exactly); a record too large for any transaction body is sent alone as a plain PUT.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use crate::consul::wire::{TxnOp, set_op_json_len};

/// The limits one transaction must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Operations per transaction.
    pub max_ops: NonZeroUsize,
    /// Bytes of JSON body per transaction.
    pub max_bytes: usize,
}

/// One record waiting to be written, in drop order, tagged with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending<O> {
    /// The Consul key.
    pub key: String,
    /// The value's bytes.
    pub value: Vec<u8>,
    /// Where it came from (file and record), reported back with the outcome.
    pub origin: O,
}

/// One write: the newest value for a key, and every record it settles (oldest first,
/// the one whose value is sent last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write<O> {
    /// The Consul key.
    pub key: String,
    /// The newest value.
    pub value: Vec<u8>,
    /// The records this write settles, in drop order.
    pub origins: Vec<O>,
}

/// One request to Consul.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<O> {
    /// `PUT /v1/txn` with one `set` per write.
    Txn(Vec<Write<O>>),
    /// `PUT /v1/kv/<key>`: a value too large for any transaction body.
    Put(Write<O>),
}

impl<O> Request<O> {
    /// The writes this request carries.
    pub fn writes(&self) -> &[Write<O>] {
        match self {
            Request::Txn(writes) => writes,
            Request::Put(write) => std::slice::from_ref(write),
        }
    }

    /// The request's writes, owned.
    pub fn into_writes(self) -> Vec<Write<O>> {
        match self {
            Request::Txn(writes) => writes,
            Request::Put(write) => vec![write],
        }
    }
}

/// The JSON body of a transaction carrying `writes`.
pub fn txn_body<O>(writes: &[Write<O>]) -> Vec<u8> {
    let ops: Vec<TxnOp<'_>> = writes
        .iter()
        .map(|w| TxnOp::set(&w.key, &w.value))
        .collect();
    serde_json::to_vec(&ops).expect("operations serialise")
}

/// The size of a body holding operations of `op_bytes` in total, `count` of them:
/// `[`, `]` and the commas between.
fn body_len(op_bytes: usize, count: usize) -> usize {
    op_bytes + 2 + count.saturating_sub(1)
}

/// Coalesces `pending` (in drop order) per key: one write per key, at the position of the
/// key's first record, holding the newest value and every record it settles.
pub fn coalesce<O>(pending: impl IntoIterator<Item = Pending<O>>) -> Vec<Write<O>> {
    let mut writes: Vec<Write<O>> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for Pending { key, value, origin } in pending {
        match by_key.get(&key) {
            Some(&at) => {
                let write = &mut writes[at];
                write.value = value;
                write.origins.push(origin);
            }
            None => {
                by_key.insert(key.clone(), writes.len());
                writes.push(Write {
                    key,
                    value,
                    origins: vec![origin],
                });
            }
        }
    }
    writes
}

/// Packs writes, in order, into requests within `limits`.
pub fn pack<O>(writes: impl IntoIterator<Item = Write<O>>, limits: Limits) -> Vec<Request<O>> {
    let mut requests = Vec::new();
    let mut current: Vec<Write<O>> = Vec::new();
    let mut current_bytes = 0;
    for write in writes {
        let op = set_op_json_len(&write.key, write.value.len());
        if body_len(op, 1) > limits.max_bytes {
            requests.push(Request::Put(write));
            continue;
        }
        let fits = current.len() < limits.max_ops.get()
            && body_len(current_bytes + op, current.len() + 1) <= limits.max_bytes;
        if !fits {
            requests.push(Request::Txn(std::mem::take(&mut current)));
            current_bytes = 0;
        }
        current_bytes += op;
        current.push(write);
    }
    if !current.is_empty() {
        requests.push(Request::Txn(current));
    }
    requests
}

/// Coalesces then packs: the requests that write `pending`.
pub fn plan<O>(pending: impl IntoIterator<Item = Pending<O>>, limits: Limits) -> Vec<Request<O>> {
    pack(coalesce(pending), limits)
}

/// Two halves of a transaction.
pub type Halves<O> = (Vec<Write<O>>, Vec<Write<O>>);

/// Splits a transaction refused as too large (413) or malformed (400, bisecting) in two
/// halves. It needs at least two writes.
pub fn split<O>(mut writes: Vec<Write<O>>) -> Halves<O> {
    debug_assert!(writes.len() >= 2, "a single write cannot be split");
    let back = writes.split_off(writes.len() / 2);
    (writes, back)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn limits(ops: usize, bytes: usize) -> Limits {
        Limits {
            max_ops: NonZeroUsize::new(ops).unwrap(),
            max_bytes: bytes,
        }
    }

    fn pending(key: &str, value: &[u8], origin: u32) -> Pending<u32> {
        Pending {
            key: key.into(),
            value: value.to_vec(),
            origin,
        }
    }

    #[test]
    fn the_newest_record_of_a_key_wins() {
        let writes = coalesce([
            pending("a", b"1", 0),
            pending("b", b"1", 1),
            pending("a", b"2", 2),
            pending("a", b"3", 3),
        ]);
        assert_eq!(writes.len(), 2);
        assert_eq!(
            (writes[0].key.as_str(), &writes[0].value[..]),
            ("a", &b"3"[..])
        );
        assert_eq!(writes[0].origins, [0, 2, 3]);
        assert_eq!(writes[1].origins, [1]);
    }

    #[test]
    fn ops_cap_and_oversized_values() {
        let many: Vec<_> = (0..130)
            .map(|i| pending(&format!("k{i}"), b"v", i))
            .collect();
        let requests = plan(many, limits(64, 262_144));
        let sizes: Vec<_> = requests.iter().map(|r| r.writes().len()).collect();
        assert_eq!(sizes, [64, 64, 2]);

        let big = vec![b'x'; 200_000];
        let requests = plan(
            [pending("small", b"v", 0), pending("big", &big, 1)],
            limits(64, 262_144),
        );
        assert!(matches!(&requests[0], Request::Put(w) if w.key == "big"));
        assert!(matches!(&requests[1], Request::Txn(w) if w.len() == 1));
    }

    #[test]
    fn split_halves() {
        let writes = coalesce((0..5).map(|i| pending(&format!("k{i}"), b"v", i)));
        let (a, b) = split(writes);
        assert_eq!((a.len(), b.len()), (2, 3));
    }

    fn any_pending() -> impl Strategy<Value = Vec<Pending<usize>>> {
        // Mostly small values, now and then one too large for a small body limit.
        let value = prop_oneof![
            9 => prop::collection::vec(any::<u8>(), 0..200),
            1 => prop::collection::vec(any::<u8>(), 600..3000),
        ];
        prop::collection::vec(("k[0-9]{1,2}|\\PC{1,20}", value), 0..150).prop_map(|items| {
            items
                .into_iter()
                .enumerate()
                .map(|(i, (key, value))| Pending {
                    key,
                    value,
                    origin: i,
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn batches_respect_limits_and_lose_nothing(
            input in any_pending(),
            max_ops in 1usize..=128,
            max_bytes in 1024usize..=65_536,
        ) {
            let limits = limits(max_ops, max_bytes);
            let requests = plan(input.clone(), limits);
            let mut seen_origins = Vec::new();
            let mut written: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for request in &requests {
                match request {
                    Request::Txn(writes) => {
                        prop_assert!(!writes.is_empty());
                        prop_assert!(writes.len() <= max_ops);
                        prop_assert!(txn_body(writes).len() <= max_bytes);
                    }
                    Request::Put(write) => {
                        prop_assert!(txn_body(std::slice::from_ref(write)).len() > max_bytes);
                    }
                }
                for write in request.writes() {
                    // Each key is written once, with the newest value among its records.
                    prop_assert!(written.insert(write.key.clone(), write.value.clone()).is_none());
                    let newest = input.iter().rev().find(|p| p.key == write.key).unwrap();
                    prop_assert_eq!(&write.value, &newest.value);
                    prop_assert_eq!(*write.origins.last().unwrap(), newest.origin);
                    // Origins of one key stay in drop order.
                    prop_assert!(write.origins.windows(2).all(|w| w[0] < w[1]));
                    seen_origins.extend(write.origins.iter().copied());
                }
            }
            seen_origins.sort_unstable();
            prop_assert_eq!(seen_origins, (0..input.len()).collect::<Vec<_>>());
        }
    }
}
