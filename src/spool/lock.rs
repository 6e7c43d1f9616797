//! The spool's lock: one daemon per spool, held with `flock` on `<spool>/.lock` for the
//! daemon's life (the kernel releases it however the process ends).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};

use super::{Spool, SpoolError};

/// The held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct SpoolLock {
    _file: File,
}

impl SpoolLock {
    /// Takes the lock, writing this process's id into the file for the next one's error.
    ///
    /// # Errors
    /// [`SpoolError::Locked`] when another process holds it; I/O errors otherwise.
    pub fn acquire(spool: &Spool) -> Result<Self, SpoolError> {
        let path = spool.lock_file();
        let fail = |e| SpoolError::from_io(spool.root(), "open the lock file", e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(fail)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(SpoolError::Locked {
                    path,
                    holder: holder.trim().to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(fail(e)),
        }
        file.set_len(0).map_err(fail)?;
        file.rewind().map_err(fail)?;
        writeln!(file, "{}", std::process::id()).map_err(fail)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let first = SpoolLock::acquire(&spool).unwrap();
        let err = SpoolLock::acquire(&spool).unwrap_err();
        assert!(
            err.to_string().contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(first);
        SpoolLock::acquire(&spool).unwrap();
    }
}
