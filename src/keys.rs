//! Key layout: from a validated record to the Consul key and the JSON value it writes.
//!
//! Pure code. Templates come from `[keys]` (SPEC §3) and are parsed once, at
//! configuration time, into literal parts and placeholders. Every placeholder value must
//! be a safe key component, so whatever a producer sends, a key never leaves its
//! template's folder: no `/`, empty, `.` or `..` segment, no control character, no leading
//! or trailing white space.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::record::{self, Family, FieldKind, Invalid, Record};

/// The longest key component (one placeholder's value), in bytes.
pub const MAX_COMPONENT_BYTES: usize = 200;

/// Consul's default `kv_max_value_size`: a larger value is refused (SPEC §4).
pub const MAX_VALUE_BYTES: usize = 524_288;

/// The default `{prefix}`.
pub const DEFAULT_PREFIX: &str = "iaas_inventory";

/// The seed's key template of a family.
pub fn default_template(family: Family) -> &'static str {
    match family {
        Family::Deployment => "{prefix}/events/deployment/{deployment_id}/{phase}",
        Family::Host => "{prefix}/events/host/{hostname}/{phase}",
        Family::HostWorkflow => "{prefix}/events/workflow/{workflow_id}/{phase}",
        Family::Vra => "{prefix}/hosts/{source}/{hostname}",
        Family::App => "{prefix}/app/{application}/{hostname}",
    }
}

/// One record as it will be written: a key and its JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The Consul key.
    pub key: String,
    /// The value: compact JSON bytes.
    pub value: Vec<u8>,
}

/// A key template that is not usable; the configuration names `[keys].<family>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} (template {template:?})")]
pub struct TemplateError {
    /// The template as written.
    pub template: String,
    /// What is wrong with it.
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(&'static str),
    Phase,
}

/// A parsed key template with `{prefix}` already substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    family: Family,
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `source` for `family`, substituting `prefix`.
    ///
    /// # Errors
    /// An unknown or unusable placeholder, an unbalanced brace, or a literal part that
    /// would make an unsafe key (leading `/`, empty, `.` or `..` segment, control
    /// characters, leading or trailing white space).
    pub fn parse(family: Family, source: &str, prefix: &str) -> Result<Self, TemplateError> {
        let fail = |problem: String| TemplateError {
            template: source.to_owned(),
            problem,
        };
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err(fail("a `}` without its `{`".to_owned()));
            }
            literal.push_str(&rest[..open]);
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| fail("a `{` without its `}`".to_owned()))?;
            let name = &rest[open + 1..open + close];
            match name {
                "prefix" => literal.push_str(prefix),
                "phase" if family.has_phase() => {
                    flush(&mut parts, &mut literal);
                    parts.push(Part::Phase);
                }
                _ => {
                    let field = placeholder_field(family, name).map_err(fail)?;
                    flush(&mut parts, &mut literal);
                    parts.push(Part::Field(field));
                }
            }
            rest = &rest[open + close + 1..];
        }
        literal.push_str(rest);
        flush(&mut parts, &mut literal);
        let template = Self {
            family,
            source: source.to_owned(),
            parts,
        };
        // Any safe component in place of each placeholder must give a safe key.
        let sample = template.render_with(|_| "x");
        check_key_shape(&sample).map_err(fail)?;
        Ok(template)
    }

    /// The template as written in the configuration.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The fixed start of every key this template makes (up to the first placeholder).
    pub fn fixed_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(text)) => text,
            _ => "",
        }
    }

    /// The key for `record`.
    ///
    /// # Errors
    /// A field the template needs is missing, or its value is not a safe key component.
    pub fn render(&self, index: usize, record: &Record) -> Result<String, Invalid> {
        let mut key = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => key.push_str(text),
                Part::Phase => {
                    let phase = record
                        .kind
                        .phase()
                        .expect("only event families have {phase}");
                    key.push_str(phase.as_str());
                }
                Part::Field(name) => {
                    let value = component_value(record, name).ok_or_else(|| {
                        Invalid::field(
                            index,
                            name,
                            format!("missing; the key template {:?} needs it", self.source),
                        )
                    })?;
                    check_component(value).map_err(|problem| {
                        Invalid::field(
                            index,
                            name,
                            format!(
                                "{} cannot be part of a Consul key: {problem}",
                                record::quote(value)
                            ),
                        )
                    })?;
                    key.push_str(value);
                }
            }
        }
        debug_assert_eq!(check_key_shape(&key), Ok(()), "template {:?}", self.source);
        Ok(key)
    }

    fn render_with<'a>(&'a self, field: impl Fn(&str) -> &'a str) -> String {
        let mut key = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => key.push_str(text),
                Part::Phase => key.push_str("start"),
                Part::Field(name) => key.push_str(field(name)),
            }
        }
        key
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn flush(parts: &mut Vec<Part>, literal: &mut String) {
    if !literal.is_empty() {
        parts.push(Part::Literal(std::mem::take(literal)));
    }
}

/// The field a `{name}` placeholder of `family` names: a string field every type of the
/// family knows.
fn placeholder_field(family: Family, name: &str) -> Result<&'static str, String> {
    if name == "phase" {
        return Err(format!(
            "`{{phase}}` is only for event templates; a {} record has no phase",
            family.name()
        ));
    }
    let known: Vec<_> = family
        .types()
        .iter()
        .map(|t| t.field(name).filter(|f| f.kind == FieldKind::Str))
        .collect();
    match known.first() {
        Some(Some(spec)) if known.iter().all(Option::is_some) => Ok(spec.name),
        _ => {
            let usable: Vec<_> = family.types()[0]
                .fields()
                .iter()
                .filter(|f| f.kind == FieldKind::Str)
                .map(|f| format!("{{{}}}", f.name))
                .collect();
            let phase = if family.has_phase() { ", {phase}" } else { "" };
            Err(format!(
                "unknown placeholder `{{{name}}}`; a {} template may use {{prefix}}{phase}, {}",
                family.name(),
                usable.join(", ")
            ))
        }
    }
}

/// The string a placeholder takes from a record; `{application}` defaults to `source`.
fn component_value<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record
        .str_field(name)
        .or_else(|| match (record.kind.family(), name) {
            (Family::App, "application") => record.str_field("source"),
            _ => None,
        })
}

/// Whether `value` may be one key component (SPEC §3).
///
/// # Errors
/// Says in words what makes it unsafe.
pub fn check_component(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("it is empty".to_owned());
    }
    if value.len() > MAX_COMPONENT_BYTES {
        return Err(format!(
            "it is {} bytes long; the limit is {MAX_COMPONENT_BYTES}",
            value.len()
        ));
    }
    if value == "." || value == ".." {
        return Err("`.` and `..` are path segments".to_owned());
    }
    if value.contains('/') {
        return Err("it contains `/`".to_owned());
    }
    if let Some(c) = value.chars().find(|&c| !is_printable(c)) {
        return Err(format!(
            "it contains the non-printable character U+{:04X}",
            u32::from(c)
        ));
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err("it has leading or trailing white space".to_owned());
    }
    Ok(())
}

/// Whether the whole key is one Consul takes literally on every version (consul-api §2.5):
/// no leading `/`, no empty, `.` or `..` segment, printable characters only, no leading
/// or trailing white space.
fn check_key_shape(key: &str) -> Result<(), String> {
    if key.starts_with('/') {
        return Err("a key must not start with `/`".to_owned());
    }
    if key.starts_with(' ') || key.ends_with(' ') {
        return Err("a key must not start or end with white space".to_owned());
    }
    if let Some(c) = key.chars().find(|&c| !is_printable(c)) {
        return Err(format!(
            "a key must not contain the non-printable character U+{:04X}",
            u32::from(c)
        ));
    }
    for segment in key.split('/') {
        match segment {
            "" => {
                return Err(
                    "a key must not have an empty segment (`//` or a trailing `/`)".to_owned(),
                );
            }
            "." | ".." => return Err(format!("a key must not have a `{segment}` segment")),
            _ => {}
        }
    }
    Ok(())
}

/// Approximates Go's `unicode.IsPrint`, which Consul's path filter applies: ASCII space is
/// printable; control, other white space, format, private-use and non-characters are not.
pub(crate) fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = u32::from(c);
    let format = matches!(u,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF);
    let nonchar = matches!(u, 0xFDD0..=0xFDEF) || (u & 0xFFFE) == 0xFFFE;
    !(format || private || nonchar)
}

/// The key templates of every family, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    templates: [Template; 5],
}

impl Default for KeyLayout {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX, default_template).expect("the seed's templates are valid")
    }
}

impl KeyLayout {
    /// Parses one template per family, with `prefix` substituted.
    ///
    /// # Errors
    /// The family and the problem of the first unusable template, or an unusable prefix.
    pub fn new<'a>(
        prefix: &str,
        template: impl Fn(Family) -> &'a str,
    ) -> Result<Self, (Option<Family>, TemplateError)> {
        check_prefix(prefix).map_err(|problem| {
            (
                None,
                TemplateError {
                    template: prefix.to_owned(),
                    problem,
                },
            )
        })?;
        let parse = |family| {
            Template::parse(family, template(family), prefix).map_err(|e| (Some(family), e))
        };
        Ok(Self {
            templates: [
                parse(Family::Deployment)?,
                parse(Family::Host)?,
                parse(Family::HostWorkflow)?,
                parse(Family::Vra)?,
                parse(Family::App)?,
            ],
        })
    }

    /// The template of `family`.
    pub fn template(&self, family: Family) -> &Template {
        let i = Family::ALL
            .iter()
            .position(|f| *f == family)
            .expect("all families");
        &self.templates[i]
    }

    /// The entry `record` (at `index` in its file) writes.
    ///
    /// # Errors
    /// An unsafe key component, a missing key field, or a value over Consul's limit.
    pub fn entry(&self, index: usize, record: &Record) -> Result<Entry, Invalid> {
        let key = self.template(record.kind.family()).render(index, record)?;
        let value = serde_json::to_vec(&record.value()).expect("a JSON value serialises");
        if value.len() > MAX_VALUE_BYTES {
            return Err(Invalid::record(
                index,
                format!(
                    "its value for {key:?} is {} bytes; Consul refuses values over {MAX_VALUE_BYTES} bytes",
                    value.len()
                ),
            ));
        }
        Ok(Entry { key, value })
    }

    /// Validates a spool file's bytes and maps every record: what the file will write.
    ///
    /// # Errors
    /// The first problem in the file; a file is valid or invalid as a whole.
    pub fn plan_file(&self, bytes: &[u8], drop_time: DateTime<Utc>) -> Result<Vec<Entry>, Invalid> {
        let records = record::parse_file(bytes, drop_time)?;
        records
            .iter()
            .enumerate()
            .map(|(index, record)| self.entry(index, record))
            .collect()
    }
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.starts_with('/') {
        return Err(
            "`prefix` must not start with `/`: Consul keys have no leading slash".to_owned(),
        );
    }
    if prefix.is_empty() {
        return Err("`prefix` must not be empty".to_owned());
    }
    check_key_shape(prefix).map_err(|e| format!("`prefix` is not a usable key: {e}"))
}

/// The JSON value of an entry, for display (`check`) and tests.
pub fn value_json(entry: &Entry) -> Value {
    serde_json::from_slice(&entry.value).expect("entries hold JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordType;
    use proptest::prelude::*;
    use serde_json::{Map, json};

    fn record(value: Value) -> Record {
        let Value::Object(object) = value else {
            panic!()
        };
        record::parse_record(0, object, Utc::now()).unwrap()
    }

    #[test]
    fn seed_keys() {
        let layout = KeyLayout::default();
        let cases = [
            (
                json!({"type": "deployment_start", "deployment_id": "d1"}),
                "iaas_inventory/events/deployment/d1/start",
            ),
            (
                json!({"type": "deployment_end", "deployment_id": "d1", "success": true}),
                "iaas_inventory/events/deployment/d1/end",
            ),
            (
                json!({"type": "host_start", "hostname": "web01"}),
                "iaas_inventory/events/host/web01/start",
            ),
            (
                json!({"type": "host_end", "hostname": "web01", "success": false}),
                "iaas_inventory/events/host/web01/end",
            ),
            (
                json!({"type": "host_workflow_start", "workflow_id": "w9"}),
                "iaas_inventory/events/workflow/w9/start",
            ),
            (
                json!({"type": "host_workflow_end", "workflow_id": "w9", "success": true}),
                "iaas_inventory/events/workflow/w9/end",
            ),
            (
                json!({"type": "vra", "uuid": "u", "hostname": "web01", "source": "vra8"}),
                "iaas_inventory/hosts/vra8/web01",
            ),
            (
                json!({"type": "app", "uuid": "u", "hostname": "web01", "source": "cmdb", "application": "shop"}),
                "iaas_inventory/app/shop/web01",
            ),
            (
                json!({"type": "app", "uuid": "u", "hostname": "web01", "source": "cmdb"}),
                "iaas_inventory/app/cmdb/web01",
            ),
        ];
        for (value, key) in cases {
            assert_eq!(layout.entry(0, &record(value)).unwrap().key, key);
        }
    }

    #[test]
    fn template_errors() {
        let bad = [
            (
                Family::Vra,
                "{prefix}/hosts/{sauce}/{hostname}",
                "unknown placeholder `{sauce}`",
            ),
            (
                Family::Vra,
                "{prefix}/hosts/{cpu}",
                "unknown placeholder `{cpu}`",
            ),
            (
                Family::Vra,
                "{prefix}/{phase}/{hostname}",
                "only for event templates",
            ),
            (Family::Host, "{prefix}/events//{hostname}", "empty segment"),
            (Family::Host, "{prefix}/../{hostname}", "`..` segment"),
            (Family::Host, "/{prefix}/{hostname}", "start with `/`"),
            (Family::Host, "{prefix}/{hostname", "without its `}`"),
            (Family::Host, "{prefix}/hostname}", "without its `{`"),
            (Family::Host, "{prefix}/{hostname}/", "empty segment"),
            // `name` is the workflow's; a host record has none.
            (Family::Host, "{prefix}/{name}", "unknown placeholder"),
        ];
        for (family, template, needle) in bad {
            let err = Template::parse(family, template, DEFAULT_PREFIX).unwrap_err();
            assert!(err.to_string().contains(needle), "{template}: {err}");
        }
        let (family, err) = KeyLayout::new("/abs", default_template).unwrap_err();
        assert_eq!(family, None);
        assert!(err.problem.contains("must not start with `/`"), "{err}");
        // Placeholders need not fill a whole segment.
        let t = Template::parse(Family::Vra, "inv/{source}-{hostname}.vm", "p").unwrap();
        let r = record(json!({"type": "vra", "uuid": "u", "hostname": "h", "source": "s"}));
        assert_eq!(t.render(0, &r).unwrap(), "inv/s-h.vm");
    }

    #[test]
    fn unsafe_components_are_refused_with_the_field_named() {
        let layout = KeyLayout::default();
        let long = "a".repeat(5000);
        for hostname in [
            "web01/../../acl",
            ".",
            "..",
            "a\nb",
            "a\0b",
            " web",
            "web ",
            "",
            &long,
            "a\u{a0}b",
            "a\u{200b}b",
        ] {
            let r = record(json!({"type": "host_start", "hostname": hostname}));
            let err = layout.entry(3, &r).unwrap_err();
            assert_eq!(
                (err.record, err.field.as_deref()),
                (Some(3), Some("hostname")),
                "{err}"
            );
            assert!(
                err.problem.contains("cannot be part of a Consul key"),
                "{err}"
            );
        }
        for fine in ["web 01", "con..fig", "ünïcode", "a%2Fb", "x?y#z"] {
            let r = record(json!({"type": "host_start", "hostname": fine}));
            assert!(layout.entry(0, &r).is_ok(), "{fine}");
        }
        let r = record(json!({"type": "host_workflow_start", "workflow_id": "w"}));
        let custom = KeyLayout::new("p", |f| match f {
            Family::HostWorkflow => "{prefix}/{hostname}/{workflow_id}",
            other => default_template(other),
        })
        .unwrap();
        let err = custom.entry(0, &r).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("hostname"));
    }

    #[test]
    fn oversized_value_is_refused_before_sending() {
        let layout = KeyLayout::default();
        let r = record(
            json!({"type": "host_start", "hostname": "h", "blob": "x".repeat(MAX_VALUE_BYTES)}),
        );
        let err = layout.entry(0, &r).unwrap_err();
        assert!(err.problem.contains("524288"), "{err}");
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9./ -]{0,12}",
            any::<String>(),
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("a/../../b".to_owned()),
            "\\PC{0,300}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn no_key_leaves_its_folder(
            kind in proptest::sample::select(RecordType::ALL.to_vec()),
            a in any_text(), b in any_text(), c in any_text(), d in any_text(),
        ) {
            let layout = KeyLayout::default();
            let mut object = Map::new();
            object.insert("type".into(), kind.name().into());
            for (field, text) in ["deployment_id", "hostname", "workflow_id", "source"].iter().zip([&a, &b, &c, &d]) {
                object.insert((*field).into(), Value::String(text.clone()));
            }
            object.insert("uuid".into(), "u".into());
            object.insert("application".into(), Value::String(a.clone()));
            object.insert("success".into(), true.into());
            let rec = record::parse_record(0, object, Utc::now()).unwrap();
            let template = layout.template(kind.family());
            let first = layout.entry(0, &rec);
            let second = layout.entry(0, &rec);
            prop_assert_eq!(&first, &second);
            if let Ok(entry) = first {
                prop_assert!(entry.key.starts_with(template.fixed_prefix()));
                prop_assert_eq!(
                    entry.key.split('/').count(),
                    template.source().split('/').count() + DEFAULT_PREFIX.split('/').count() - 1
                );
                for segment in entry.key.split('/') {
                    prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                    prop_assert_eq!(segment.trim(), segment);
                    prop_assert!(!segment.chars().any(char::is_control));
                }
                prop_assert_eq!(value_json(&entry), rec.value());
            }
        }

        #[test]
        fn check_component_accepts_exactly_the_safe_alphabet(s in "[A-Za-z0-9_.,=-]{1,200}") {
            prop_assume!(s != "." && s != "..");
            prop_assert_eq!(check_component(&s), Ok(()));
        }
    }
}
