//! Label schemas: the ordered entity types of a dataset, each with a human description and the
//! name an LLM is shown, plus the non-entity class.
//!
//! Class indices used by models: `0` is the non-entity class, `1..=types.len()` are the entity
//! types in schema order.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// One entity type of a [`LabelSchema`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityType {
    /// The tag name used in data files (`PER`, `creative-work`, …).
    pub name: String,
    /// The name shown to an LLM and accepted in its answers (`person`, …).
    pub llm_name: String,
    /// A one- or two-sentence definition, written from the dataset's annotation guidelines.
    pub description: String,
}

impl EntityType {
    /// Creates an entity type.
    pub fn new(
        name: impl Into<String>,
        llm_name: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        EntityType {
            name: name.into(),
            llm_name: llm_name.into(),
            description: description.into(),
        }
    }
}

/// An ordered set of entity types plus the non-entity class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSchema {
    /// Schema name (`conll03`, `wnut17`, …).
    pub name: String,
    /// The entity types, in class order (class `i + 1` is `types[i]`).
    pub types: Vec<EntityType>,
    /// The non-entity class (class 0); its `name` is `O`.
    pub non_entity: EntityType,
}

impl LabelSchema {
    /// Creates a schema from its types; the non-entity class gets the default wording.
    pub fn new(name: impl Into<String>, types: Vec<EntityType>) -> Self {
        LabelSchema {
            name: name.into(),
            types,
            non_entity: EntityType::new(
                "O",
                "not an entity",
                "The span is not a named entity of any of the listed types (a common word, a \
                 partial or over-long span, or an entity of a type the schema does not cover).",
            ),
        }
    }

    /// Names of the built-in schemas accepted by [`LabelSchema::builtin`].
    pub const BUILTIN: &'static [&'static str] = &["conll03", "wnut17", "twitterner", "ontonotes5"];

    /// Looks a built-in schema up by name (see [`LabelSchema::BUILTIN`]).
    pub fn builtin(name: &str) -> Result<LabelSchema> {
        match name.to_ascii_lowercase().as_str() {
            "conll03" | "conll" | "conll2003" | "wikigold" | "wiki" => Ok(Self::conll03()),
            "wnut17" | "wnut" => Ok(Self::wnut17()),
            "twitterner" | "twitter" => Ok(Self::twitterner()),
            "ontonotes5" | "ontonotes" | "notev4" => Ok(Self::ontonotes5()),
            _ => Err(CoreError::UnknownName {
                kind: "label schema",
                name: name.to_string(),
                expected: Self::BUILTIN.join(", "),
            }),
        }
    }

    /// Number of classes including the non-entity class.
    pub fn num_classes(&self) -> usize {
        self.types.len() + 1
    }

    /// The class index of a data-file type name (`0` for `O`), if the schema has it.
    pub fn class_of(&self, name: &str) -> Option<usize> {
        if name == self.non_entity.name {
            return Some(0);
        }
        self.types.iter().position(|t| t.name == name).map(|i| i + 1)
    }

    /// The entity type (or non-entity class for `0`) of a class index.
    pub fn class(&self, index: usize) -> Option<&EntityType> {
        if index == 0 {
            Some(&self.non_entity)
        } else {
            self.types.get(index - 1)
        }
    }

    /// The type names, in class order (without the non-entity class).
    pub fn type_names(&self) -> Vec<&str> {
        self.types.iter().map(|t| t.name.as_str()).collect()
    }

    /// Resolves a name an LLM answered (its `llm_name` or data `name`, any case, surrounding
    /// whitespace and punctuation ignored) to a class index.
    pub fn class_of_answer(&self, answer: &str) -> Option<usize> {
        let norm = |s: &str| {
            s.trim()
                .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
                .to_lowercase()
        };
        let a = norm(answer);
        std::iter::once(&self.non_entity)
            .chain(self.types.iter())
            .position(|t| norm(&t.llm_name) == a || norm(&t.name) == a)
    }

    /// CoNLL-2003 (and WikiGold): PER, LOC, ORG, MISC.
    pub fn conll03() -> LabelSchema {
        LabelSchema::new(
            "conll03",
            vec![
                EntityType::new(
                    "PER",
                    "person",
                    "Names of people, real or fictional, including first names, surnames, \
                     nicknames and family names (not titles or roles alone).",
                ),
                EntityType::new(
                    "LOC",
                    "location",
                    "Names of geographical and geopolitical places: countries, cities, regions, \
                     continents, rivers, mountains, streets and named facilities seen as places.",
                ),
                EntityType::new(
                    "ORG",
                    "organization",
                    "Names of organised groups: companies, institutions, government bodies, \
                     political parties, sports teams and clubs, newspapers, stock exchanges.",
                ),
                EntityType::new(
                    "MISC",
                    "miscellaneous",
                    "Other proper names: nationalities and other adjectives or nouns derived from \
                     places or groups, events, languages, religions, titles of works, products \
                     and competitions.",
                ),
            ],
        )
    }
}
