//! Process exit codes (sysexits) and the one mapping from errors to them.
//!
//! Commands return `anyhow::Result<ExitCode>`: an `Ok` code is an outcome the command
//! decided on (for instance `check` finding an invalid file), an `Err` is a failure whose
//! code [`for_error`] derives from the typed errors in its chain. Nothing else in the
//! program picks an exit status.

use std::io;

use crate::config::ConfigError;
use crate::spool::SpoolError;

/// Exit statuses, following `sysexits.h` (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// The command line was wrong.
    Usage = 64,
    /// Input data was invalid (`check`, `emit`).
    DataErr = 65,
    /// An input file was missing or unreadable.
    NoInput = 66,
    /// Consul was unavailable (commands that read it).
    Unavailable = 69,
    /// A file could not be created in the spool.
    CantCreate = 73,
    /// Any other I/O error.
    IoErr = 74,
    /// Permission denied.
    NoPerm = 77,
    /// Configuration error; the unit sets `RestartPreventExitStatus=78`.
    Config = 78,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// The exit code for a failed command: the first typed error in the chain decides.
pub fn for_error(error: &anyhow::Error) -> ExitCode {
    for cause in error.chain() {
        if cause.is::<ConfigError>() {
            return ExitCode::Config;
        }
        if let Some(spool) = cause.downcast_ref::<SpoolError>() {
            return spool.exit_code();
        }
        if let Some(code) = cause.downcast_ref::<CommandError>() {
            return code.code;
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return for_io(io);
        }
    }
    ExitCode::IoErr
}

/// The exit code that fits an I/O error of the given kind.
pub fn for_io(error: &io::Error) -> ExitCode {
    match error.kind() {
        io::ErrorKind::NotFound => ExitCode::NoInput,
        io::ErrorKind::PermissionDenied => ExitCode::NoPerm,
        _ => ExitCode::IoErr,
    }
}

/// An error a command raises with an explicit exit code and a message for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// The status the process exits with.
    pub code: ExitCode,
    /// What went wrong and what to do.
    pub message: String,
}

impl CommandError {
    /// A failure with `code` and an operator-facing `message`.
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_anywhere_in_the_chain_decide_the_code() {
        let err = anyhow::Error::new(io::Error::from(io::ErrorKind::PermissionDenied))
            .context("opening the spool");
        assert_eq!(for_error(&err), ExitCode::NoPerm);
        let err = anyhow::Error::new(CommandError::new(ExitCode::Usage, "bad")).context("x");
        assert_eq!(for_error(&err), ExitCode::Usage);
        assert_eq!(for_error(&anyhow::anyhow!("untyped")), ExitCode::IoErr);
    }
}
