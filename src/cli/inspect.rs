//! `cndspool queue`, `cndspool failed` and `cndspool requeue`: what an operator asks of a
//! spool. Each takes `--json` for scripts.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::ConfigArg;
use crate::config::{Config, Overrides};
use crate::exit::{CommandError, ExitCode};
use crate::spool::{Spool, inspect};

/// The spool options the inspection commands share.
#[derive(Debug, clap::Args)]
pub(super) struct SpoolArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The spool folder [default: from the configuration, else /var/spool/cndspool].
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl SpoolArgs {
    fn load(&self) -> anyhow::Result<(Config, Spool)> {
        let config = self.config.load(&Overrides {
            spool_dir: self.spool.clone(),
            ..Overrides::default()
        })?;
        let spool = Spool::new(&config.spool.dir);
        Ok((config, spool))
    }
}

fn unreadable(dir: PathBuf, e: &std::io::Error) -> CommandError {
    CommandError::new(
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => ExitCode::NoPerm,
            std::io::ErrorKind::NotFound => ExitCode::NoInput,
            _ => ExitCode::IoErr,
        },
        format!(
            "cannot read {}: {e}; check --spool, or run as a member of the spool's group",
            dir.display()
        ),
    )
}

#[derive(Debug, clap::Args)]
pub(super) struct QueueArgs {
    #[command(flatten)]
    spool: SpoolArgs,
}

pub(super) fn queue(args: QueueArgs) -> anyhow::Result<ExitCode> {
    let (config, spool) = args.spool.load()?;
    let report = inspect::queue(&spool, config.spool.max_file_bytes)
        .map_err(|e| unreadable(spool.new_dir(), &e))?;
    if args.spool.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::Ok);
    }
    let oldest = report.oldest_age_s.map_or(String::new(), |s| {
        format!(
            ", oldest {}",
            humantime::format_duration(Duration::from_secs(s))
        )
    });
    println!(
        "{}: {} files waiting{oldest}",
        spool.new_dir().display(),
        report.count
    );
    for (kind, count) in &report.by_type {
        println!("  {kind:<22}{count:>8}");
    }
    if report.unreadable > 0 {
        println!("  {:<22}{:>8}", "(not valid yet)", report.unreadable);
    }
    if report.ignored > 0 {
        println!(
            "  {} other entries ignored (not *.json regular files)",
            report.ignored
        );
    }
    Ok(ExitCode::Ok)
}

#[derive(Debug, clap::Args)]
pub(super) struct FailedArgs {
    #[command(flatten)]
    spool: SpoolArgs,
}

pub(super) fn failed(args: FailedArgs) -> anyhow::Result<ExitCode> {
    let (_, spool) = args.spool.load()?;
    let files = inspect::failed(&spool).map_err(|e| unreadable(spool.failed(), &e))?;
    if args.spool.json {
        let list: Vec<_> = files
            .iter()
            .map(|f| {
                let mut item = json!({"file": f.file, "path": spool.failed().join(&f.file)});
                if let Some(reason) = &f.reason {
                    item["reason"] = serde_json::to_value(reason).expect("a reason serialises");
                }
                item
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::Ok);
    }
    for f in &files {
        match &f.reason {
            Some(reason) => {
                println!("{}  (quarantined {})", f.file, reason.quarantined_at);
                println!("    {}", reason.error);
            }
            None => println!("{}  (no .reason file)", f.file),
        }
    }
    println!(
        "{} quarantined files in {}{}",
        files.len(),
        spool.failed().display(),
        if files.is_empty() {
            ""
        } else {
            "; fix a file, check it (cndspool check FILE), then cndspool requeue FILE"
        }
    );
    Ok(ExitCode::Ok)
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["all", "files"]))]
pub(super) struct RequeueArgs {
    #[command(flatten)]
    spool: SpoolArgs,
    /// Every quarantined file.
    #[arg(long)]
    all: bool,
    /// Quarantined files, by name (or path) in failed/.
    #[arg(value_name = "FILE")]
    files: Vec<String>,
}

pub(super) fn requeue(args: RequeueArgs) -> anyhow::Result<ExitCode> {
    let (_, spool) = args.spool.load()?;
    let names = if args.all {
        inspect::failed(&spool)
            .map_err(|e| unreadable(spool.failed(), &e))?
            .into_iter()
            .map(|f| f.file)
            .collect()
    } else {
        args.files
    };
    let mut code = ExitCode::Ok;
    let mut moved = Vec::new();
    for name in &names {
        match inspect::requeue(&spool, name) {
            Ok(as_name) => {
                if !args.spool.json {
                    println!(
                        "requeued {name} as {}",
                        spool.new_dir().join(&as_name).display()
                    );
                }
                moved.push(json!({"file": name, "requeued_as": as_name}));
            }
            Err(e) => {
                let error = CommandError::new(
                    crate::exit::for_io(&e),
                    format!(
                        "cannot requeue {name} from {}: {e}",
                        spool.failed().display()
                    ),
                );
                eprintln!("cndspool: {error}");
                code = error.code;
            }
        }
    }
    if args.spool.json {
        println!("{}", serde_json::to_string_pretty(&moved)?);
    }
    Ok(code)
}
