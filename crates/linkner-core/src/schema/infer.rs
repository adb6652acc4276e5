//! Schemas from the data ([`LabelSchema::infer`]), by name or file ([`LabelSchema::resolve`]),
//! and the alignment of a hand-written schema onto a model's class order
//! ([`LabelSchema::aligned_to`]).

use std::collections::HashSet;
use std::path::Path;

use super::{EntityType, LabelSchema};
use crate::error::{CoreError, Result};
use crate::text::Sentence;

/// Common NER tag abbreviations and the words an LLM understands better.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("per", "person"),
    ("pers", "person"),
    ("loc", "location"),
    ("org", "organization"),
    ("misc", "miscellaneous"),
    ("gpe", "geopolitical entity"),
    ("norp", "nationality, religious or political group"),
    ("fac", "facility"),
    ("prod", "product"),
    ("evt", "event"),
];

/// The name an LLM is shown for a data-file tag when no schema file gives one: lower case, `-`,
/// `_`, `.`, `:` and `/` and camelCase boundaries become spaces, and a whole tag that is a
/// common abbreviation (`PER`, `LOC`, `ORG`, `MISC`, `GPE`, `NORP`, `FAC`) is spelt out.
///
/// ```
/// use linkner_core::schema::llm_name_of;
/// assert_eq!(llm_name_of("geo-loc"), "geo loc");
/// assert_eq!(llm_name_of("creativeWork"), "creative work");
/// assert_eq!(llm_name_of("WORK_OF_ART"), "work of art");
/// assert_eq!(llm_name_of("PER"), "person");
/// ```
pub fn llm_name_of(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len() + 4);
    let mut prev: Option<char> = None;
    for c in tag.chars() {
        if matches!(c, '-' | '_' | '.' | ':' | '/') || c.is_whitespace() {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
        } else {
            if c.is_uppercase() && prev.is_some_and(char::is_lowercase) && !out.ends_with(' ') {
                out.push(' ');
            }
            out.extend(c.to_lowercase());
        }
        prev = Some(c);
    }
    let out = out.trim().to_string();
    match ABBREVIATIONS.iter().find(|(a, _)| *a == out) {
        Some((_, full)) => (*full).to_string(),
        None if out.is_empty() => tag.to_string(),
        None => out,
    }
}

/// The description a type gets when nobody wrote one: it names the data-file tag, which is all
/// that is known about it.
pub fn generic_description(tag: &str) -> String {
    format!(
        "A named entity of the type tagged `{tag}` in the annotated data (no description was \
         written for it)."
    )
}

impl LabelSchema {
    /// A schema inferred from labelled sentences: their entity types in order of first
    /// appearance, each with [`llm_name_of`] its tag and a [`generic_description`]. An error when
    /// the sentences have no entity. Use [`LabelSchema::builtin_matching`] first to prefer a
    /// built-in schema (with written descriptions) whose types are exactly the data's.
    pub fn infer(name: impl Into<String>, sentences: &[Sentence]) -> Result<LabelSchema> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut tags: Vec<&str> = Vec::new();
        for s in sentences {
            for span in &s.spans {
                if seen.insert(span.label.as_str()) {
                    tags.push(span.label.as_str());
                }
            }
        }
        if tags.is_empty() {
            return Err(CoreError::Mismatch(
                "the data has no entity, so no label schema can be inferred from it; give a \
                 schema (a built-in name or a schema file)"
                    .into(),
            ));
        }
        let mut types: Vec<EntityType> = tags
            .iter()
            .map(|t| EntityType::new(*t, llm_name_of(t), generic_description(t)))
            .collect();
        // Two tags that derive the same LLM name (`geo-loc`, `geo_loc`) keep their raw tags.
        let schema = LabelSchema::new(name, types.clone());
        if schema.rule_violation().is_some() {
            for t in &mut types {
                t.llm_name = t.name.clone();
            }
        }
        let schema = LabelSchema::new(schema.name, types);
        schema.validate()?;
        Ok(schema)
    }

    /// The built-in schema whose type names are exactly `names` (in any order), if any.
    pub fn builtin_matching<S: AsRef<str>>(names: &[S]) -> Option<LabelSchema> {
        let mut want: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        want.sort_unstable();
        LabelSchema::BUILTIN.iter().find_map(|b| {
            let schema = LabelSchema::builtin(b).ok()?;
            let mut have = schema.type_names();
            have.sort_unstable();
            (have == want).then_some(schema)
        })
    }

    /// A schema given on a command line or in a config: an existing file (JSON or TOML, see
    /// [`LabelSchema::from_path`]) or a built-in name ([`LabelSchema::BUILTIN`]).
    pub fn resolve(spec: &str) -> Result<LabelSchema> {
        let path = Path::new(spec);
        if path.is_file() {
            return LabelSchema::from_path(path);
        }
        LabelSchema::builtin(spec).map_err(|_| CoreError::UnknownName {
            kind: "label schema (a built-in name or a schema file)",
            name: spec.to_string(),
            expected: format!(
                "{}, or the path of a JSON/TOML schema file (no file `{spec}` exists)",
                LabelSchema::BUILTIN.join(", ")
            ),
        })
    }

    /// This schema's wording (names, LLM names, descriptions, non-entity class) in the class
    /// order of `model`: how a hand-written schema file is applied to a trained model. The two
    /// must have the same type names; a type missing from either side is a
    /// [`CoreError::Mismatch`] naming it.
    pub fn aligned_to(&self, model: &LabelSchema) -> Result<LabelSchema> {
        let missing: Vec<&str> = model
            .types
            .iter()
            .filter(|t| self.class_of(&t.name).is_none_or(|c| c == 0))
            .map(|t| t.name.as_str())
            .collect();
        let extra: Vec<&str> = self
            .types
            .iter()
            .filter(|t| model.class_of(&t.name).is_none_or(|c| c == 0))
            .map(|t| t.name.as_str())
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            let mut msg = format!(
                "schema `{}` does not fit the model's schema `{}` ({})",
                self.name,
                model.name,
                model.type_names().join(", ")
            );
            if !missing.is_empty() {
                msg.push_str(&format!("; missing: {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                msg.push_str(&format!("; not in the model: {}", extra.join(", ")));
            }
            return Err(CoreError::Mismatch(msg));
        }
        let types = model
            .types
            .iter()
            .filter_map(|t| self.types.iter().find(|s| s.name == t.name).cloned())
            .collect();
        let aligned = LabelSchema {
            name: self.name.clone(),
            types,
            non_entity: self.non_entity.clone(),
        };
        aligned.validate()?;
        Ok(aligned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::WordSpan;

    fn sentence(spans: &[(usize, usize, &str)]) -> Sentence {
        let mut s = Sentence::from_words(&["a", "b", "c", "d"]);
        s.spans = spans
            .iter()
            .map(|(a, b, l)| WordSpan::new(*a, *b, *l))
            .collect();
        s
    }

    #[test]
    fn llm_names_are_derived_from_tags() {
        for (tag, want) in [
            ("geo-loc", "geo loc"),
            ("creative-work", "creative work"),
            ("WORK_OF_ART", "work of art"),
            ("productName", "product name"),
            ("ORG", "organization"),
            ("B2B", "b2b"),
            ("---", "---"),
        ] {
            assert_eq!(llm_name_of(tag), want, "{tag}");
        }
    }

    #[test]
    fn inference_keeps_first_appearance_order() {
        let data = vec![
            sentence(&[(0, 1, "geo-loc"), (2, 3, "human")]),
            sentence(&[]),
            sentence(&[(1, 2, "human"), (3, 4, "collective")]),
        ];
        let s = LabelSchema::infer("mine", &data).unwrap();
        assert_eq!(s.name, "mine");
        assert_eq!(s.type_names(), ["geo-loc", "human", "collective"]);
        assert_eq!(s.types[0].llm_name, "geo loc");
        assert!(s.types[2].description.contains("`collective`"));
        assert!(LabelSchema::infer("x", &[sentence(&[])]).is_err());
        // Colliding derived LLM names fall back to the tags themselves.
        let s =
            LabelSchema::infer("x", &[sentence(&[(0, 1, "geo-loc"), (1, 2, "geo_loc")])]).unwrap();
        assert_eq!(s.types[0].llm_name, "geo-loc");
        assert_eq!(s.types[1].llm_name, "geo_loc");
    }

    #[test]
    fn builtins_are_matched_by_type_set() {
        let m = LabelSchema::builtin_matching(&["MISC", "PER", "ORG", "LOC"]).unwrap();
        assert_eq!(m.name, "conll03");
        assert!(LabelSchema::builtin_matching(&["PER", "LOC"]).is_none());
        assert_eq!(
            LabelSchema::builtin_matching(&LabelSchema::wnut17().type_names())
                .unwrap()
                .name,
            "wnut17"
        );
    }

    #[test]
    fn resolve_takes_names_and_files() {
        assert_eq!(LabelSchema::resolve("wnut").unwrap().name, "wnut17");
        let err = LabelSchema::resolve("nope.toml").unwrap_err().to_string();
        assert!(err.contains("no file `nope.toml`"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        std::fs::write(&p, r#"{"types": [{"name": "x"}]}"#).unwrap();
        assert_eq!(LabelSchema::resolve(p.to_str().unwrap()).unwrap().name, "s");
    }

    #[test]
    fn alignment_reorders_and_refuses_other_types() {
        let model = LabelSchema::conll03();
        let mut mine = LabelSchema::conll03();
        mine.types.reverse();
        mine.types[0].description = "Mine.".into();
        let a = mine.aligned_to(&model).unwrap();
        assert_eq!(a.type_names(), model.type_names());
        assert_eq!(a.types[3].description, "Mine.");
        let err = LabelSchema::wnut17()
            .aligned_to(&model)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing: PER, LOC, ORG, MISC"), "{err}");
        assert!(err.contains("not in the model: person"), "{err}");
    }
}
