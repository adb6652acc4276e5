//! Schema files: a [`LabelSchema`] written by hand in JSON or TOML.
//!
//! The layout is the serde form of [`LabelSchema`] (the same object `tagger.json` embeds), with
//! every field but the types' data-file `name` optional:
//!
//! ```toml
//! name = "my-schema"               # default: the file name without extension
//!
//! [[types]]
//! name = "geo-loc"                 # the tag in the data files (B-geo-loc, I-geo-loc, ...)
//! llm_name = "geographic location" # what the LLM is shown and may answer; default: from `name`
//! description = "Names of places: countries, cities, rivers, mountains."
//!
//! [[types]]
//! name = "human"
//! description = "Names of people, real or fictional."
//!
//! [non_entity]                     # optional: the wording of the "not an entity" class
//! llm_name = "not an entity"
//! description = "The span is not a named entity of any listed type."
//! ```
//!
//! Reading goes through `serde_path_to_error`, so a value of the wrong shape is reported with
//! the path of the field (`types[2].description`), not only a line; then the schema is
//! validated ([`LabelSchema::validate`]) and a rule it breaks names its field the same way.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{EntityType, LabelSchema};
use crate::error::{CoreError, Result};

/// The on-disk form: [`LabelSchema`] with optional wording.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    #[serde(default)]
    name: Option<String>,
    types: Vec<TypeEntry>,
    #[serde(default)]
    non_entity: Option<NonEntityEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeEntry {
    name: String,
    #[serde(default)]
    llm_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NonEntityEntry {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    llm_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// The syntax of a schema file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaFormat {
    /// JSON (`.json`, or content starting with `{`).
    Json,
    /// TOML (`.toml`, or anything else).
    Toml,
}

impl SchemaFormat {
    /// The format of `path`: from its extension, else from its first non-blank character.
    pub fn detect(path: &Path, text: &str) -> SchemaFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => SchemaFormat::Json,
            Some(e) if e.eq_ignore_ascii_case("toml") => SchemaFormat::Toml,
            _ if text
                .trim_start_matches('\u{feff}')
                .trim_start()
                .starts_with('{') =>
            {
                SchemaFormat::Json
            }
            _ => SchemaFormat::Toml,
        }
    }
}

fn schema_error(path: &Path, field: impl Into<String>, message: impl Into<String>) -> CoreError {
    CoreError::Schema {
        path: path.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = 1 + before.matches('\n').count();
    let col = 1 + before.rsplit('\n').next().map_or(0, |l| l.chars().count());
    (line, col)
}

impl LabelSchema {
    /// Reads a schema file (JSON or TOML, see [`SchemaFormat::detect`]); a schema without a
    /// `name` is named after the file. Errors are [`CoreError::Schema`] naming the file and the
    /// field at fault, or [`CoreError::Io`].
    pub fn from_path(path: impl AsRef<Path>) -> Result<LabelSchema> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let format = SchemaFormat::detect(path, &text);
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("schema")
            .to_string();
        Self::parse_file(&text, format, path, &stem)
    }

    /// Parses the text of a schema file; `name` is used in errors and as the schema's name when
    /// the text gives none.
    pub fn from_str_as(text: &str, format: SchemaFormat, name: &str) -> Result<LabelSchema> {
        Self::parse_file(text, format, Path::new(name), name)
    }

    fn parse_file(
        text: &str,
        format: SchemaFormat,
        path: &Path,
        default_name: &str,
    ) -> Result<LabelSchema> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let file: SchemaFile = match format {
            SchemaFormat::Json => {
                let de = &mut serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let field = e.path().to_string();
                    let inner = e.into_inner();
                    let msg = format!(
                        "{} (line {}, column {})",
                        strip_position(&inner.to_string()),
                        inner.line(),
                        inner.column()
                    );
                    schema_error(path, field_or_root(&field), msg)
                })?
            }
            SchemaFormat::Toml => {
                let de =
                    toml::Deserializer::parse(text).map_err(|e| toml_error(path, text, "", &e))?;
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let field = e.path().to_string();
                    toml_error(path, text, &field, e.inner())
                })?
            }
        };
        let schema = file.into_schema(default_name);
        match schema.rule_violation() {
            None => Ok(schema),
            Some((field, message)) => Err(schema_error(path, field, message)),
        }
    }

    /// The schema as a JSON schema file (pretty-printed).
    pub fn to_json_string(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|source| CoreError::Json {
            path: PathBuf::from("<schema>"),
            source,
        })
    }

    /// The schema as a TOML schema file.
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| CoreError::Write {
            path: PathBuf::from("<schema>"),
            message: e.to_string(),
        })
    }
}

/// `.` for an error at the top of the document (serde_path_to_error prints an empty path).
fn field_or_root(field: &str) -> String {
    if field.is_empty() || field == "." {
        "(top level)".into()
    } else {
        field.to_string()
    }
}

/// serde_json appends " at line L column C" to its messages; the caller adds its own.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

fn toml_error(path: &Path, text: &str, field: &str, e: &toml::de::Error) -> CoreError {
    let mut msg = e.message().trim().to_string();
    if let Some(span) = e.span() {
        let (line, col) = line_col(text, span.start);
        msg = format!("{msg} (line {line}, column {col})");
    }
    schema_error(path, field_or_root(field), msg)
}

impl SchemaFile {
    fn into_schema(self, default_name: &str) -> LabelSchema {
        let types = self
            .types
            .into_iter()
            .map(|t| {
                let llm_name = t
                    .llm_name
                    .unwrap_or_else(|| super::infer::llm_name_of(&t.name));
                let description = t
                    .description
                    .unwrap_or_else(|| super::infer::generic_description(&t.name));
                EntityType::new(t.name, llm_name, description)
            })
            .collect();
        let mut schema =
            LabelSchema::new(self.name.unwrap_or_else(|| default_name.to_string()), types);
        if let Some(ne) = self.non_entity {
            if let Some(name) = ne.name {
                schema.non_entity.name = name;
            }
            if let Some(llm) = ne.llm_name {
                schema.non_entity.llm_name = llm;
            }
            if let Some(d) = ne.description {
                schema.non_entity.description = d;
            }
        }
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_err(text: &str) -> (String, String) {
        match LabelSchema::from_str_as(text, SchemaFormat::Toml, "s.toml").unwrap_err() {
            CoreError::Schema { field, message, .. } => (field, message),
            other => panic!("expected a schema error, got {other:?}"),
        }
    }

    fn json_err(text: &str) -> (String, String) {
        match LabelSchema::from_str_as(text, SchemaFormat::Json, "s.json").unwrap_err() {
            CoreError::Schema { field, message, .. } => (field, message),
            other => panic!("expected a schema error, got {other:?}"),
        }
    }

    const TOML: &str = r#"
name = "geo"

[[types]]
name = "geo-loc"
llm_name = "geographic location"
description = "Places."

[[types]]
name = "human"

[non_entity]
description = "Nothing of the kind."
"#;

    #[test]
    fn toml_and_json_give_the_same_schema_with_defaults_filled() {
        let s = LabelSchema::from_str_as(TOML, SchemaFormat::Toml, "x").unwrap();
        assert_eq!(s.name, "geo");
        assert_eq!(s.type_names(), ["geo-loc", "human"]);
        assert_eq!(s.types[0].llm_name, "geographic location");
        assert_eq!(s.types[1].llm_name, "human");
        assert!(s.types[1].description.contains("`human`"));
        assert_eq!(s.non_entity.name, "O");
        assert_eq!(s.non_entity.llm_name, "not an entity");
        assert_eq!(s.non_entity.description, "Nothing of the kind.");
        // A schema written out reads back identical, in both syntaxes.
        let json = s.to_json_string().unwrap();
        assert_eq!(
            LabelSchema::from_str_as(&json, SchemaFormat::Json, "x").unwrap(),
            s
        );
        let toml = s.to_toml_string().unwrap();
        assert_eq!(
            LabelSchema::from_str_as(&toml, SchemaFormat::Toml, "x").unwrap(),
            s
        );
        // So do the built-ins (what `linkner schema conll03` prints).
        for name in LabelSchema::BUILTIN {
            let b = LabelSchema::builtin(name).unwrap();
            let t = b.to_toml_string().unwrap();
            assert_eq!(
                LabelSchema::from_str_as(&t, SchemaFormat::Toml, "x").unwrap(),
                b
            );
        }
    }

    #[test]
    fn a_schema_without_name_is_named_after_the_file() {
        let s =
            LabelSchema::from_str_as(r#"{"types": [{"name": "A"}]}"#, SchemaFormat::Json, "mine")
                .unwrap();
        assert_eq!(s.name, "mine");
    }

    #[test]
    fn wrong_shapes_name_the_field() {
        let (field, msg) =
            toml_err("[[types]]\nname = \"a\"\n[[types]]\nname = \"b\"\ndescription = 3\n");
        assert_eq!(field, "types[1].description");
        assert!(msg.contains("line 5"), "{msg}");
        let (field, _) = toml_err("[[types]]\nllm_name = \"a\"\n");
        assert_eq!(field, "types[0]");
        let (field, msg) = toml_err("[[types]]\nname = \"a\"\ncolour = \"red\"\n");
        assert_eq!(field, "types[0].colour");
        assert!(msg.contains("colour"), "{msg}");
        let (field, msg) =
            json_err(r#"{"types": [{"name": "a"}, {"name": "b", "llm_name": ["x"]}]}"#);
        assert_eq!(field, "types[1].llm_name");
        assert!(msg.contains("line 1"), "{msg}");
        let (field, _) = json_err(r#"{"name": "x"}"#);
        assert_eq!(field, "(top level)");
        let (field, msg) = toml_err("name = \n");
        assert_eq!(field, "(top level)");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn broken_rules_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"{"types": []}"#, "types", "at least one"),
            (r#"{"types": [{"name": ""}]}"#, "types[0].name", "empty"),
            (
                r#"{"types": [{"name": "geo loc"}]}"#,
                "types[0].name",
                "whitespace",
            ),
            (
                r#"{"types": [{"name": "O"}]}"#,
                "types[0].name",
                "non-entity",
            ),
            (
                r#"{"types": [{"name": "a"}, {"name": "a"}]}"#,
                "types[1].name",
                "types[0]",
            ),
            (
                r#"{"types": [{"name": "a", "llm_name": "thing"}, {"name": "b", "llm_name": "Thing."}]}"#,
                "types[1].llm_name",
                "types[0]",
            ),
            (
                r#"{"types": [{"name": "a", "llm_name": "not an entity"}]}"#,
                "types[0].llm_name",
                "non_entity",
            ),
            (
                r#"{"types": [{"name": "a", "llm_name": "b"}, {"name": "b", "llm_name": "bee"}]}"#,
                "types[0].llm_name",
                "types[1]",
            ),
            (
                r#"{"types": [{"name": "a", "llm_name": "  "}]}"#,
                "types[0].llm_name",
                "empty",
            ),
            (
                r#"{"types": [{"name": "a", "description": ""}]}"#,
                "types[0].description",
                "empty",
            ),
            (
                r#"{"types": [{"name": "a"}], "non_entity": {"name": "NONE"}}"#,
                "non_entity.name",
                "`O`",
            ),
            (r#"{"name": "", "types": [{"name": "a"}]}"#, "name", "empty"),
        ];
        for (text, field, needle) in cases {
            let (f, msg) = json_err(text);
            assert_eq!(&f, field, "{text}: {msg}");
            assert!(msg.contains(needle), "{text}: {msg}");
        }
    }

    #[test]
    fn format_is_detected_from_extension_then_content() {
        assert_eq!(
            SchemaFormat::detect(Path::new("a.json"), "x"),
            SchemaFormat::Json
        );
        assert_eq!(
            SchemaFormat::detect(Path::new("a.TOML"), "{"),
            SchemaFormat::Toml
        );
        assert_eq!(
            SchemaFormat::detect(Path::new("a"), "  {"),
            SchemaFormat::Json
        );
        assert_eq!(
            SchemaFormat::detect(Path::new("a"), "[[types]]"),
            SchemaFormat::Toml
        );
    }

    #[test]
    fn files_are_read_and_errors_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wnut-like.toml");
        std::fs::write(&p, TOML).unwrap();
        assert_eq!(LabelSchema::from_path(&p).unwrap().name, "geo");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"types": [{"name": "x", "llm_name": 1}]}"#).unwrap();
        let err = LabelSchema::from_path(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");
        assert!(err.contains("types[0].llm_name"), "{err}");
        assert!(matches!(
            LabelSchema::from_path(dir.path().join("missing.toml")),
            Err(CoreError::Io { .. })
        ));
    }
}
