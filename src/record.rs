//! The eight record types, and turning a spool file's bytes into validated records.
//!
//! Pure code: no I/O, no clock. The caller passes the drop time (the daemon passes the
//! file's modification time), which fills a missing `start_at` / `end_at`. A file is valid
//! or invalid as a whole: the first problem found is returned as an [`Invalid`] naming the
//! record, the field and what was expected.

use std::fmt;

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

/// The record types, named after the original library's methods (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    DeploymentStart,
    DeploymentEnd,
    HostStart,
    HostEnd,
    HostWorkflowStart,
    HostWorkflowEnd,
    Vra,
    App,
}

/// Which key template a record type uses: the start and end of an event share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Deployment,
    Host,
    HostWorkflow,
    Vra,
    App,
}

/// The `{phase}` of an event record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Start,
    End,
}

impl Phase {
    /// The phase as it appears in a key: `start` or `end`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::End => "end",
        }
    }
}

/// The JSON type a known field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A JSON string (a number is a wrong type, not converted).
    Str,
    /// `true` or `false`.
    Bool,
    /// A non-negative integer.
    UInt,
    /// An array of strings.
    StrList,
    /// A date-time string: RFC 3339, or the form Python's `str(datetime)` writes.
    DateTime,
}

impl FieldKind {
    /// What an operator is told a field of this kind should be.
    pub fn expected(self) -> &'static str {
        match self {
            FieldKind::Str => "a string",
            FieldKind::Bool => "a boolean (true or false)",
            FieldKind::UInt => "a non-negative integer",
            FieldKind::StrList => "an array of strings",
            FieldKind::DateTime => {
                "a date-time (RFC 3339 like 2024-05-01T12:00:00Z, or 2024-05-01 12:00:00.123456)"
            }
        }
    }
}

/// One known field of a record type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field's name in the spool file.
    pub name: &'static str,
    /// Its JSON type.
    pub kind: FieldKind,
    /// Whether a record without it is invalid.
    pub required: bool,
}

const fn req(name: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required: true,
    }
}

const fn opt(name: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required: false,
    }
}

use FieldKind::{Bool, DateTime as Dt, Str, StrList, UInt};

const DEPLOYMENT_START: &[FieldSpec] = &[
    req("deployment_id", Str),
    opt("service", Str),
    opt("deployment_name", Str),
    opt("project", Str),
    opt("source", Str),
    opt("owner", Str),
    opt("start_at", Dt),
];
const DEPLOYMENT_END: &[FieldSpec] = &[
    req("deployment_id", Str),
    req("success", Bool),
    opt("service", Str),
    opt("deployment_name", Str),
    opt("project", Str),
    opt("source", Str),
    opt("owner", Str),
    opt("start_at", Dt),
    opt("end_at", Dt),
];
const HOST_START: &[FieldSpec] = &[
    req("hostname", Str),
    opt("host_id", Str),
    opt("tiers", Str),
    opt("deployment_id", Str),
    opt("source", Str),
    opt("domain", Str),
    opt("start_at", Dt),
];
const HOST_END: &[FieldSpec] = &[
    req("hostname", Str),
    req("success", Bool),
    opt("host_id", Str),
    opt("tiers", Str),
    opt("deployment_id", Str),
    opt("source", Str),
    opt("domain", Str),
    opt("start_at", Dt),
    opt("end_at", Dt),
];
const HOST_WORKFLOW_START: &[FieldSpec] = &[
    req("workflow_id", Str),
    opt("application", Str),
    opt("name", Str),
    opt("hostname", Str),
    opt("domain", Str),
    opt("deployment_id", Str),
    opt("start_at", Dt),
];
const HOST_WORKFLOW_END: &[FieldSpec] = &[
    req("workflow_id", Str),
    req("success", Bool),
    opt("application", Str),
    opt("name", Str),
    opt("hostname", Str),
    opt("domain", Str),
    opt("deployment_id", Str),
    opt("start_at", Dt),
    opt("end_at", Dt),
];
const VRA: &[FieldSpec] = &[
    req("uuid", Str),
    req("hostname", Str),
    req("source", Str),
    opt("domain", Str),
    opt("tiers", Str),
    opt("datacenter", Str),
    opt("deployment_id", Str),
    opt("cloud_account", Str),
    opt("cpu", UInt),
    opt("memory", UInt),
    opt("os_type", Str),
    opt("software_name", Str),
    opt("power_state", Bool),
    opt("tags", StrList),
    opt("item_created_at", Dt),
    opt("item_updated_at", Dt),
    opt("deleted", Bool),
];
const APP: &[FieldSpec] = &[
    req("uuid", Str),
    req("hostname", Str),
    req("source", Str),
    opt("application", Str),
    opt("domain", Str),
    opt("deleted", Bool),
];

impl RecordType {
    /// Every type, in the order of SPEC §3.
    pub const ALL: [RecordType; 8] = [
        RecordType::DeploymentStart,
        RecordType::DeploymentEnd,
        RecordType::HostStart,
        RecordType::HostEnd,
        RecordType::HostWorkflowStart,
        RecordType::HostWorkflowEnd,
        RecordType::Vra,
        RecordType::App,
    ];

    /// The value of the record's `type` field.
    pub fn name(self) -> &'static str {
        match self {
            RecordType::DeploymentStart => "deployment_start",
            RecordType::DeploymentEnd => "deployment_end",
            RecordType::HostStart => "host_start",
            RecordType::HostEnd => "host_end",
            RecordType::HostWorkflowStart => "host_workflow_start",
            RecordType::HostWorkflowEnd => "host_workflow_end",
            RecordType::Vra => "vra",
            RecordType::App => "app",
        }
    }

    /// The type a `type` field names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The known fields of this type, required ones first.
    pub fn fields(self) -> &'static [FieldSpec] {
        match self {
            RecordType::DeploymentStart => DEPLOYMENT_START,
            RecordType::DeploymentEnd => DEPLOYMENT_END,
            RecordType::HostStart => HOST_START,
            RecordType::HostEnd => HOST_END,
            RecordType::HostWorkflowStart => HOST_WORKFLOW_START,
            RecordType::HostWorkflowEnd => HOST_WORKFLOW_END,
            RecordType::Vra => VRA,
            RecordType::App => APP,
        }
    }

    /// The spec of the known field `name`, if this type has one.
    pub fn field(self, name: &str) -> Option<&'static FieldSpec> {
        self.fields().iter().find(|f| f.name == name)
    }

    /// The key template this type uses.
    pub fn family(self) -> Family {
        match self {
            RecordType::DeploymentStart | RecordType::DeploymentEnd => Family::Deployment,
            RecordType::HostStart | RecordType::HostEnd => Family::Host,
            RecordType::HostWorkflowStart | RecordType::HostWorkflowEnd => Family::HostWorkflow,
            RecordType::Vra => Family::Vra,
            RecordType::App => Family::App,
        }
    }

    /// `start` or `end` for event types; `None` for inventory types.
    pub fn phase(self) -> Option<Phase> {
        match self {
            RecordType::DeploymentStart | RecordType::HostStart | RecordType::HostWorkflowStart => {
                Some(Phase::Start)
            }
            RecordType::DeploymentEnd | RecordType::HostEnd | RecordType::HostWorkflowEnd => {
                Some(Phase::End)
            }
            RecordType::Vra | RecordType::App => None,
        }
    }

    /// The date-time field filled from the drop time when a record lacks it.
    pub fn drop_time_field(self) -> Option<&'static str> {
        self.phase().map(|phase| match phase {
            Phase::Start => "start_at",
            Phase::End => "end_at",
        })
    }
}

impl Family {
    /// Every family, in the order of the `[keys]` table.
    pub const ALL: [Family; 5] = [
        Family::Deployment,
        Family::Host,
        Family::HostWorkflow,
        Family::Vra,
        Family::App,
    ];

    /// The name of this family's template in `[keys]`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Deployment => "deployment",
            Family::Host => "host",
            Family::HostWorkflow => "host_workflow",
            Family::Vra => "vra",
            Family::App => "app",
        }
    }

    /// The record types whose keys this family's template builds.
    pub fn types(self) -> &'static [RecordType] {
        match self {
            Family::Deployment => &[RecordType::DeploymentStart, RecordType::DeploymentEnd],
            Family::Host => &[RecordType::HostStart, RecordType::HostEnd],
            Family::HostWorkflow => &[RecordType::HostWorkflowStart, RecordType::HostWorkflowEnd],
            Family::Vra => &[RecordType::Vra],
            Family::App => &[RecordType::App],
        }
    }

    /// Whether the template may use `{phase}` (events have a start and an end).
    pub fn has_phase(self) -> bool {
        self.types()[0].phase().is_some()
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a spool file is invalid: which record, which field, what was expected.
///
/// Its `Display` is the sentence an operator reads in the log, the `.reason` sidecar and
/// the output of `check`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// The 0-based index of the offending record; `None` for problems of the whole file.
    pub record: Option<usize>,
    /// The offending field, if one field is to blame.
    pub field: Option<String>,
    /// What is wrong, in words.
    pub problem: String,
}

impl Invalid {
    /// A problem of the whole file (not JSON, empty, not an object or array).
    pub fn file(problem: impl Into<String>) -> Self {
        Self {
            record: None,
            field: None,
            problem: problem.into(),
        }
    }

    /// A problem of record `record` as a whole (not an object, no type).
    pub fn record(record: usize, problem: impl Into<String>) -> Self {
        Self {
            record: Some(record),
            field: None,
            problem: problem.into(),
        }
    }

    /// A problem with `field` of record `record`.
    pub fn field(record: usize, field: &str, problem: impl Into<String>) -> Self {
        Self {
            record: Some(record),
            field: Some(field.to_owned()),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.record, &self.field) {
            (Some(r), Some(field)) => write!(f, "record {r}, field `{field}`: {}", self.problem),
            (Some(r), None) => write!(f, "record {r}: {}", self.problem),
            (None, _) => f.write_str(&self.problem),
        }
    }
}

/// One validated record: its type, its known fields (normalised) and its unknown ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The record's type.
    pub kind: RecordType,
    /// Known fields with values of the right JSON type; date-times as RFC 3339.
    /// `null` optional fields are absent. Keyed by the field's name in the spool file.
    pub fields: Map<String, Value>,
    /// Fields the type does not know, kept as they came.
    pub raw: Map<String, Value>,
}

impl Record {
    /// The string value of field `name`, if present.
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// The JSON object stored in Consul for this record (SPEC §3): every known field but
    /// `type`, the workflow's `name` as `workflow_name`, `deleted` defaulting to `false`
    /// for inventory records, and unknown fields under `raw`.
    pub fn value(&self) -> Value {
        let mut out = Map::new();
        for (name, value) in &self.fields {
            let name = match (self.kind.family(), name.as_str()) {
                (Family::HostWorkflow, "name") => "workflow_name",
                _ => name.as_str(),
            };
            out.insert(name.to_owned(), value.clone());
        }
        if matches!(self.kind, RecordType::Vra | RecordType::App) {
            out.entry("deleted").or_insert(Value::Bool(false));
        }
        if !self.raw.is_empty() {
            out.insert("raw".to_owned(), Value::Object(self.raw.clone()));
        }
        Value::Object(out)
    }
}

/// Parses and validates a spool file: one JSON object or an array of objects.
///
/// `drop_time` fills a missing `start_at` (start events) or `end_at` (end events).
///
/// # Errors
/// The first problem found, naming the record and the field.
pub fn parse_file(bytes: &[u8], drop_time: DateTime<Utc>) -> Result<Vec<Record>, Invalid> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Invalid::file(
            "the file is empty; expected a JSON object or array",
        ));
    }
    let document: Value =
        serde_json::from_slice(bytes).map_err(|e| Invalid::file(format!("not valid JSON: {e}")))?;
    match document {
        Value::Object(object) => Ok(vec![parse_record(0, object, drop_time)?]),
        Value::Array(items) if items.is_empty() => Err(Invalid::file(
            "the file holds an empty array; expected at least one record",
        )),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::Object(object) => parse_record(index, object, drop_time),
                other => Err(Invalid::record(
                    index,
                    format!("expected a JSON object, found {}", describe(&other)),
                )),
            })
            .collect(),
        other => Err(Invalid::file(format!(
            "expected a JSON object (one record) or an array of objects, found {}",
            describe(&other)
        ))),
    }
}

/// Validates one record object.
///
/// # Errors
/// A missing `type` or required field, an unknown type, or a field of the wrong type.
pub fn parse_record(
    index: usize,
    mut object: Map<String, Value>,
    drop_time: DateTime<Utc>,
) -> Result<Record, Invalid> {
    let kind = match object.remove("type") {
        None | Some(Value::Null) => {
            return Err(Invalid::field(
                index,
                "type",
                "missing; every record needs a type",
            ));
        }
        Some(Value::String(name)) => RecordType::from_name(&name).ok_or_else(|| {
            Invalid::field(
                index,
                "type",
                format!(
                    "unknown type {}; expected one of {}",
                    quote(&name),
                    type_list()
                ),
            )
        })?,
        Some(other) => {
            return Err(Invalid::field(
                index,
                "type",
                format!("expected a string, found {}", describe(&other)),
            ));
        }
    };
    let mut fields = Map::new();
    let mut raw = Map::new();
    for (name, value) in object {
        match kind.field(&name) {
            Some(_) if value.is_null() => {}
            Some(spec) => {
                let value = check_kind(spec.kind, value)
                    .map_err(|problem| Invalid::field(index, &name, problem))?;
                fields.insert(name, value);
            }
            None => {
                raw.insert(name, value);
            }
        }
    }
    if let Some(missing) = kind
        .fields()
        .iter()
        .find(|f| f.required && !fields.contains_key(f.name))
    {
        return Err(Invalid::field(
            index,
            missing.name,
            format!(
                "missing; a {kind} record requires it ({})",
                missing.kind.expected()
            ),
        ));
    }
    if let Some(name) = kind.drop_time_field() {
        fields
            .entry(name)
            .or_insert_with(|| Value::String(format_drop_time(drop_time)));
    }
    Ok(Record { kind, fields, raw })
}

/// The drop time as stored when a record has no `start_at` / `end_at`.
pub fn format_drop_time(drop_time: DateTime<Utc>) -> String {
    drop_time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn check_kind(kind: FieldKind, value: Value) -> Result<Value, String> {
    let ok = match (&kind, &value) {
        (FieldKind::Str, Value::String(_)) | (FieldKind::Bool, Value::Bool(_)) => true,
        (FieldKind::UInt, Value::Number(n)) => n.is_u64(),
        (FieldKind::StrList, Value::Array(items)) => {
            if let Some((i, bad)) = items.iter().enumerate().find(|(_, v)| !v.is_string()) {
                return Err(format!(
                    "expected an array of strings, but item {i} is {}",
                    describe(bad)
                ));
            }
            true
        }
        (FieldKind::DateTime, Value::String(text)) => {
            return normalise_datetime(text)
                .map(Value::String)
                .ok_or_else(|| format!("expected {}, found {}", kind.expected(), quote(text)));
        }
        _ => false,
    };
    if ok {
        Ok(value)
    } else {
        Err(format!(
            "expected {}, found {}",
            kind.expected(),
            describe(&value)
        ))
    }
}

/// Reads a date-time as RFC 3339 (kept as given) or in a Python `str(datetime)` /
/// `isoformat()` form (a naive one is the host's local time), returning RFC 3339.
pub fn normalise_datetime(text: &str) -> Option<String> {
    if text.len() > 64 {
        return None;
    }
    if text.as_bytes().get(10) == Some(&b'T') && DateTime::parse_from_rfc3339(text).is_ok() {
        return Some(text.to_owned());
    }
    // Python writes a space between date and time, and may omit the offset.
    let iso = text.replacen(' ', "T", 1);
    if let Ok(aware) = DateTime::parse_from_rfc3339(&iso) {
        return Some(to_rfc3339(aware));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%:z"] {
        if let Ok(aware) = DateTime::parse_from_str(&iso, format) {
            return Some(to_rfc3339(aware));
        }
    }
    let naive = NaiveDateTime::parse_from_str(&iso, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    let local = Local.from_local_datetime(&naive).earliest()?;
    Some(to_rfc3339(local.fixed_offset()))
}

fn to_rfc3339(time: DateTime<FixedOffset>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A short description of a JSON value for error messages ("the string \"4\"").
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", quote(s)),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A string quoted for an error message, shortened when long, control characters escaped.
pub fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 60;
    let mut shown: String = text.chars().take(MAX_CHARS).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

fn type_list() -> String {
    RecordType::ALL
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn drop_time() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678901Z")
            .unwrap()
            .to_utc()
    }

    fn parse(value: Value) -> Result<Vec<Record>, Invalid> {
        parse_file(value.to_string().as_bytes(), drop_time())
    }

    #[test]
    fn every_type_round_trips_its_name() {
        for kind in RecordType::ALL {
            assert_eq!(RecordType::from_name(kind.name()), Some(kind));
            assert!(kind.fields().iter().any(|f| f.required));
        }
        assert_eq!(RecordType::from_name("host"), None);
    }

    #[test]
    fn start_without_start_at_gets_the_drop_time() {
        let records = parse(json!({"type": "host_start", "hostname": "web01"})).unwrap();
        assert_eq!(
            records[0].value(),
            json!({"hostname": "web01", "start_at": "2026-01-02T03:04:05.678901Z"})
        );
        let records =
            parse(json!({"type": "host_end", "hostname": "web01", "success": true})).unwrap();
        assert_eq!(records[0].value()["end_at"], "2026-01-02T03:04:05.678901Z");
        assert!(records[0].value().get("start_at").is_none());
    }

    #[test]
    fn given_rfc3339_is_stored_as_given() {
        let at = "2024-05-01T12:00:00.5+02:00";
        let records = parse(json!({"type": "deployment_start", "deployment_id": "d1",
            "start_at": at}))
        .unwrap();
        assert_eq!(records[0].value()["start_at"], at);
    }

    #[test]
    fn python_str_datetime_is_read_as_local_time() {
        // The test process may run in any zone: compare with chrono's own reading.
        let naive =
            NaiveDateTime::parse_from_str("2024-05-01 12:00:00.123456", "%Y-%m-%d %H:%M:%S%.f")
                .unwrap();
        let expected = Local
            .from_local_datetime(&naive)
            .earliest()
            .unwrap()
            .fixed_offset()
            .to_rfc3339_opts(SecondsFormat::AutoSi, true);
        assert_eq!(
            normalise_datetime("2024-05-01 12:00:00.123456").as_deref(),
            Some(expected.as_str())
        );
        assert!(expected.starts_with("2024-05-01T12:00:00.123456"));
        assert_eq!(
            normalise_datetime("2024-05-01 12:00:00+02:00").as_deref(),
            Some("2024-05-01T12:00:00+02:00")
        );
        assert_eq!(normalise_datetime("yesterday"), None);
        assert_eq!(normalise_datetime("2024-13-01 12:00:00"), None);
    }

    #[test]
    fn workflow_name_deleted_default_and_raw() {
        let records = parse(json!([
            {"type": "host_workflow_start", "workflow_id": "w1", "name": "patch",
             "start_at": "2024-05-01T00:00:00Z", "extra": {"a": 1}},
            {"type": "app", "uuid": "u", "hostname": "h", "source": "s"},
        ]))
        .unwrap();
        assert_eq!(
            records[0].value(),
            json!({"workflow_id": "w1", "workflow_name": "patch",
                   "start_at": "2024-05-01T00:00:00Z", "raw": {"extra": {"a": 1}}})
        );
        assert_eq!(
            records[1].value(),
            json!({"uuid": "u", "hostname": "h", "source": "s", "deleted": false})
        );
    }

    #[test]
    fn null_optional_fields_are_absent() {
        let records = parse(
            json!({"type": "vra", "uuid": "u", "hostname": "h", "source": "s",
                "domain": null, "cpu": 4}),
        )
        .unwrap();
        assert_eq!(
            records[0].value(),
            json!({"uuid": "u", "hostname": "h", "source": "s", "cpu": 4, "deleted": false})
        );
    }

    #[test]
    fn errors_name_record_field_and_expectation() {
        let err = parse(json!([
            {"type": "app", "uuid": "u", "hostname": "h", "source": "s"},
            {"type": "vra", "uuid": "u", "hostname": "h", "source": "s", "cpu": "4"},
        ]))
        .unwrap_err();
        assert_eq!(err.record, Some(1));
        assert_eq!(err.field.as_deref(), Some("cpu"));
        assert_eq!(
            err.to_string(),
            "record 1, field `cpu`: expected a non-negative integer, found the string \"4\""
        );

        let err = parse(json!({"type": "vra", "uuid": "u", "hostname": "h"})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("source"));
        assert!(err.problem.contains("missing"), "{err}");

        let err = parse(json!({"type": "host_begin", "hostname": "h"})).unwrap_err();
        assert!(
            err.to_string().contains("unknown type \"host_begin\""),
            "{err}"
        );
        let err = parse(json!({"hostname": "h"})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("type"));
        let err =
            parse(json!({"type": "vra", "uuid": 7, "hostname": "h", "source": "s"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "record 0, field `uuid`: expected a string, found the number 7"
        );
        let err = parse(
            json!({"type": "vra", "uuid": "u", "hostname": "h", "source": "s",
            "tags": ["a", 1]}),
        )
        .unwrap_err();
        assert!(err.problem.contains("item 1"), "{err}");
        let err = parse(
            json!({"type": "vra", "uuid": "u", "hostname": "h", "source": "s",
            "cpu": -1}),
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("cpu"));
        let err =
            parse(json!({"type": "host_end", "hostname": "h", "success": "yes"})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("success"));
    }

    #[test]
    fn whole_file_problems() {
        for (bytes, needle) in [
            (&b""[..], "empty"),
            (b"  \n", "empty"),
            (b"[]", "empty array"),
            (b"{\"type\": ", "not valid JSON"),
            (b"{} trailing", "not valid JSON"),
            (b"\"text\"", "found the string"),
            (b"[1]", "record 0: expected a JSON object"),
            (b"{\"type\": \"app\xff\"}", "not valid JSON"),
        ] {
            let err = parse_file(bytes, drop_time()).unwrap_err();
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
        let deep = "[".repeat(100_000);
        let err = parse_file(deep.as_bytes(), drop_time()).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }

    #[test]
    fn quote_shortens_and_escapes() {
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
        assert_eq!(quote(&"x".repeat(100)).chars().count(), 63);
    }
}
