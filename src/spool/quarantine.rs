//! Quarantine: an invalid file moves from `new/` to `failed/` with a `<name>.reason`
//! sidecar. Nothing is ever deleted.
//!
//! The sidecar is written first (temp → fsync → rename), then the file is renamed into
//! `failed/` under a name no other file has (never overwriting). A crash between the two
//! leaves at worst a sidecar without its file, which the next quarantine overwrites.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Spool, SpoolError, io_error, rename_noreplace};

/// The `.reason` sidecar (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Why the file was quarantined.
    pub error: String,
    /// The offending record's index, or `null` for the whole file.
    pub record: Option<usize>,
    /// The offending field, if one is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The Consul key concerned, for refusals by Consul.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// When it was quarantined (RFC 3339).
    pub quarantined_at: String,
}

/// The sidecar's path for a file in `failed/`.
pub fn reason_path(spool: &Spool, name: &str) -> PathBuf {
    spool.failed().join(format!("{name}.reason"))
}

/// Moves `new/<name>` to `failed/` with `reason`; returns the name it has there.
///
/// # Errors
/// The move or the sidecar could not be written (the file then stays in `new/`).
pub fn quarantine(spool: &Spool, name: &str, reason: &Reason) -> Result<String, SpoolError> {
    let failed = spool.failed();
    let fail = |action| io_error(&failed, action);
    let source = spool.new_dir().join(name);
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, "json"));
    for n in 0u32.. {
        let target = match n {
            0 => name.to_owned(),
            n => format!("{stem}.{n}.{ext}"),
        };
        let path = spool.failed().join(&target);
        if fs::symlink_metadata(&path).is_ok() {
            continue;
        }
        write_reason(spool, &target, reason).map_err(fail("write a .reason file"))?;
        match rename_noreplace(&source, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                let _ = fs::remove_file(reason_path(spool, &target));
                return Err(fail("move a file")(e));
            }
        }
        let _ = fs::File::open(spool.failed()).and_then(|d| d.sync_all());
        return Ok(target);
    }
    unreachable!("some name is free")
}

fn write_reason(spool: &Spool, target: &str, reason: &Reason) -> io::Result<()> {
    let mut file = tempfile::Builder::new()
        .prefix(".reason-")
        .tempfile_in(spool.failed())?;
    serde_json::to_writer_pretty(&mut file, reason)?;
    file.write_all(b"\n")?;
    file.as_file().sync_all()?;
    file.persist(reason_path(spool, target))
        .map(|_| ())
        .map_err(|e| e.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantined_files_keep_their_bytes_and_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        fs::create_dir(spool.new_dir()).unwrap();
        fs::create_dir(spool.failed()).unwrap();
        let reason = Reason {
            error: "record 0, field `cpu`: expected a non-negative integer".into(),
            record: Some(0),
            field: Some("cpu".into()),
            key: None,
            quarantined_at: "2026-01-01T00:00:00Z".into(),
        };
        for round in 0..2 {
            fs::write(spool.new_dir().join("x.json"), format!("bad {round}")).unwrap();
            let name = quarantine(&spool, "x.json", &reason).unwrap();
            assert_eq!(name, if round == 0 { "x.json" } else { "x.1.json" });
            assert_eq!(
                fs::read_to_string(spool.failed().join(&name)).unwrap(),
                format!("bad {round}")
            );
            let stored: Reason =
                serde_json::from_slice(&fs::read(reason_path(&spool, &name)).unwrap()).unwrap();
            assert_eq!(stored, reason);
        }
        assert_eq!(fs::read_dir(spool.new_dir()).unwrap().count(), 0);
    }
}
