//! check: the tagger's output against what it was given (shape) and against the schema and the
//! text (contract), in one stage.

use linkner_core::{Candidate, Document, LabelSchema, Sentence};

use crate::error::{LinkError, Result};

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
    for (sentence, candidates) in &flat {
        check_candidates(schema, sentence, candidates)?;
    }
    Ok(flat)
}

/// The shape half of [`check`]: the output matches the input, one for one.
fn check_shape(tagged: Tagged) -> Result<Vec<(Sentence, Vec<Candidate>)>> {
    let wrong = |what: String| Err(LinkError::TaggerOutput(what));
    match tagged {
        Tagged::Texts { texts, out } => {
            if out.len() != texts.len() {
                return wrong(format!("{} results for {} texts", out.len(), texts.len()));
            }
            if let Some(i) = out.iter().zip(&texts).position(|((s, _), t)| &s.text != t) {
                return wrong(format!(
                    "the tagger changed the text of document {i}; offsets must point into the \
                     caller's original string"
                ));
            }
            Ok(out)
        }
        Tagged::Sentences { sentences, out } => {
            if out.len() != sentences.len() {
                return wrong(format!(
                    "{} results for {} sentences",
                    out.len(),
                    sentences.len()
                ));
            }
            Ok(sentences.into_iter().zip(out).collect())
        }
        Tagged::Documents { documents, out } => {
            if out.len() != documents.len()
                || out
                    .iter()
                    .zip(&documents)
                    .any(|(o, d)| o.len() != d.sentences.len())
            {
                return wrong(format!(
                    "tag_documents returned {} results for {} documents, or a document with \
                     another number of sentences",
                    out.len(),
                    documents.len()
                ));
            }
            Ok(documents
                .into_iter()
                .zip(out)
                .flat_map(|(d, o)| d.sentences.into_iter().zip(o))
                .collect())
        }
    }
}

/// Checks the tagger's output for one document: every class an entity type of the schema,
/// char offsets inside the text and matching the entity text, word spans inside the sentence.
/// Linear in the text's length plus the candidates' lengths.
pub(crate) fn check_candidates(
    schema: &LabelSchema,
    sentence: &Sentence,
    candidates: &[Candidate],
) -> Result<()> {
    if candidates.is_empty() {
        return Ok(());
    }
    let index = sentence.char_index();
    for c in candidates {
        if c.class == 0 || c.class >= schema.num_classes() {
            return Err(LinkError::TaggerOutput(format!(
                "candidate {:?} has class {}, expected 1..{} (schema `{}`)",
                c.entity.text,
                c.class,
                schema.num_classes(),
                schema.name
            )));
        }
        if c.entity.start >= c.entity.end
            || index.slice(c.entity.start, c.entity.end) != Some(c.entity.text.as_str())
        {
            return Err(LinkError::TaggerOutput(format!(
                "candidate {:?} at chars [{}, {}) does not match the text",
                c.entity.text, c.entity.start, c.entity.end
            )));
        }
        if c.span.start >= c.span.end || c.span.end > sentence.tokens.len() {
            return Err(LinkError::TaggerOutput(format!(
                "candidate {:?} has word span [{}, {}) in a sentence of {} words",
                c.entity.text,
                c.span.start,
                c.span.end,
                sentence.tokens.len()
            )));
        }
        if !c.probs.is_empty() && c.probs.len() != schema.num_classes() {
            return Err(LinkError::TaggerOutput(format!(
                "candidate {:?} has {} class probabilities, schema `{}` has {} classes",
                c.entity.text,
                c.probs.len(),
                schema.name,
                schema.num_classes()
            )));
        }
    }
    Ok(())
}
