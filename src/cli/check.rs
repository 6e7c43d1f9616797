//! `cndspool check FILE...`: what each file would write, or why it is invalid.
//!
//! The same validation the daemon runs, with the file's modification time as the drop
//! time. Exit 0 when every file is valid, 65 when one is invalid, 66 when one is missing.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::ConfigArg;
use crate::config::Overrides;
use crate::exit::ExitCode;
use crate::keys::{self, Entry, KeyLayout};
use crate::record::Invalid;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// The spool files to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

enum Outcome {
    Valid(Vec<Entry>),
    Invalid(Invalid),
    Unreadable(io::Error),
}

pub(super) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config.load(&Overrides::default())?;
    let mut code = ExitCode::Ok;
    let mut report = Vec::new();
    for path in &args.files {
        let outcome = check_file(path, &config.keys, config.spool.max_file_bytes);
        code = match (&outcome, code) {
            (Outcome::Unreadable(_), _) => ExitCode::NoInput,
            (Outcome::Invalid(_), ExitCode::Ok) => ExitCode::DataErr,
            (_, code) => code,
        };
        if args.json {
            report.push(outcome_json(path, &outcome));
        } else {
            print_text(path, &outcome);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(code)
}

fn check_file(path: &Path, layout: &KeyLayout, max_bytes: u64) -> Outcome {
    let read = || -> io::Result<(Vec<u8>, DateTime<Utc>)> {
        let file = fs::File::open(path)?;
        let modified = file.metadata()?.modified()?;
        let mut bytes = Vec::new();
        file.take(max_bytes + 1).read_to_end(&mut bytes)?;
        Ok((bytes, modified.into()))
    };
    match read() {
        Err(e) => Outcome::Unreadable(e),
        Ok((bytes, _)) if bytes.len() as u64 > max_bytes => Outcome::Invalid(Invalid::file(
            format!("the file is larger than max_file_bytes ({max_bytes} bytes)"),
        )),
        Ok((bytes, drop_time)) => match layout.plan_file(&bytes, drop_time) {
            Ok(entries) => Outcome::Valid(entries),
            Err(invalid) => Outcome::Invalid(invalid),
        },
    }
}

fn print_text(path: &Path, outcome: &Outcome) {
    let path = path.display();
    match outcome {
        Outcome::Valid(entries) => {
            let plural = if entries.len() == 1 {
                "record"
            } else {
                "records"
            };
            println!("{path}: valid, {} {plural}", entries.len());
            for entry in entries {
                println!("  {}", entry.key);
                println!("    {}", keys::value_json(entry));
            }
        }
        Outcome::Invalid(invalid) => println!("{path}: invalid: {invalid}"),
        Outcome::Unreadable(e) => println!("{path}: cannot read: {e}"),
    }
}

fn outcome_json(path: &Path, outcome: &Outcome) -> Value {
    let file = path.display().to_string();
    match outcome {
        Outcome::Valid(entries) => json!({
            "file": file,
            "valid": true,
            "records": entries.iter().enumerate().map(|(i, e)| json!({
                "record": i, "key": e.key, "value": keys::value_json(e),
            })).collect::<Vec<_>>(),
        }),
        Outcome::Invalid(invalid) => json!({
            "file": file,
            "valid": false,
            "error": invalid.to_string(),
            "record": invalid.record,
            "field": invalid.field,
        }),
        Outcome::Unreadable(e) => json!({"file": file, "valid": false, "error": e.to_string()}),
    }
}
