//! `cndspool emit`: validate a record with the same code as `check`, then drop it into the
//! spool by the Maildir protocol. An invalid record drops nothing and exits 65.

use std::path::PathBuf;

use chrono::Utc;
use serde_json::{Map, Value};

use super::ConfigArg;
use crate::config::Overrides;
use crate::exit::{CommandError, ExitCode};
use crate::record::{FieldKind, RecordType};
use crate::spool::{Spool, drop};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["json", "file", "record_type"]))]
pub(super) struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// The spool folder [default: from the configuration, else /var/spool/cndspool].
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// The record (or an array of records) as JSON.
    #[arg(long, value_name = "JSON")]
    json: Option<String>,
    /// A file holding the record (or an array of records).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// The record's type, for building it with --set.
    #[arg(value_name = "TYPE")]
    record_type: Option<String>,
    /// A field of the record: `cpu=4` is an integer, `success=true` a boolean, `tags=a,b`
    /// an array, as the type's schema says; other fields are strings.
    #[arg(long = "set", value_name = "FIELD=VALUE", requires = "record_type")]
    set: Vec<String>,
}

pub(super) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        spool_dir: args.spool.clone(),
        ..Overrides::default()
    };
    let config = args.config.load(&overrides)?;
    let bytes = if let Some(json) = args.json {
        json.into_bytes()
    } else if let Some(file) = &args.file {
        std::fs::read(file).map_err(|e| {
            CommandError::new(
                crate::exit::for_io(&e),
                format!("cannot read {}: {e}", file.display()),
            )
        })?
    } else {
        let kind = args
            .record_type
            .as_deref()
            .expect("clap requires one input");
        serde_json::to_vec(&build_record(kind, &args.set)?)?
    };
    if let Err(invalid) = config.keys.plan_file(&bytes, Utc::now()) {
        eprintln!("cndspool: invalid record, nothing dropped: {invalid}");
        return Ok(ExitCode::DataErr);
    }
    let path = drop::drop_file(&Spool::new(&config.spool.dir), &bytes)?;
    println!("{}", path.display());
    Ok(ExitCode::Ok)
}

/// Builds a record object from `TYPE --set k=v ...`, typing each value by the schema.
fn build_record(kind: &str, sets: &[String]) -> Result<Value, CommandError> {
    let schema = RecordType::from_name(kind);
    let mut object = Map::new();
    object.insert("type".to_owned(), Value::String(kind.to_owned()));
    for set in sets {
        let (name, text) = set.split_once('=').ok_or_else(|| {
            CommandError::new(
                ExitCode::Usage,
                format!("--set {set:?}: expected FIELD=VALUE, for example --set hostname=web01"),
            )
        })?;
        let field_kind = schema.and_then(|t| t.field(name)).map(|f| f.kind);
        object.insert(name.to_owned(), typed_value(field_kind, text));
    }
    Ok(Value::Object(object))
}

/// The JSON value of `text` for a field of `kind`. Text that does not fit the kind stays a
/// string, so validation reports it with the field named.
fn typed_value(kind: Option<FieldKind>, text: &str) -> Value {
    match kind {
        Some(FieldKind::UInt) => text
            .parse::<u64>()
            .map_or_else(|_| text.into(), Value::from),
        Some(FieldKind::Bool) => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => text.into(),
        },
        Some(FieldKind::StrList) if text.is_empty() => Value::Array(Vec::new()),
        Some(FieldKind::StrList) => text.split(',').map(|s| Value::from(s.trim())).collect(),
        Some(FieldKind::Str | FieldKind::DateTime) | None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_values_are_typed_by_the_schema() {
        let record = build_record(
            "vra",
            &[
                "cpu=4",
                "power_state=true",
                "tags=a, b",
                "hostname=007",
                "note=5",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(
            record,
            json!({"type": "vra", "cpu": 4, "power_state": true, "tags": ["a", "b"],
                   "hostname": "007", "note": "5"})
        );
        assert_eq!(
            build_record("vra", &["cpu=four".into()]).unwrap()["cpu"],
            "four"
        );
        assert!(build_record("vra", &["cpu".into()]).is_err());
    }
}
