//! Listing `new/`: the candidates, in drop order (modification time, then name).
//!
//! Only names and times are kept: a 100,000-file backlog costs a few MiB, and contents
//! are read one window at a time.

use std::cmp::Ordering;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

use super::is_candidate_name;

/// A file's place in the queue: its modification time, then its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DropOrder {
    /// The file's modification time (the drop time).
    pub mtime: SystemTime,
    /// The file's name in `new/`.
    pub name: String,
}

impl Ord for DropOrder {
    fn cmp(&self, other: &Self) -> Ordering {
        self.mtime
            .cmp(&other.mtime)
            .then_with(|| self.name.cmp(&other.name))
    }
}

impl PartialOrd for DropOrder {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What a listing found.
#[derive(Debug, Default)]
pub struct Listing {
    /// Regular `*.json` files, in drop order.
    pub candidates: Vec<DropOrder>,
    /// Entries left alone: dotfiles, other suffixes, folders, symlinks, FIFOs, ...
    pub ignored: usize,
}

/// Lists `dir` without following symbolic links.
///
/// # Errors
/// The folder cannot be read.
pub fn list(dir: &Path) -> std::io::Result<Listing> {
    let mut listing = Listing::default();
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        match candidate(dir, &entry.file_name().to_string_lossy()) {
            Some(order) => listing.candidates.push(order),
            None => listing.ignored += 1,
        }
    }
    listing.candidates.sort_unstable();
    Ok(listing)
}

/// The drop order of `dir/name` if it is a candidate: a regular file (not followed
/// through a symlink) with a candidate name. `None` otherwise, or if it is gone.
pub fn candidate(dir: &Path, name: &str) -> Option<DropOrder> {
    if !is_candidate_name(name) {
        return None;
    }
    let meta = fs::symlink_metadata(dir.join(name)).ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    Some(DropOrder {
        mtime: meta.modified().ok()?,
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn drop_order_is_mtime_then_name_and_non_candidates_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        for (name, secs) in [("b.json", 10), ("a.json", 20), ("c.json", 10)] {
            let path = dir.path().join(name);
            fs::write(&path, "{}").unwrap();
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(at(secs))
                .unwrap();
        }
        fs::write(dir.path().join(".hidden.json"), "{}").unwrap();
        fs::write(dir.path().join("notes.txt"), "").unwrap();
        fs::create_dir(dir.path().join("folder.json")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a.json"), dir.path().join("link.json"))
            .unwrap();
        let listing = list(dir.path()).unwrap();
        let names: Vec<_> = listing.candidates.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["b.json", "c.json", "a.json"]);
        assert_eq!(listing.ignored, 4);
    }
}
