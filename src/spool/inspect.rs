//! What operators ask of a spool: what waits in `new/` (`cndspool queue`), what was
//! quarantined and why (`cndspool failed`), and putting quarantined files back
//! (`cndspool requeue`).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use super::quarantine::{Reason, reason_path};
use super::read::{ReadOutcome, read_file};
use super::{Spool, rename_noreplace, scan};

/// What waits in `new/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueReport {
    /// Files waiting.
    pub count: usize,
    /// Age of the oldest, in seconds.
    pub oldest_age_s: Option<u64>,
    /// Records per type (bulk files count each record).
    pub by_type: BTreeMap<String, usize>,
    /// Files that are not valid JSON records (yet): they will be quarantined or retried.
    pub unreadable: usize,
    /// Entries left alone (dotfiles, other suffixes, folders, links, FIFOs).
    pub ignored: usize,
}

/// Counts what waits in `new/`.
///
/// # Errors
/// `new/` cannot be listed.
pub fn queue(spool: &Spool, max_file_bytes: u64) -> io::Result<QueueReport> {
    let listing = scan::list(&spool.new_dir())?;
    let mut report = QueueReport {
        count: listing.candidates.len(),
        ignored: listing.ignored,
        oldest_age_s: listing.candidates.first().map(|c| age_s(c.mtime)),
        ..QueueReport::default()
    };
    for candidate in &listing.candidates {
        let path = spool.new_dir().join(&candidate.name);
        let types = match read_file(&path, max_file_bytes) {
            Ok(ReadOutcome::Bytes { bytes, .. }) => record_types(&bytes),
            _ => None,
        };
        match types {
            Some(types) => {
                for t in types {
                    *report.by_type.entry(t).or_default() += 1;
                }
            }
            None => report.unreadable += 1,
        }
    }
    Ok(report)
}

fn age_s(mtime: SystemTime) -> u64 {
    SystemTime::now()
        .duration_since(mtime)
        .map_or(0, |d| d.as_secs())
}

/// The `type` of every record in a file, or `None` if it is not JSON objects.
fn record_types(bytes: &[u8]) -> Option<Vec<String>> {
    let type_of = |v: &Value| v.get("type").and_then(Value::as_str).map(str::to_owned);
    match serde_json::from_slice::<Value>(bytes).ok()? {
        Value::Array(items) => items.iter().map(type_of).collect(),
        object @ Value::Object(_) => type_of(&object).map(|t| vec![t]),
        _ => None,
    }
}

/// One quarantined file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedFile {
    /// Its name in `failed/`.
    pub file: String,
    /// Why it was quarantined (`None` when its sidecar is missing or unreadable).
    pub reason: Option<Reason>,
}

/// The quarantined files, oldest first.
///
/// # Errors
/// `failed/` cannot be listed.
pub fn failed(spool: &Spool) -> io::Result<Vec<FailedFile>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(spool.failed())? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".reason") || !entry.file_type()?.is_file() {
            continue;
        }
        let reason = fs::read(reason_path(spool, &name))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Reason>(&bytes).ok());
        let mtime = entry.metadata()?.modified()?;
        files.push((mtime, FailedFile { file: name, reason }));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.file.cmp(&b.1.file)));
    Ok(files.into_iter().map(|(_, f)| f).collect())
}

/// Moves `failed/<name>` back into `new/` (under a free name) and removes its sidecar.
/// Returns the name it has in `new/`.
///
/// # Errors
/// `NotFound` when `failed/<name>` does not exist; other I/O errors.
pub fn requeue(spool: &Spool, name: &str) -> io::Result<String> {
    let name = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let source = spool.failed().join(name);
    if !fs::symlink_metadata(&source)?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let stem = name.strip_suffix(".json").unwrap_or(name);
    for n in 0u32.. {
        let target = match n {
            0 => format!("{stem}.json"),
            n => format!("{stem}.requeued-{n}.json"),
        };
        match rename_noreplace(&source, &spool.new_dir().join(&target)) {
            Ok(()) => match fs::remove_file(reason_path(spool, name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => return Ok(target),
            },
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    unreachable!("some name is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_types_of_objects_and_arrays() {
        assert_eq!(
            record_types(br#"{"type": "vra"}"#),
            Some(vec!["vra".to_owned()])
        );
        assert_eq!(
            record_types(br#"[{"type": "app"}, {"type": "app"}]"#),
            Some(vec!["app".to_owned(), "app".to_owned()])
        );
        assert_eq!(record_types(b"{not json"), None);
        assert_eq!(record_types(br#"[{"type": "app"}, 3]"#), None);
    }
}
