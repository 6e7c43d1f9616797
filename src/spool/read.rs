//! Reading a spool file safely: regular files only, never through a symlink, never
//! blocking on a FIFO or device, never more than `max_file_bytes`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

/// What reading a candidate gave.
#[derive(Debug)]
pub enum ReadOutcome {
    /// The bytes and the file's modification time.
    Bytes { bytes: Vec<u8>, mtime: SystemTime },
    /// Larger than the limit: quarantined unread.
    TooLarge { size: u64 },
    /// Not a regular file (any more): left alone.
    NotRegular,
    /// Gone (delivered by a previous run, or removed by someone else).
    Gone,
}

/// Reads `path`, at most `max_bytes`.
///
/// # Errors
/// I/O errors other than the file being gone or not regular.
pub fn read_file(path: &Path, max_bytes: u64) -> io::Result<ReadOutcome> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ReadOutcome::Gone),
        // O_NOFOLLOW on a symlink.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(ReadOutcome::NotRegular),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(ReadOutcome::NotRegular);
    }
    if meta.len() > max_bytes {
        return Ok(ReadOutcome::TooLarge { size: meta.len() });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    read_at_most(file, max_bytes, &mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Ok(ReadOutcome::TooLarge {
            size: bytes.len() as u64,
        });
    }
    Ok(ReadOutcome::Bytes {
        bytes,
        mtime: meta.modified()?,
    })
}

fn read_at_most(file: File, max_bytes: u64, bytes: &mut Vec<u8>) -> io::Result<()> {
    // One byte more than allowed tells a file that grew past the limit.
    file.take(max_bytes + 1).read_to_end(bytes).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(&file, "{}").unwrap();
        assert!(
            matches!(read_file(&file, 10).unwrap(), ReadOutcome::Bytes { bytes, .. } if bytes == b"{}")
        );
        assert!(matches!(
            read_file(&file, 1).unwrap(),
            ReadOutcome::TooLarge { size: 2 }
        ));
        assert!(matches!(
            read_file(&dir.path().join("gone.json"), 10).unwrap(),
            ReadOutcome::Gone
        ));
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(matches!(
            read_file(&link, 10).unwrap(),
            ReadOutcome::NotRegular
        ));
        let fifo = dir.path().join("fifo.json");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(
            matches!(read_file(&fifo, 10).unwrap(), ReadOutcome::NotRegular),
            "never blocks on a FIFO"
        );
        assert!(matches!(
            read_file(dir.path(), 10).unwrap(),
            ReadOutcome::NotRegular
        ));
    }
}
