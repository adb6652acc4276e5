//! Strict answer parsing: free text, constrained JSON and first-token log-probabilities.
//!
//! Answers are read against an [`AnswerVocabulary`] (the classes' LLM names, or one key per
//! class: see [`crate::prompt::AnswerKeys`]). Nothing here guesses: an answer that is not one of
//! them is a [`LlmError::LabelOutsideSchema`].

use linkner_core::LabelSchema;

use crate::error::{LlmError, Result};
use crate::prompt::AnswerVocabulary;

/// Normalises a label or an answer: trims whitespace, quotes and punctuation at both ends,
/// lower-cases, and collapses inner whitespace, `_` and `-` runs into one space.
pub fn normalize_label(s: &str) -> String {
    let t = s.trim_matches(|c: char| {
        c.is_whitespace() || c.is_ascii_punctuation() || "“”‘’«»".contains(c)
    });
    let mut out = String::with_capacity(t.len());
    let mut gap = false;
    for c in t.chars() {
        if c.is_whitespace() || c == '_' || c == '-' {
            gap = true;
        } else {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The class whose answer (key or LLM name), LLM name or data name equals `answer` after
/// [`normalize_label`].
fn exact_class(schema: &LabelSchema, vocab: &AnswerVocabulary, answer: &str) -> Option<usize> {
    let a = normalize_label(answer);
    if a.is_empty() {
        return None;
    }
    if let Some(c) = vocab.answers.iter().position(|k| normalize_label(k) == a) {
        return Some(c);
    }
    std::iter::once(&schema.non_entity)
        .chain(schema.types.iter())
        .position(|t| normalize_label(&t.llm_name) == a || normalize_label(&t.name) == a)
}

/// Parses a free-text answer strictly.
///
/// Accepted: exactly one label name (LLM name or data name), in any case, with surrounding
/// whitespace, quotes or punctuation, optionally after one `answer:` / `label:` / `type:` prefix,
/// and optionally on the first non-empty line only when the rest is empty. Anything else — a
/// sentence around the label, two labels, a label outside the set — is an error.
pub fn parse_free_text(
    schema: &LabelSchema,
    vocab: &AnswerVocabulary,
    text: &str,
) -> Result<usize> {
    let mut t = text.trim();
    for prefix in ["answer:", "label:", "type:", "entity type:"] {
        if t.len() >= prefix.len()
            && t.is_char_boundary(prefix.len())
            && t[..prefix.len()].eq_ignore_ascii_case(prefix)
        {
            t = t[prefix.len()..].trim();
            break;
        }
    }
    exact_class(schema, vocab, t).ok_or_else(|| LlmError::LabelOutsideSchema {
        answer: text.to_string(),
        expected: vocab.list(),
    })
}

/// Parses a constrained (JSON schema) answer `{"label": "..."}`; the label must be one of the
/// vocabulary's answers as they were given in the enum (case-insensitively).
pub fn parse_constrained(
    schema: &LabelSchema,
    vocab: &AnswerVocabulary,
    content: &str,
) -> Result<usize> {
    let v: serde_json::Value =
        serde_json::from_str(content.trim()).map_err(|e| LlmError::LabelOutsideSchema {
            answer: format!("{content} (not JSON: {e})"),
            expected: vocab.list(),
        })?;
    let label =
        v.get("label")
            .and_then(|l| l.as_str())
            .ok_or_else(|| LlmError::LabelOutsideSchema {
                answer: content.to_string(),
                expected: vocab.list(),
            })?;
    exact_class(schema, vocab, label).ok_or_else(|| LlmError::LabelOutsideSchema {
        answer: label.to_string(),
        expected: vocab.list(),
    })
}

/// Turns the top log-probabilities of the first answer token into a distribution over classes.
///
/// With keyed answers ([`AnswerVocabulary::keyed`]) a token counts for a class when, trimmed of
/// whitespace and punctuation, it *is* that class's key: every class is scored exactly. With
/// names, a token counts for a class when, normalised (trimmed, lower-cased), it is a non-empty
/// prefix of that class's normalised name; a token that is a prefix of several names splits its
/// mass evenly (use keys to avoid that). Each class's mass is the sum of its tokens'
/// probabilities; the result is renormalised to sum to 1. Returns the distribution and the
/// probability mass that fell on answer tokens before renormalising. When no token matches any
/// answer it is an error.
pub fn logprob_distribution(
    vocab: &AnswerVocabulary,
    top_logprobs: &[(String, f64)],
) -> Result<(Vec<f32>, f64)> {
    let names: Vec<String> = vocab.answers.iter().map(|a| normalize_label(a)).collect();
    let mut mass = vec![0f64; names.len()];
    for (token, lp) in top_logprobs {
        let tok = if vocab.keyed {
            normalize_label(token)
        } else {
            token.trim().to_lowercase()
        };
        if tok.is_empty() || !lp.is_finite() {
            continue;
        }
        if vocab.keyed {
            if let Some(i) = names.iter().position(|n| *n == tok) {
                mass[i] += lp.exp();
            }
            continue;
        }
        let hits: Vec<usize> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| n.starts_with(&tok))
            .map(|(i, _)| i)
            .collect();
        if hits.is_empty() {
            continue;
        }
        let p = lp.exp() / hits.len() as f64;
        for i in hits {
            mass[i] += p;
        }
    }
    let total: f64 = mass.iter().sum();
    if total.is_nan() || total <= 0.0 {
        let shown: Vec<&str> = top_logprobs
            .iter()
            .take(5)
            .map(|(t, _)| t.as_str())
            .collect();
        return Err(LlmError::LabelOutsideSchema {
            answer: format!("first tokens {shown:?}"),
            expected: vocab.list(),
        });
    }
    let dist = mass.iter().map(|m| (m / total) as f32).collect();
    Ok((dist, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{AnswerKeys, PromptTemplate};

    fn schema() -> LabelSchema {
        LabelSchema::conll03()
    }

    fn names() -> AnswerVocabulary {
        PromptTemplate::plain().vocabulary(&schema()).unwrap()
    }

    fn letters() -> AnswerVocabulary {
        PromptTemplate::full().vocabulary(&schema()).unwrap()
    }

    #[test]
    fn free_text_accepts_labels_in_any_case_and_punctuation() {
        let s = schema();
        let v = names();
        assert_eq!(parse_free_text(&s, &v, "person").unwrap(), 1);
        assert_eq!(parse_free_text(&s, &v, "  Location.\n").unwrap(), 2);
        assert_eq!(parse_free_text(&s, &v, "\"ORGANIZATION\"").unwrap(), 3);
        assert_eq!(parse_free_text(&s, &v, "Answer: miscellaneous").unwrap(), 4);
        assert_eq!(parse_free_text(&s, &v, "Not an entity").unwrap(), 0);
        assert_eq!(parse_free_text(&s, &v, "not-an-entity").unwrap(), 0);
        assert_eq!(parse_free_text(&s, &v, "PER").unwrap(), 1);
        // Keys, with the names still understood.
        let k = letters();
        assert_eq!(parse_free_text(&s, &k, "B").unwrap(), 2);
        assert_eq!(parse_free_text(&s, &k, " e) ").unwrap(), 0);
        assert_eq!(parse_free_text(&s, &k, "location").unwrap(), 2);
    }

    #[test]
    fn free_text_rejects_anything_else() {
        let s = schema();
        for bad in [
            "",
            "The entity is a person.",
            "person, location",
            "people",
            "date",
            "answer:",
            "I think organization",
            "F",
        ] {
            match parse_free_text(&s, &letters(), bad) {
                Err(LlmError::LabelOutsideSchema { .. }) => {}
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn constrained_requires_json_with_a_known_label() {
        let s = schema();
        assert_eq!(
            parse_constrained(&s, &names(), r#"{"label": "location"}"#).unwrap(),
            2
        );
        assert_eq!(
            parse_constrained(&s, &letters(), r#"{"label": "C"}"#).unwrap(),
            3
        );
        assert!(parse_constrained(&s, &names(), r#"{"label": "city"}"#).is_err());
        assert!(parse_constrained(&s, &names(), r#"{"type": "person"}"#).is_err());
        assert!(parse_constrained(&s, &names(), "person").is_err());
    }

    #[test]
    fn logprobs_are_summed_per_label_and_renormalised() {
        let top = vec![
            ("person".to_string(), (0.5f64).ln()),
            (" Person".to_string(), (0.1f64).ln()),
            ("loc".to_string(), (0.2f64).ln()),
            ("The".to_string(), (0.2f64).ln()),
        ];
        let (d, mass) = logprob_distribution(&names(), &top).unwrap();
        assert!((mass - 0.8).abs() < 1e-9);
        assert!((d[1] - 0.75).abs() < 1e-6, "{d:?}");
        assert!((d[2] - 0.25).abs() < 1e-6, "{d:?}");
        assert!((d.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(linkner_core::prob::argmax(&d), Some(1));
    }

    #[test]
    fn keyed_logprobs_score_every_class_exactly_even_when_names_share_a_first_token() {
        // WNUT-17's "creative work" and "corporation" share the first token "c" in names mode.
        let s = LabelSchema::wnut17();
        let named = PromptTemplate::plain().vocabulary(&s).unwrap();
        let c_share = vec![
            ("c".to_string(), (0.6f64).ln()),
            ("person".to_string(), (0.4f64).ln()),
        ];
        let (d, _) = logprob_distribution(&named, &c_share).unwrap();
        let corp = s.class_of("corporation").unwrap();
        let work = s.class_of("creative-work").unwrap();
        assert!(
            (d[corp] - d[work]).abs() < 1e-6,
            "names split the shared token: {d:?}"
        );
        // With letter keys each class has its own token: known logprobs give known probabilities.
        let keyed = PromptTemplate::full()
            .with_answer_keys(AnswerKeys::Letters)
            .vocabulary(&s)
            .unwrap();
        let key = |c: usize| keyed.answers[c].clone();
        let top = vec![
            (key(corp), (0.5f64).ln()),
            (format!(" {}", key(work)), (0.25f64).ln()),
            (key(0), (0.15f64).ln()),
            ("Corporation".to_string(), (0.05f64).ln()),
            (format!("{}x", key(1)), (0.05f64).ln()),
        ];
        let (d, mass) = logprob_distribution(&keyed, &top).unwrap();
        assert!((mass - 0.9).abs() < 1e-9, "{mass}");
        assert!((d[corp] - 0.5 / 0.9).abs() < 1e-6, "{d:?}");
        assert!((d[work] - 0.25 / 0.9).abs() < 1e-6, "{d:?}");
        assert!((d[0] - 0.15 / 0.9).abs() < 1e-6, "{d:?}");
        assert_eq!(d.len(), s.num_classes());
    }

    #[test]
    fn logprobs_without_any_label_token_fail() {
        let top = vec![("The".to_string(), -0.1), ("I".to_string(), -3.0)];
        for v in [names(), letters()] {
            assert!(matches!(
                logprob_distribution(&v, &top),
                Err(LlmError::LabelOutsideSchema { .. })
            ));
        }
    }

    proptest::proptest! {
        #[test]
        fn free_text_never_panics_and_stays_in_schema(s in "\\PC{0,40}") {
            let schema = schema();
            if let Ok(c) = parse_free_text(&schema, &letters(), &s) {
                proptest::prop_assert!(c < schema.num_classes());
            }
        }
    }
}
