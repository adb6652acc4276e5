//! check: the tagger's output against what it was given (shape) and against the schema and the
//! text (contract), in one stage.

use linkner_core::{Candidate, Document, LabelSchema, Sentence};

use crate::error::{LinkError, Result, TaggerViolation};

/// What the tagger was given and what it returned, before any check.
#[derive(Debug)]
pub(crate) enum Tagged {
    /// Raw texts, and the sentence the tagger made of each with its candidates.
    Texts {
        /// The caller's texts.
        texts: Vec<String>,
        /// One result per text.
        out: Vec<(Sentence, Vec<Candidate>)>,
    },
    /// Pre-tokenised sentences and the candidates of each.
    Sentences {
        /// The caller's sentences.
        sentences: Vec<Sentence>,
        /// One candidate list per sentence.
        out: Vec<Vec<Candidate>>,
    },
    /// Documents (sentences read in context) and the candidates of each of their sentences.
    Documents {
        /// The caller's documents.
        documents: Vec<Document>,
        /// Per document, one candidate list per sentence.
        out: Vec<Vec<Vec<Candidate>>>,
    },
}

/// The check stage: the output's shape (one result per input, texts unchanged, as many
/// sentences per document as given), then every candidate's contract
/// ([`check_candidates`]). Returns the sentences with their candidates, in input order
/// (documents flattened).
pub(crate) fn check(
    schema: &LabelSchema,
    tagged: Tagged,
) -> Result<Vec<(Sentence, Vec<Candidate>)>> {
    let flat = check_shape(tagged)?;
    for (document, (sentence, candidates)) in &flat {
        check_candidates(schema, sentence, candidates).map_err(|(candidate, violation)| {
            LinkError::TaggerContract {
                document: *document,
                candidate: Some(candidate),
                violation,
            }
        })?;
    }
    Ok(flat.into_iter().map(|(_, tagged)| tagged).collect())
}

/// A shape violation of the whole output.
fn broken(document: usize, violation: TaggerViolation) -> LinkError {
    LinkError::TaggerContract {
        document,
        candidate: None,
        violation,
    }
}

/// The shape half of [`check`]: the output matches the input, one for one. Every sentence
/// comes with the index of its input (text, sentence or document) in the call.
#[allow(clippy::type_complexity)] // (input index, (sentence, candidates)), used once
fn check_shape(tagged: Tagged) -> Result<Vec<(usize, (Sentence, Vec<Candidate>))>> {
    let count = |expected: usize, got: usize| {
        broken(expected.min(got), TaggerViolation::Count { expected, got })
    };
    match tagged {
        Tagged::Texts { texts, out } => {
            if out.len() != texts.len() {
                return Err(count(texts.len(), out.len()));
            }
            if let Some(i) = out.iter().zip(&texts).position(|((s, _), t)| &s.text != t) {
                return Err(broken(i, TaggerViolation::TextChanged));
            }
            Ok(out.into_iter().enumerate().collect())
        }
        Tagged::Sentences { sentences, out } => {
            if out.len() != sentences.len() {
                return Err(count(sentences.len(), out.len()));
            }
            Ok(sentences.into_iter().zip(out).enumerate().collect())
        }
        Tagged::Documents { documents, out } => {
            if out.len() != documents.len() {
                return Err(count(documents.len(), out.len()));
            }
            if let Some((i, (o, d))) = out
                .iter()
                .zip(&documents)
                .enumerate()
                .find(|(_, (o, d))| o.len() != d.sentences.len())
            {
                let violation = TaggerViolation::Count {
                    expected: d.sentences.len(),
                    got: o.len(),
                };
                return Err(broken(i, violation));
            }
            Ok(documents
                .into_iter()
                .zip(out)
                .enumerate()
                .flat_map(|(i, (d, o))| d.sentences.into_iter().zip(o).map(move |t| (i, t)))
                .collect())
        }
    }
}

/// Checks the tagger's output for one document: every class an entity type of the schema,
/// char offsets inside the text and matching the entity text, word spans inside the sentence.
/// The first candidate that breaks the contract is returned with what it broke. Linear in the
/// text's length plus the candidates' lengths.
pub(crate) fn check_candidates(
    schema: &LabelSchema,
    sentence: &Sentence,
    candidates: &[Candidate],
) -> std::result::Result<(), (String, TaggerViolation)> {
    if candidates.is_empty() {
        return Ok(());
    }
    let index = sentence.char_index();
    let classes = schema.num_classes();
    for c in candidates {
        let violation = if c.class == 0 || c.class >= classes {
            Some(TaggerViolation::Class {
                class: c.class,
                classes,
                schema: schema.name.clone(),
            })
        } else if c.entity.start >= c.entity.end
            || index.slice(c.entity.start, c.entity.end) != Some(c.entity.text.as_str())
        {
            Some(TaggerViolation::Offsets {
                start: c.entity.start,
                end: c.entity.end,
            })
        } else if c.span.start >= c.span.end || c.span.end > sentence.tokens.len() {
            Some(TaggerViolation::WordSpan {
                start: c.span.start,
                end: c.span.end,
                words: sentence.tokens.len(),
            })
        } else if !c.probs.is_empty() && c.probs.len() != classes {
            Some(TaggerViolation::Probabilities {
                got: c.probs.len(),
                classes,
                schema: schema.name.clone(),
            })
        } else {
            None
        };
        if let Some(v) = violation {
            return Err((c.entity.text.clone(), v));
        }
    }
    Ok(())
}
