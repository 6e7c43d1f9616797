//! The spool folder: its layout (`tmp/`, `new/`, `failed/`, `.lock`) and the errors of
//! working in it.
//!
//! Producers write into `tmp/` and rename into `new/` (the Maildir protocol, SPEC §2);
//! [`drop`] is that protocol for `cndspool emit`. The daemon's side: [`lock`] (one daemon
//! per spool), [`scan`] (drop order), [`watch`] (inotify hints), [`read`] (regular files
//! only, size-capped), [`quarantine`] (to `failed/` with a reason); the operator's side:
//! [`inspect`] (`queue`, `failed`, `requeue`).

pub mod drop;
pub mod inspect;
pub mod lock;
pub mod quarantine;
pub mod read;
pub mod scan;
pub mod watch;

use std::io;
use std::path::{Path, PathBuf};

use crate::exit::ExitCode;

/// The folders of one spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    root: PathBuf,
}

impl Spool {
    /// The spool rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The spool's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where producers write a file before renaming it into `new/`.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The folder the daemon delivers from.
    pub fn new_dir(&self) -> PathBuf {
        self.root.join("new")
    }

    /// Quarantined files and their `.reason` sidecars.
    pub fn failed(&self) -> PathBuf {
        self.root.join("failed")
    }

    /// The lock file the running daemon holds.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".lock")
    }
}

/// Whether `name` is a spool entry the daemon picks up: `*.json`, not a dotfile.
pub fn is_candidate_name(name: &str) -> bool {
    name.ends_with(".json") && !name.starts_with('.') && name.len() > ".json".len()
}

/// A problem working in the spool, naming the folder and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A spool folder does not exist.
    #[error(
        "the spool folder {} does not exist; create the spool (systemd-tmpfiles --create cndspool.conf, or mkdir -p {0}) or pass --spool",
        dir.display()
    )]
    Missing { dir: PathBuf },
    /// The process may not do something it needs in a spool folder.
    #[error(
        "permission denied: cannot {action} in {}; run as a member of the spool's group (usually cndspool) or fix the folder's mode",
        dir.display()
    )]
    PermissionDenied { dir: PathBuf, action: &'static str },
    /// Another process holds the spool's lock.
    #[error(
        "another cndspool daemon is running on this spool: {} is locked{}; stop it first (systemctl stop cndspool)",
        path.display(),
        if holder.is_empty() { String::new() } else { format!(" by process {holder}") }
    )]
    Locked { path: PathBuf, holder: String },
    /// Any other I/O failure.
    #[error("cannot {action} in {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

impl SpoolError {
    /// Classifies an I/O error met while doing `action` in `dir`.
    pub fn from_io(dir: &Path, action: &'static str, source: io::Error) -> Self {
        let dir = dir.to_owned();
        match source.kind() {
            io::ErrorKind::NotFound => SpoolError::Missing { dir },
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                SpoolError::PermissionDenied { dir, action }
            }
            _ => SpoolError::Io {
                dir,
                action,
                source,
            },
        }
    }

    /// The exit status for this error (sysexits).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            SpoolError::Missing { .. } | SpoolError::Locked { .. } => ExitCode::CantCreate,
            SpoolError::PermissionDenied { .. } => ExitCode::NoPerm,
            SpoolError::Io { .. } => ExitCode::IoErr,
        }
    }
}

/// Renames `from` to `to` unless `to` exists (`renameat2` with `RENAME_NOREPLACE`).
///
/// A rename, not a hard link: with `fs.protected_hardlinks` (the default on most
/// distributions) a process may only link files it owns or may write, and a producer's
/// 0640 file is read-only to the daemon's group.
///
/// # Errors
/// `AlreadyExists` when `to` exists; any other error of the rename.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let from_c = CString::new(from.as_os_str().as_bytes())?;
    let to_c = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        // A file system without RENAME_NOREPLACE: the daemon holds the spool's lock, so
        // nothing else names files in its folders meanwhile.
        Some(libc::EINVAL | libc::ENOSYS) => {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            std::fs::rename(from, to)
        }
        _ => Err(error),
    }
}

/// Maps an I/O error met while doing `action` in `dir` (for `map_err`).
pub(crate) fn io_error(dir: &Path, action: &'static str) -> impl FnOnce(io::Error) -> SpoolError {
    move |e| SpoolError::from_io(dir, action, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates() {
        assert!(is_candidate_name("1700000000000000-1-abc.json"));
        for name in [".hidden.json", "x.txt", ".json", "x.json.tmp", "x.JSON"] {
            assert!(!is_candidate_name(name), "{name}");
        }
    }
}
