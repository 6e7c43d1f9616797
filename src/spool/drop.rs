//! Dropping a file into the spool atomically (the producer side of SPEC §2).
//!
//! The bytes go to a temporary file in `tmp/`, made group-readable (0640), fsynced, then
//! renamed into `new/` without overwriting, under a name that sorts by drop time and is
//! unique across processes. `new/` is fsynced after the rename so the drop survives a
//! crash once this returns.

use std::fs::{self, File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Spool, SpoolError, io_error as fail};

/// The mode of a dropped file: the daemon reads it through the spool's group.
pub const DROP_MODE: u32 = 0o640;

/// Writes `bytes` into the spool as one new file; returns its path in `new/`.
///
/// # Errors
/// A missing spool (exit 73), a folder the process may not write (77), other I/O (74).
pub fn drop_file(spool: &Spool, bytes: &[u8]) -> Result<PathBuf, SpoolError> {
    let tmp = spool.tmp();
    let new = spool.new_dir();
    for dir in [&tmp, &new] {
        if !fs::metadata(dir)
            .map_err(fail(dir, "find the folder"))?
            .is_dir()
        {
            return Err(SpoolError::Missing { dir: dir.clone() });
        }
    }
    let stamp = drop_stamp();
    let mut file = tempfile::Builder::new()
        .prefix(&format!("{stamp}-{}-", std::process::id()))
        .suffix(".json")
        .rand_bytes(8)
        .permissions(Permissions::from_mode(DROP_MODE))
        .tempfile_in(&tmp)
        .map_err(fail(&tmp, "create a file"))?;
    // The umask may have narrowed the mode asked for at creation.
    file.as_file()
        .set_permissions(Permissions::from_mode(DROP_MODE))
        .map_err(fail(&tmp, "set a file's mode"))?;
    file.write_all(bytes).map_err(fail(&tmp, "write a file"))?;
    file.as_file()
        .sync_all()
        .map_err(fail(&tmp, "sync a file"))?;
    let name = file
        .path()
        .file_name()
        .expect("a temporary file has a name")
        .to_owned();
    let target = new.join(name);
    file.persist_noclobber(&target)
        .map_err(|e| SpoolError::from_io(&new, "rename a file into", e.error))?;
    File::open(&new)
        .and_then(|dir| dir.sync_all())
        .map_err(fail(&new, "sync the folder"))?;
    Ok(target)
}

/// Microseconds since the epoch, zero-padded so names sort by drop time.
fn drop_stamp() -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("{micros:016}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn spool() -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        fs::create_dir(spool.tmp()).unwrap();
        fs::create_dir(spool.new_dir()).unwrap();
        (dir, spool)
    }

    #[test]
    fn drops_sort_by_time_and_are_unique() {
        let (_dir, spool) = spool();
        let paths: Vec<_> = (0..50).map(|_| drop_file(&spool, b"{}").unwrap()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert_eq!(fs::read_dir(spool.new_dir()).unwrap().count(), 50);
        assert_eq!(fs::read_dir(spool.tmp()).unwrap().count(), 0);
        let meta = fs::metadata(&paths[0]).unwrap();
        assert_eq!(meta.mode() & 0o777, DROP_MODE);
        assert!(super::super::is_candidate_name(
            paths[0].file_name().unwrap().to_str().unwrap()
        ));
    }

    #[test]
    fn missing_spool_names_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let err = drop_file(&Spool::new(dir.path().join("nope")), b"{}").unwrap_err();
        assert!(matches!(err, SpoolError::Missing { .. }));
        assert!(err.to_string().contains("nope/tmp"), "{err}");
    }
}
