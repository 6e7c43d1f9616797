//! The stand-in's KV state: entries, tombstones and Raft-like indexes, with Consul's
//! write, read and transaction semantics (consul-api.md §2, §3). No HTTP, no ACLs.

use std::collections::BTreeMap;

use crate::consul::wire::KvEntry;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    value: Vec<u8>,
    flags: u64,
    create_index: u64,
    modify_index: u64,
    lock_index: u64,
}

/// The KV table.
#[derive(Debug, Default)]
pub struct Store {
    entries: BTreeMap<String, Stored>,
    /// Deleted keys and the index of their deletion: list indexes never go backwards.
    tombstones: BTreeMap<String, u64>,
    /// The last Raft index handed out.
    index: u64,
}

/// One KV operation of a transaction, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Op {
    /// The verb (`set`, `get`, ...).
    pub verb: String,
    /// The key.
    pub key: String,
    /// The decoded value.
    pub value: Vec<u8>,
    /// Flags for write verbs.
    pub flags: u64,
    /// CAS / check index.
    pub index: u64,
    /// Session for lock verbs.
    pub session: String,
}

impl Op {
    /// Whether the verb writes (routes the transaction through Raft).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "set" | "cas" | "lock" | "unlock" | "delete" | "delete-tree" | "delete-cas"
        )
    }
}

/// The outcome of a transaction: results, or every failing operation (nothing applied).
pub type TxnOutcome = Result<Vec<KvEntry>, Vec<(usize, String)>>;

impl Stored {
    fn entry(&self, key: &str, with_value: bool) -> KvEntry {
        KvEntry {
            lock_index: self.lock_index,
            key: key.to_owned(),
            flags: self.flags,
            value: (with_value && !self.value.is_empty()).then(|| self.value.clone()),
            session: None,
            create_index: self.create_index,
            modify_index: self.modify_index,
        }
    }
}

impl Store {
    /// One key's entry.
    pub fn get(&self, key: &str) -> Option<KvEntry> {
        self.entries.get(key).map(|s| s.entry(key, true))
    }

    /// Every entry whose key starts with `prefix`, sorted by key bytes.
    pub fn list(&self, prefix: &str) -> Vec<KvEntry> {
        self.under(prefix).map(|(k, s)| s.entry(k, true)).collect()
    }

    /// The keys under `prefix`, cut just after the first `separator` past the prefix.
    pub fn keys(&self, prefix: &str, separator: Option<&str>) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for (key, _) in self.under(prefix) {
            let key = match separator.filter(|s| !s.is_empty()) {
                Some(sep) => match key[prefix.len()..].find(sep) {
                    Some(at) => &key[..prefix.len() + at + sep.len()],
                    None => key.as_str(),
                },
                None => key.as_str(),
            };
            if keys.last().map(String::as_str) != Some(key) {
                keys.push(key.to_owned());
            }
        }
        keys
    }

    fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a Stored)> {
        self.entries
            .range(prefix.to_owned()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// `X-Consul-Index` for a read of `key` (or of the prefix with `recurse`): the key's
    /// ModifyIndex, else the highest index of entries and tombstones under the prefix,
    /// else the table's; never 0.
    pub fn read_index(&self, key: &str, recurse: bool) -> u64 {
        let index = if !recurse && let Some(stored) = self.entries.get(key) {
            stored.modify_index
        } else if recurse {
            let live = self.under(key).map(|(_, s)| s.modify_index).max();
            let dead = self
                .tombstones
                .range(key.to_owned()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(_, i)| *i)
                .max();
            live.max(dead).unwrap_or(0)
        } else {
            self.table_index()
        };
        index.max(1)
    }

    fn table_index(&self) -> u64 {
        let live = self.entries.values().map(|s| s.modify_index).max();
        let dead = self.tombstones.values().copied().max();
        live.max(dead).unwrap_or(0)
    }

    /// A plain or check-and-set PUT; `false` when the CAS did not match.
    pub fn put(&mut self, key: &str, value: Vec<u8>, flags: u64, cas: Option<u64>) -> bool {
        if let Some(cas) = cas {
            let current = self.entries.get(key).map(|s| s.modify_index);
            let ok = match cas {
                0 => current.is_none(),
                n => current == Some(n),
            };
            if !ok {
                return false;
            }
        }
        self.index += 1;
        let index = self.index;
        self.set(key, value, flags, index);
        true
    }

    fn set(&mut self, key: &str, value: Vec<u8>, flags: u64, index: u64) {
        match self.entries.get_mut(key) {
            // Consul ≥1.6: an identical write changes nothing, not even ModifyIndex.
            Some(stored) if stored.value == value && stored.flags == flags => {}
            Some(stored) => {
                stored.value = value;
                stored.flags = flags;
                stored.modify_index = index;
            }
            None => {
                self.tombstones.remove(key);
                self.entries.insert(
                    key.to_owned(),
                    Stored {
                        value,
                        flags,
                        create_index: index,
                        modify_index: index,
                        lock_index: 0,
                    },
                );
            }
        }
    }

    /// DELETE of one key, a prefix (`recurse`), or a key if its index matches (`cas`).
    /// `true` unless the CAS did not match.
    pub fn delete(&mut self, key: &str, recurse: bool, cas: Option<u64>) -> bool {
        if let Some(cas) = cas {
            match self.entries.get(key) {
                None => return true,
                Some(stored) if cas == 0 || stored.modify_index != cas => return false,
                Some(_) => {}
            }
        }
        self.index += 1;
        let index = self.index;
        if recurse {
            let doomed: Vec<String> = self.under(key).map(|(k, _)| k.clone()).collect();
            for k in doomed {
                self.remove(&k, index);
            }
        } else {
            self.remove(key, index);
        }
        true
    }

    fn remove(&mut self, key: &str, index: u64) {
        if self.entries.remove(key).is_some() {
            self.tombstones.insert(key.to_owned(), index);
        }
    }

    /// Runs a transaction atomically: every operation is evaluated, every failure is
    /// collected, and on any failure nothing is applied. `denied(i)` is an ACL failure of
    /// operation `i` found before the state is touched.
    pub fn txn(&mut self, ops: &[Op], denied: &dyn Fn(usize) -> Option<String>) -> TxnOutcome {
        let writes = ops.iter().any(Op::is_write);
        let index = self.index + 1;
        let mut undo: Vec<(String, Option<Stored>, Option<u64>)> = Vec::new();
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if let Some(what) = denied(i) {
                errors.push((i, what));
                continue;
            }
            if let Err(what) = self.apply(op, index, &mut undo, &mut results) {
                errors.push((i, what));
            }
        }
        if !errors.is_empty() {
            for (key, entry, tombstone) in undo.into_iter().rev() {
                match entry {
                    Some(stored) => self.entries.insert(key.clone(), stored),
                    None => self.entries.remove(&key),
                };
                match tombstone {
                    Some(at) => self.tombstones.insert(key, at),
                    None => self.tombstones.remove(&key),
                };
            }
            return Err(errors);
        }
        if writes {
            self.index = index;
        }
        Ok(results)
    }

    fn remember(&self, key: &str, undo: &mut Vec<(String, Option<Stored>, Option<u64>)>) {
        undo.push((
            key.to_owned(),
            self.entries.get(key).cloned(),
            self.tombstones.get(key).copied(),
        ));
    }

    fn apply(
        &mut self,
        op: &Op,
        index: u64,
        undo: &mut Vec<(String, Option<Stored>, Option<u64>)>,
        results: &mut Vec<KvEntry>,
    ) -> Result<(), String> {
        let key = op.key.as_str();
        let tree = matches!(op.verb.as_str(), "delete-tree" | "get-tree");
        if key.is_empty() && !tree {
            return Err("Must provide key".to_owned());
        }
        let current = self.entries.get(key).map(|s| s.modify_index);
        match op.verb.as_str() {
            "set" | "cas" => {
                if op.verb == "cas" {
                    let ok = match op.index {
                        0 => current.is_none(),
                        n => current == Some(n),
                    };
                    if !ok {
                        return Err(format!("failed to set key \"{key}\", index is stale"));
                    }
                }
                self.remember(key, undo);
                self.set(key, op.value.clone(), op.flags, index);
                results.push(self.entries[key].entry(key, false));
            }
            "get" => match self.entries.get(key) {
                Some(stored) => results.push(stored.entry(key, true)),
                None => return Err(format!("key \"{key}\" doesn't exist")),
            },
            "get-or-empty" => results.push(self.get(key).unwrap_or(KvEntry {
                lock_index: 0,
                key: key.to_owned(),
                flags: 0,
                value: None,
                session: None,
                create_index: 0,
                modify_index: 0,
            })),
            "get-tree" => results.extend(self.list(key)),
            "check-index" => match current {
                None => {
                    return Err(format!(
                        "failed to check index, key \"{key}\" doesn't exist"
                    ));
                }
                Some(at) if at != op.index => {
                    return Err(format!(
                        "failed index check for key \"{key}\", current modify index {at} != {}",
                        op.index
                    ));
                }
                Some(_) => {}
            },
            "check-not-exists" if current.is_some() => return Err(format!("key \"{key}\" exists")),
            "check-not-exists" => {}
            "delete" => {
                self.remember(key, undo);
                self.remove(key, index);
            }
            "delete-tree" => {
                let doomed: Vec<String> = self.under(key).map(|(k, _)| k.clone()).collect();
                for k in doomed {
                    self.remember(&k, undo);
                    self.remove(&k, index);
                }
            }
            "delete-cas" => match current {
                Some(at) if at != op.index => {
                    return Err(format!("failed to delete key \"{key}\", index is stale"));
                }
                _ => {
                    self.remember(key, undo);
                    self.remove(key, index);
                }
            },
            // The stand-in has no sessions.
            "lock" | "unlock" | "check-session" if op.session.is_empty() => {
                return Err("missing session".to_owned());
            }
            "lock" | "unlock" | "check-session" => {
                return Err(format!("invalid session \"{}\"", op.session));
            }
            other => return Err(format!("unknown KV verb \"{other}\"")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> Op {
        Op {
            verb: "set".into(),
            key: key.into(),
            value: value.as_bytes().to_vec(),
            ..Op::default()
        }
    }

    #[test]
    fn identical_writes_keep_the_modify_index() {
        let mut s = Store::default();
        assert!(s.put("a", b"1".to_vec(), 0, None));
        let first = s.get("a").unwrap();
        assert!(s.put("a", b"1".to_vec(), 0, None));
        assert_eq!(s.get("a").unwrap().modify_index, first.modify_index);
        assert!(s.put("a", b"2".to_vec(), 0, None));
        let second = s.get("a").unwrap();
        assert!(second.modify_index > first.modify_index);
        assert_eq!(second.create_index, first.create_index);
        // Omitting flags resets them.
        assert!(s.put("a", b"2".to_vec(), 9, None));
        assert_eq!(s.get("a").unwrap().flags, 9);
    }

    #[test]
    fn cas_and_delete_cas() {
        let mut s = Store::default();
        assert!(s.put("a", b"1".to_vec(), 0, Some(0)));
        assert!(!s.put("a", b"2".to_vec(), 0, Some(0)));
        let at = s.get("a").unwrap().modify_index;
        assert!(!s.put("a", b"2".to_vec(), 0, Some(at + 5)));
        assert!(s.put("a", b"2".to_vec(), 0, Some(at)));
        assert!(s.delete("missing", false, Some(3)));
        assert!(!s.delete("a", false, Some(0)));
        let at = s.get("a").unwrap().modify_index;
        assert!(s.delete("a", false, Some(at)));
        assert_eq!(s.get("a"), None);
    }

    #[test]
    fn indexes_never_go_backwards_and_never_zero() {
        let mut s = Store::default();
        assert_eq!(s.read_index("x", false), 1);
        s.put("p/a", b"1".to_vec(), 0, None);
        s.put("p/b", b"1".to_vec(), 0, None);
        let before = s.read_index("p/", true);
        s.delete("p/b", false, None);
        assert!(s.read_index("p/", true) > before);
        assert_eq!(
            s.read_index("p/a", false),
            s.get("p/a").unwrap().modify_index
        );
    }

    #[test]
    fn keys_with_separator() {
        let mut s = Store::default();
        for k in [
            "web/bar",
            "web/foo",
            "web/subdir/a",
            "web/subdir/b",
            "other",
        ] {
            s.put(k, vec![], 0, None);
        }
        assert_eq!(
            s.keys("web/", Some("/")),
            ["web/bar", "web/foo", "web/subdir/"]
        );
        assert_eq!(s.keys("", None).len(), 5);
    }

    #[test]
    fn a_failing_transaction_applies_nothing_and_lists_every_failure() {
        let mut s = Store::default();
        s.put("keep", b"old".to_vec(), 0, None);
        let ops = vec![
            set("keep", "new"),
            Op {
                verb: "cas".into(),
                key: "keep".into(),
                index: 999,
                ..Op::default()
            },
            Op {
                verb: "delete".into(),
                key: "keep".into(),
                ..Op::default()
            },
            set("", "x"),
            set("fresh", "x"),
        ];
        let errors = s.txn(&ops, &|_| None).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(errors[1].1, "Must provide key");
        assert_eq!(s.get("keep").unwrap().bytes(), b"old");
        assert_eq!(s.get("fresh"), None);
    }

    #[test]
    fn a_transaction_shares_one_index_and_hides_written_values() {
        let mut s = Store::default();
        let results = s.txn(&[set("a", "1"), set("b", "2")], &|_| None).unwrap();
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.value.is_none()));
        assert_eq!(results[0].modify_index, results[1].modify_index);
        let read = s
            .txn(
                &[Op {
                    verb: "get".into(),
                    key: "a".into(),
                    ..Op::default()
                }],
                &|_| None,
            )
            .unwrap();
        assert_eq!(read[0].bytes(), b"1");
    }
}
