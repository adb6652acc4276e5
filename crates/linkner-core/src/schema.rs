//! Label schemas: the ordered entity types of a dataset, each with a human description and the
//! name an LLM is shown, plus the non-entity class.
//!
//! Class indices used by models: `0` is the non-entity class, `1..=types.len()` are the entity
//! types in schema order.
//!
//! A schema is one of the built-ins ([`LabelSchema::builtin`]), a JSON or TOML schema file
//! ([`LabelSchema::from_path`], layout in [`file`]), inferred from labelled data
//! ([`LabelSchema::infer`]), or either of the first two by one string
//! ([`LabelSchema::resolve`]). Every schema obeys [`LabelSchema::validate`]'s rules.

mod file;
mod infer;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

pub use file::SchemaFormat;
pub use infer::{generic_description, llm_name_of};

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
        self.types
            .iter()
            .position(|t| t.name == name)
            .map(|i| i + 1)
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

    /// Checks the rules every schema obeys (built-in, from a file or inferred):
    ///
    /// - the schema's `name` is not empty, and it has at least one type;
    /// - a type's data-file `name` is not empty, has no whitespace (data files separate columns
    ///   with it), is not `O` and is unique;
    /// - `llm_name`s and descriptions are not empty, and no two classes (the non-entity class
    ///   included) can be confused by an LLM answer: every `name` and `llm_name`, compared the way
    ///   [`LabelSchema::class_of_answer`] compares answers, belongs to one class only;
    /// - the non-entity class is named `O`.
    ///
    /// A broken rule is a [`CoreError::Schema`] naming the field (`types[2].llm_name`).
    pub fn validate(&self) -> Result<()> {
        match self.rule_violation() {
            None => Ok(()),
            Some((field, message)) => Err(CoreError::Schema {
                path: format!("<schema {}>", self.name).into(),
                field,
                message,
            }),
        }
    }

    /// The first rule of [`LabelSchema::validate`] the schema breaks: `(field, message)`.
    pub(crate) fn rule_violation(&self) -> Option<(String, String)> {
        if let Some(broken) = self.header_violation() {
            return Some(broken);
        }
        let classes: Vec<&EntityType> = std::iter::once(&self.non_entity)
            .chain(self.types.iter())
            .collect();
        // Data names first: they come from the data and cannot be chosen; LLM names can, so a
        // clash between the two is blamed on the LLM name.
        let mut owner: HashMap<String, usize> = HashMap::new();
        if let Some(broken) = self.data_name_violation(&classes, &mut owner) {
            return Some(broken);
        }
        Self::llm_name_violation(&classes, &mut owner)
    }

    /// The rules checked before any type: the schema's name, its number of types, and the
    /// non-entity class's name.
    fn header_violation(&self) -> Option<(String, String)> {
        let bad = |field: String, message: String| Some((field, message));
        if self.name.trim().is_empty() {
            return bad("name".into(), "the schema's name is empty".into());
        }
        if self.types.is_empty() {
            return bad(
                "types".into(),
                "a schema needs at least one entity type (`[[types]]` entries with a `name`)"
                    .into(),
            );
        }
        if self.non_entity.name != "O" {
            return bad(
                "non_entity.name".into(),
                format!(
                    "`{}`: the non-entity class is the `O` tag of the data files; its name must be `O` (leave the field out)",
                    self.non_entity.name
                ),
            );
        }
        None
    }

    /// The data-file names, class by class (`classes[0]` is the non-entity class): empty, with
    /// whitespace, `O`, or a second name with the same answer key; each one's key is entered
    /// in `owner` (answer key → class).
    fn data_name_violation(
        &self,
        classes: &[&EntityType],
        owner: &mut HashMap<String, usize>,
    ) -> Option<(String, String)> {
        let bad = |field: String, message: String| Some((field, message));
        for (c, t) in classes.iter().enumerate() {
            if c > 0 {
                let f = class_field(c, "name");
                if t.name.is_empty() {
                    return bad(f, "the type's data-file name is empty".into());
                }
                if t.name.chars().any(char::is_whitespace) {
                    return bad(
                        f,
                        format!(
                            "`{}` contains whitespace; data files separate columns with it, so a tag cannot hold any",
                            t.name
                        ),
                    );
                }
                if t.name == "O" {
                    return bad(
                        f,
                        "`O` is the non-entity tag; an entity type needs another name".into(),
                    );
                }
            }
            let key = answer_key(&t.name);
            if let Some(&other) = owner.get(&key) {
                let f = class_field(c, "name");
                let what = if self.types.iter().filter(|x| x.name == t.name).count() > 1 {
                    format!(
                        "`{}` is listed twice (also {})",
                        t.name,
                        class_field(other, "name")
                    )
                } else {
                    format!(
                        "`{}` cannot be told apart from {} in an LLM answer (case and punctuation are ignored)",
                        t.name,
                        class_field(other, "name")
                    )
                };
                return bad(f, what);
            }
            owner.insert(key, c);
        }
        None
    }

    /// The LLM names (empty, not on one line, or the answer key of another class) and the
    /// descriptions, class by class; each LLM name's key is entered in `owner`.
    fn llm_name_violation(
        classes: &[&EntityType],
        owner: &mut HashMap<String, usize>,
    ) -> Option<(String, String)> {
        let bad = |field: String, message: String| Some((field, message));
        for (c, t) in classes.iter().enumerate() {
            let f = class_field(c, "llm_name");
            let key = answer_key(&t.llm_name);
            if key.is_empty() {
                return bad(
                    f,
                    "the LLM name is empty (after trimming spaces and punctuation)".into(),
                );
            }
            if t.llm_name.contains(['\n', '\r']) {
                return bad(f, "the LLM name must fit on one line".into());
            }
            match owner.get(&key) {
                Some(&other) if other != c => {
                    let what = if answer_key(&classes[other].name) == key {
                        class_field(other, "name")
                    } else {
                        class_field(other, "llm_name")
                    };
                    return bad(
                        f,
                        format!(
                            "`{}` is also {what}: an LLM answer could not be mapped to one class",
                            t.llm_name
                        ),
                    );
                }
                _ => {
                    owner.insert(key, c);
                }
            }
            if t.description.trim().is_empty() {
                return bad(
                    class_field(c, "description"),
                    "the description is empty; write one or two sentences, or leave the field out for a generic one"
                        .into(),
                );
            }
        }
        None
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

    /// WNUT-17 emerging and rare entities: person, location, group, corporation, product,
    /// creative-work (data-file names, with the hyphen).
    pub fn wnut17() -> LabelSchema {
        LabelSchema::new(
            "wnut17",
            vec![
                EntityType::new(
                    "person",
                    "person",
                    "The name of a specific person, real or fictional, as long as they are \
                     referred to by their own name (including user names that stand for a \
                     person); not pronouns, roles or unnamed people.",
                ),
                EntityType::new(
                    "location",
                    "location",
                    "The name of a specific place, real or fictional: countries, cities, \
                     regions, streets, buildings, landmarks and natural features that carry a \
                     proper name.",
                ),
                EntityType::new(
                    "group",
                    "group",
                    "The name of a specific group of people that is not a company: bands, \
                     sports teams, political parties, movements, organisations and other \
                     collectives with a unique name.",
                ),
                EntityType::new(
                    "corporation",
                    "corporation",
                    "The name of a company or business (a commercial organisation), such as a \
                     manufacturer, a broadcaster, a web service operator or a shop chain.",
                ),
                EntityType::new(
                    "product",
                    "product",
                    "The name of a specific product or model made by people, real or \
                     fictional: devices, software, vehicles, brands of goods; not generic \
                     kinds of things.",
                ),
                EntityType::new(
                    "creative-work",
                    "creative work",
                    "The title of a specific work made by people: songs, albums, books, films, \
                     TV shows, games, paintings and other works referred to by their name.",
                ),
            ],
        )
    }

    /// TwitterNER (tweets, Zhang et al. 2018): PER, LOC, ORG, OTHER.
    pub fn twitterner() -> LabelSchema {
        LabelSchema::new(
            "twitterner",
            vec![
                EntityType::new(
                    "PER",
                    "person",
                    "Names of people, real or fictional, including first names, surnames, \
                     nicknames and names written as handles or hashtags when they name a person.",
                ),
                EntityType::new(
                    "LOC",
                    "location",
                    "Names of places: countries, states, cities, neighbourhoods, geographic \
                     features and named venues seen as places.",
                ),
                EntityType::new(
                    "ORG",
                    "organization",
                    "Names of organisations: companies, brands seen as companies, institutions, \
                     government bodies, media outlets, bands and sports teams.",
                ),
                EntityType::new(
                    "OTHER",
                    "miscellaneous",
                    "Other proper names that are not a person, location or organisation: \
                     events, holidays, titles of works, products, nationalities and similar \
                     named things.",
                ),
            ],
        )
    }

    /// OntoNotes 5.0: the 18 types of its named-entity layer (PERSON, NORP, FAC, ORG, GPE, LOC,
    /// PRODUCT, EVENT, WORK_OF_ART, LAW, LANGUAGE, DATE, TIME, PERCENT, MONEY, QUANTITY,
    /// ORDINAL, CARDINAL).
    pub fn ontonotes5() -> LabelSchema {
        let t = EntityType::new;
        LabelSchema::new(
            "ontonotes5",
            vec![
                t(
                    "PERSON",
                    "person",
                    "Names of people, real or fictional, including family names.",
                ),
                t(
                    "NORP",
                    "nationality, religious or political group",
                    "Nationalities, religious groups and political groups, as nouns or \
                     adjectives (French, Buddhist, Republican).",
                ),
                t(
                    "FAC",
                    "facility",
                    "Named man-made structures: buildings, airports, highways, bridges, \
                     stadiums, monuments.",
                ),
                t(
                    "ORG",
                    "organization",
                    "Names of companies, agencies, institutions, teams, parties and other \
                     organised bodies.",
                ),
                t(
                    "GPE",
                    "geopolitical entity",
                    "Geo-political entities, places with a government: countries, states, \
                     provinces, cities.",
                ),
                t(
                    "LOC",
                    "location",
                    "Places that are not geo-political entities: mountain ranges, bodies of \
                     water, continents, regions without a government of their own.",
                ),
                t(
                    "PRODUCT",
                    "product",
                    "Named objects made by people: vehicles, weapons, foods, devices and other \
                     goods (not services).",
                ),
                t(
                    "EVENT",
                    "event",
                    "Named events: hurricanes and other disasters, battles, wars, sports \
                     competitions, festivals.",
                ),
                t(
                    "WORK_OF_ART",
                    "work of art",
                    "Titles of books, songs, films, paintings, shows and other creative works.",
                ),
                t(
                    "LAW",
                    "law",
                    "Named documents that have been made into laws: acts, treaties, \
                     constitutions, regulations.",
                ),
                t(
                    "LANGUAGE",
                    "language",
                    "Any named human language, such as English, Mandarin or Latin.",
                ),
                t(
                    "DATE",
                    "date",
                    "Absolute or relative dates and periods of a day or longer (May 5, last \
                     year, the 1990s).",
                ),
                t(
                    "TIME",
                    "time",
                    "Times and periods shorter than a day (noon, 3 p.m., two hours).",
                ),
                t(
                    "PERCENT",
                    "percent",
                    "Percentages, including the word percent or the % sign.",
                ),
                t(
                    "MONEY",
                    "money",
                    "Monetary values, including the unit or currency.",
                ),
                t(
                    "QUANTITY",
                    "quantity",
                    "Measurements with a unit, such as weight, distance, area or volume.",
                ),
                t(
                    "ORDINAL",
                    "ordinal",
                    "Ordinal numbers: first, second, 3rd, and so on.",
                ),
                t(
                    "CARDINAL",
                    "cardinal number",
                    "Numerals that are not covered by another type (counts, plain numbers).",
                ),
            ],
        )
    }
}

/// A name or answer the way [`LabelSchema::class_of_answer`] compares them: trimmed of
/// whitespace and ASCII punctuation, lower-cased.
fn answer_key(s: &str) -> String {
    s.trim()
        .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .to_lowercase()
}

/// The field of class `class`'s `what` in a schema file (`non_entity.name`, `types[2].llm_name`).
fn class_field(class: usize, what: &str) -> String {
    if class == 0 {
        format!("non_entity.{what}")
    } else {
        format!("types[{}].{what}", class - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_well_formed() {
        let expected: [(&str, &[&str]); 4] = [
            ("conll03", &["PER", "LOC", "ORG", "MISC"]),
            (
                "wnut17",
                &[
                    "person",
                    "location",
                    "group",
                    "corporation",
                    "product",
                    "creative-work",
                ],
            ),
            ("twitterner", &["PER", "LOC", "ORG", "OTHER"]),
            (
                "ontonotes5",
                &[
                    "PERSON",
                    "NORP",
                    "FAC",
                    "ORG",
                    "GPE",
                    "LOC",
                    "PRODUCT",
                    "EVENT",
                    "WORK_OF_ART",
                    "LAW",
                    "LANGUAGE",
                    "DATE",
                    "TIME",
                    "PERCENT",
                    "MONEY",
                    "QUANTITY",
                    "ORDINAL",
                    "CARDINAL",
                ],
            ),
        ];
        for (name, types) in expected {
            let schema = LabelSchema::builtin(name).unwrap();
            assert_eq!(schema.name, name);
            assert_eq!(schema.type_names(), types, "{name}");
            assert_eq!(schema.num_classes(), types.len() + 1);
            let mut llm: Vec<String> = schema
                .types
                .iter()
                .map(|t| t.llm_name.to_lowercase())
                .collect();
            llm.push(schema.non_entity.llm_name.to_lowercase());
            llm.sort();
            llm.dedup();
            assert_eq!(
                llm.len(),
                types.len() + 1,
                "{name}: LLM names must be distinct"
            );
            for (i, t) in schema.types.iter().enumerate() {
                assert!(t.description.len() > 20, "{name}/{}: description", t.name);
                assert!(t.description.ends_with('.'), "{name}/{}", t.name);
                assert_eq!(schema.class_of(&t.name), Some(i + 1));
                assert_eq!(schema.class_of_answer(&t.llm_name), Some(i + 1));
                assert_eq!(
                    schema.class_of_answer(&format!(" {}. ", t.name)),
                    Some(i + 1)
                );
            }
        }
        assert_eq!(LabelSchema::builtin("WNUT").unwrap(), LabelSchema::wnut17());
        assert_eq!(
            LabelSchema::builtin("notev4").unwrap(),
            LabelSchema::ontonotes5()
        );
        assert!(matches!(
            LabelSchema::builtin("bioner"),
            Err(CoreError::UnknownName { .. })
        ));
    }
}
