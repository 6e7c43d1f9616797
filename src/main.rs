//! The `cndspool` binary: parse the command line, run the command, map the outcome to an
//! exit status. Everything else lives in the library.

use clap::Parser;
use cndspool::cli::Cli;
use cndspool::exit::{self, ExitCode};

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::Usage.into()
            } else {
                ExitCode::Ok.into()
            };
        }
    };
    match cli.run() {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("cndspool: {err:#}");
            exit::for_error(&err).into()
        }
    }
}
