//! The span-F1 scorer: exact-match entity precision / recall / F1, micro-averaged and per type.
//!
//! An entity is predicted correctly when a gold entity of the same sentence has the same first
//! word, the same last word and the same type. Counting follows Python `seqeval`
//! (`precision_recall_fscore_support`):
//!
//! - [`Mode::Conlleval`] (the default) extracts entities from tags with [`chunks`], seqeval's
//!   default mode, so scores are identical to seqeval's default mode on any tag sequence,
//!   ill-formed ones included (orphan `I-`, type changes inside a chunk), and identical to the
//!   CoNLL `conlleval` script on `B-`/`I-`/`O` tags (IOB1, IOB2 and their ill-formed mixes;
//!   conlleval predates `S-` tags, seqeval's extended rules are used for `E-`/`S-`).
//! - [`Mode::Strict`] extracts them with [`chunks_strict`], seqeval's `mode="strict"` with the
//!   given scheme: only well-formed chunks count, and a tag the scheme does not allow is an error.
//! - Entities are sets per sentence (a duplicated predicted span counts once).
//! - Precision is `correct / predicted`, recall `correct / gold`, F1 their harmonic mean; a
//!   zero denominator gives `0.0`, as seqeval's default `zero_division`.
//! - Per-type rows cover every type seen in gold or predictions, sorted by name; micro scores
//!   sum the counts of all types.
//!
//! ```
//! use linkner_core::score::{Mode, Scorer};
//!
//! let mut scorer = Scorer::new(Mode::Conlleval);
//! scorer.add_tags(&["B-PER", "I-PER", "O", "B-LOC"], &["B-PER", "I-PER", "O", "B-ORG"])?;
//! let scores = scorer.finish();
//! assert_eq!((scores.support, scores.predicted, scores.correct), (2, 2, 1));
//! assert_eq!(scores.f1, 0.5);
//! assert_eq!(scores.per_label["PER"].f1, 1.0);
//! # Ok::<(), linkner_core::CoreError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::entity::WordSpan;
use crate::error::{CoreError, Result};
use crate::tags::{TagScheme, chunks, chunks_strict};
use crate::text::{Document, Sentence};

/// How entities are read from tag sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// conlleval / seqeval default mode: any tag sequence is chunked ([`chunks`]).
    #[default]
    Conlleval,
    /// seqeval `mode="strict"` with this scheme ([`chunks_strict`]).
    Strict(TagScheme),
}

impl Mode {
    /// The entities of one tag sequence under this mode.
    pub fn chunks<S: AsRef<str>>(self, tags: &[S]) -> Result<Vec<WordSpan>> {
        match self {
            Mode::Conlleval => Ok(chunks(tags)),
            Mode::Strict(scheme) => chunks_strict(tags, scheme),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Conlleval => f.write_str("conlleval"),
            Mode::Strict(scheme) => write!(f, "strict {scheme}"),
        }
    }
}

/// Scores of one entity type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelScores {
    /// `correct / predicted` (0 when nothing was predicted).
    pub precision: f64,
    /// `correct / support` (0 when there is no gold entity).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Number of gold entities.
    pub support: usize,
    /// Number of predicted entities.
    pub predicted: usize,
    /// Number of predicted entities that match a gold entity exactly.
    pub correct: usize,
}

/// The result of a [`Scorer`]: micro-averaged scores and one row per entity type.
///
/// Serialises as `{"precision", "recall", "f1", "support", "predicted", "correct",
/// "per_label": {TYPE: {...}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Micro precision over all types.
    pub precision: f64,
    /// Micro recall over all types.
    pub recall: f64,
    /// Micro F1 over all types.
    pub f1: f64,
    /// Number of gold entities.
    pub support: usize,
    /// Number of predicted entities.
    pub predicted: usize,
    /// Number of exactly matched entities.
    pub correct: usize,
    /// Scores per entity type (every type seen in gold or predictions), sorted by name.
    pub per_label: BTreeMap<String, LabelScores>,
}

/// Precision, recall and F1 of counts, with seqeval's arithmetic (bit for bit) and its
/// zero-division value `0.0`.
fn prf(correct: usize, predicted: usize, gold: usize) -> (f64, f64, f64) {
    let divide = |num: usize, den: usize| {
        if den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        }
    };
    let precision = divide(correct, predicted);
    let recall = divide(correct, gold);
    let denom = precision + recall;
    let f1 = if denom == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / denom
    };
    (precision, recall, f1)
}

impl LabelScores {
    /// Scores of the given counts.
    pub fn from_counts(support: usize, predicted: usize, correct: usize) -> LabelScores {
        let (precision, recall, f1) = prf(correct, predicted, support);
        LabelScores {
            precision,
            recall,
            f1,
            support,
            predicted,
            correct,
        }
    }
}

impl Scores {
    /// Macro averages (unweighted means over the per-type rows) of precision, recall and F1, as
    /// seqeval's `average="macro"`; all `0.0` when there is no type.
    pub fn macro_average(&self) -> (f64, f64, f64) {
        let n = self.per_label.len();
        if n == 0 {
            return (0.0, 0.0, 0.0);
        }
        let sum = self
            .per_label
            .values()
            .fold((0.0, 0.0, 0.0), |(p, r, f), s| {
                (p + s.precision, r + s.recall, f + s.f1)
            });
        let n = n as f64;
        (sum.0 / n, sum.1 / n, sum.2 / n)
    }

    /// A human-readable table in the style of seqeval's `classification_report`: one row per
    /// type, the micro and macro averages, and the entity counts.
    pub fn table(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Scores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .per_label
            .keys()
            .map(|k| k.chars().count())
            .chain(std::iter::once("micro avg".len()))
            .max()
            .unwrap_or(9);
        writeln!(
            f,
            "{:<width$}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
            "type", "precision", "recall", "f1", "support", "predicted", "correct"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, s: &LabelScores| {
            writeln!(
                f,
                "{:<width$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>9}  {:>9}  {:>9}",
                name, s.precision, s.recall, s.f1, s.support, s.predicted, s.correct
            )
        };
        for (name, s) in &self.per_label {
            row(f, name, s)?;
        }
        writeln!(f)?;
        let micro = LabelScores {
            precision: self.precision,
            recall: self.recall,
            f1: self.f1,
            support: self.support,
            predicted: self.predicted,
            correct: self.correct,
        };
        row(f, "micro avg", &micro)?;
        let (p, r, f1) = self.macro_average();
        writeln!(
            f,
            "{:<width$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>9}",
            "macro avg", p, r, f1, self.support
        )?;
        writeln!(f)?;
        write!(
            f,
            "gold entities: {}; predicted: {}; correct: {}",
            self.support, self.predicted, self.correct
        )
    }
}

/// Counts of one type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    gold: usize,
    predicted: usize,
    correct: usize,
}

/// Accumulates gold and predicted entities sentence by sentence, then computes [`Scores`].
///
/// Feed it tags ([`Scorer::add_tags`]), word spans ([`Scorer::add_spans`]) or whole sentences
/// ([`Scorer::add_sentence`]); each call is one sentence. [`score_sentences`] and
/// [`score_documents`] do it for aligned collections.
#[derive(Debug, Clone, Default)]
pub struct Scorer {
    mode: Mode,
    counts: BTreeMap<String, Counts>,
    sentences: usize,
}

/// Which side of a comparison something belongs to, for error messages.
#[derive(Debug, Clone, Copy)]
enum Side {
    Gold,
    Pred,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Gold => "gold",
            Side::Pred => "prediction",
        }
    }
}

impl Scorer {
    /// A scorer reading tags with `mode`.
    pub fn new(mode: Mode) -> Scorer {
        Scorer {
            mode,
            counts: BTreeMap::new(),
            sentences: 0,
        }
    }

    /// The mode tags are read with.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Number of sentences added so far.
    pub fn sentences(&self) -> usize {
        self.sentences
    }

    /// Adds one sentence given as gold and predicted tags (one per word).
    ///
    /// Errors: [`CoreError::Mismatch`] when the two sequences differ in length,
    /// [`CoreError::InvalidTag`] for a tag the strict scheme does not allow; both name the
    /// sentence (1-based, in the order sentences were added). Nothing is counted on error.
    pub fn add_tags<G: AsRef<str>, P: AsRef<str>>(&mut self, gold: &[G], pred: &[P]) -> Result<()> {
        let n = self.sentences + 1;
        if gold.len() != pred.len() {
            return Err(CoreError::Mismatch(format!(
                "sentence {n}: gold has {} tags, prediction has {}",
                gold.len(),
                pred.len()
            )));
        }
        let g = self.chunk(gold, Side::Gold)?;
        let p = self.chunk(pred, Side::Pred)?;
        self.count(&g, &p);
        Ok(())
    }

    /// Adds one sentence given as gold and predicted word spans (as a span tagger produces
    /// them; the mode does not apply). Spans may overlap; a duplicated span counts once.
    ///
    /// Errors with [`CoreError::InvalidSpan`] on an empty span (`start >= end`).
    pub fn add_spans(&mut self, gold: &[WordSpan], pred: &[WordSpan]) -> Result<()> {
        check_spans(gold, None)?;
        check_spans(pred, None)?;
        self.count(gold, pred);
        Ok(())
    }

    /// Adds one sentence pair. Each side's entities are its tags read with the scorer's mode
    /// when it has tags, its `spans` otherwise.
    ///
    /// Errors with [`CoreError::Mismatch`] when the two sentences have different word counts or
    /// a sentence has a tag count different from its word count, [`CoreError::InvalidSpan`] for
    /// a span outside its sentence, and [`CoreError::InvalidTag`] as [`Scorer::add_tags`].
    pub fn add_sentence(&mut self, gold: &Sentence, pred: &Sentence) -> Result<()> {
        let n = self.sentences + 1;
        if gold.len() != pred.len() {
            return Err(CoreError::Mismatch(format!(
                "sentence {n}: gold has {} words, prediction has {} (gold sentence: `{}`)",
                gold.len(),
                pred.len(),
                preview(gold)
            )));
        }
        let g = self.entities(gold, Side::Gold)?;
        let p = self.entities(pred, Side::Pred)?;
        self.count(&g, &p);
        Ok(())
    }

    /// The scores of everything added so far (the scorer can keep accumulating).
    pub fn finish(&self) -> Scores {
        let per_label: BTreeMap<String, LabelScores> = self
            .counts
            .iter()
            .map(|(label, c)| {
                (
                    label.clone(),
                    LabelScores::from_counts(c.gold, c.predicted, c.correct),
                )
            })
            .collect();
        let total = self.counts.values().fold(Counts::default(), |a, c| Counts {
            gold: a.gold + c.gold,
            predicted: a.predicted + c.predicted,
            correct: a.correct + c.correct,
        });
        let (precision, recall, f1) = prf(total.correct, total.predicted, total.gold);
        Scores {
            precision,
            recall,
            f1,
            support: total.gold,
            predicted: total.predicted,
            correct: total.correct,
            per_label,
        }
    }

    fn chunk<S: AsRef<str>>(&self, tags: &[S], side: Side) -> Result<Vec<WordSpan>> {
        self.mode.chunks(tags).map_err(|e| match e {
            CoreError::InvalidTag {
                context,
                tag,
                scheme,
                expected,
            } => CoreError::InvalidTag {
                context: format!("sentence {}, {} {context}", self.sentences + 1, side.name()),
                tag,
                scheme,
                expected,
            },
            other => other,
        })
    }

    fn entities(&self, sentence: &Sentence, side: Side) -> Result<Vec<WordSpan>> {
        match &sentence.tags {
            Some(tags) => {
                if tags.len() != sentence.len() {
                    return Err(CoreError::Mismatch(format!(
                        "sentence {}: the {} sentence has {} words but {} tags",
                        self.sentences + 1,
                        side.name(),
                        sentence.len(),
                        tags.len()
                    )));
                }
                self.chunk(tags, side)
            }
            None => {
                check_spans(&sentence.spans, Some(sentence.len()))?;
                Ok(sentence.spans.clone())
            }
        }
    }

    /// Counts one sentence (entity sets, as seqeval).
    fn count(&mut self, gold: &[WordSpan], pred: &[WordSpan]) {
        fn key(s: &WordSpan) -> (&str, usize, usize) {
            (s.label.as_str(), s.start, s.end)
        }
        let gold: BTreeSet<(&str, usize, usize)> = gold.iter().map(key).collect();
        let pred: BTreeSet<(&str, usize, usize)> = pred.iter().map(key).collect();
        for &(label, _, _) in &gold {
            self.bump(label, 1, 0, 0);
        }
        for p in &pred {
            self.bump(p.0, 0, 1, usize::from(gold.contains(p)));
        }
        self.sentences += 1;
    }

    fn bump(&mut self, label: &str, gold: usize, predicted: usize, correct: usize) {
        if let Some(c) = self.counts.get_mut(label) {
            c.gold += gold;
            c.predicted += predicted;
            c.correct += correct;
            return;
        }
        let c = Counts {
            gold,
            predicted,
            correct,
        };
        self.counts.insert(label.to_string(), c);
    }
}

/// Checks that spans are non-empty and, when `len` is given, inside a sentence of `len` words.
fn check_spans(spans: &[WordSpan], len: Option<usize>) -> Result<()> {
    for s in spans {
        let limit = len.unwrap_or(usize::MAX);
        if s.start >= s.end || s.end > limit {
            return Err(CoreError::InvalidSpan {
                start: s.start,
                end: s.end,
                len: len.unwrap_or(s.end),
                message: format!(
                    "entity `{}` must cover at least one word of its sentence",
                    s.label
                ),
            });
        }
    }
    Ok(())
}

/// The first words of a sentence, for error messages.
fn preview(sentence: &Sentence) -> String {
    const WORDS: usize = 8;
    let words = sentence.words();
    let mut s = words
        .iter()
        .take(WORDS)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if words.len() > WORDS {
        s.push_str(" …");
    }
    s
}

fn documents(n: usize) -> String {
    if n == 1 {
        "1 document".into()
    } else {
        format!("{n} documents")
    }
}

/// Scores predicted sentences against gold sentences, pairing them in order.
///
/// Errors with [`CoreError::Mismatch`] when the counts of sentences differ, and as
/// [`Scorer::add_sentence`] for each pair.
pub fn score_sentences(gold: &[Sentence], pred: &[Sentence], mode: Mode) -> Result<Scores> {
    if gold.len() != pred.len() {
        return Err(CoreError::Mismatch(format!(
            "gold has {} sentences, prediction has {}",
            gold.len(),
            pred.len()
        )));
    }
    let mut scorer = Scorer::new(mode);
    for (g, p) in gold.iter().zip(pred) {
        scorer.add_sentence(g, p)?;
    }
    Ok(scorer.finish())
}

/// Scores predicted documents against gold documents. Sentences are paired in reading order
/// across documents (document boundaries need not agree: formats differ in how they mark them).
///
/// Errors with [`CoreError::Mismatch`] when the total counts of sentences differ, and as
/// [`Scorer::add_sentence`] for each pair.
pub fn score_documents(gold: &[Document], pred: &[Document], mode: Mode) -> Result<Scores> {
    let count = |docs: &[Document]| docs.iter().map(|d| d.sentences.len()).sum::<usize>();
    let (ng, np) = (count(gold), count(pred));
    if ng != np {
        return Err(CoreError::Mismatch(format!(
            "gold has {ng} sentences ({}), prediction has {np} sentences ({})",
            documents(gold.len()),
            documents(pred.len())
        )));
    }
    let mut scorer = Scorer::new(mode);
    let gold = gold.iter().flat_map(|d| &d.sentences);
    let pred = pred.iter().flat_map(|d| &d.sentences);
    for (g, p) in gold.zip(pred) {
        scorer.add_sentence(g, p)?;
    }
    Ok(scorer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqeval_docstring_example() {
        // seqeval's `precision_recall_fscore_support` docstring: micro 0.5 / 0.5 / 0.5, support 2.
        let gold = [
            vec!["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"],
            vec!["B-PER", "I-PER", "O"],
        ];
        let pred = [
            vec!["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"],
            vec!["B-PER", "I-PER", "O"],
        ];
        let mut scorer = Scorer::new(Mode::Conlleval);
        for (g, p) in gold.iter().zip(&pred) {
            scorer.add_tags(g, p).unwrap();
        }
        let s = scorer.finish();
        assert_eq!((s.precision, s.recall, s.f1, s.support), (0.5, 0.5, 0.5, 2));
        assert_eq!(s.per_label["MISC"].f1, 0.0);
        assert_eq!(s.per_label["PER"].f1, 1.0);
        assert_eq!(s.macro_average(), (0.5, 0.5, 0.5));
    }

    #[test]
    fn strict_mode_differs_on_orphans() {
        let gold = ["B-PER", "I-PER", "O"];
        let pred = ["I-PER", "I-PER", "O"];
        let mut default = Scorer::new(Mode::Conlleval);
        default.add_tags(&gold, &pred).unwrap();
        assert_eq!(default.finish().f1, 1.0);
        let mut strict = Scorer::new(Mode::Strict(TagScheme::Iob2));
        strict.add_tags(&gold, &pred).unwrap();
        let s = strict.finish();
        assert_eq!((s.predicted, s.correct, s.f1), (0, 0, 0.0));
    }

    #[test]
    fn errors_name_the_sentence() {
        let mut scorer = Scorer::new(Mode::Strict(TagScheme::Iob2));
        scorer.add_tags(&["O"], &["O"]).unwrap();
        let e = scorer.add_tags(&["O", "O"], &["O"]).unwrap_err();
        assert!(matches!(e, CoreError::Mismatch(_)));
        assert!(e.to_string().contains("sentence 2"), "{e}");
        let e = scorer.add_tags(&["O"], &["S-PER"]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("sentence 2, prediction word 1"), "{msg}");
        assert_eq!(scorer.sentences(), 1);
        let e = scorer
            .add_spans(&[WordSpan::new(2, 2, "PER")], &[])
            .unwrap_err();
        assert!(matches!(e, CoreError::InvalidSpan { .. }));
    }

    #[test]
    fn spans_are_sets_and_zero_division_is_zero() {
        let mut scorer = Scorer::default();
        let g = [WordSpan::new(0, 2, "PER")];
        let p = [WordSpan::new(0, 2, "PER"), WordSpan::new(0, 2, "PER")];
        scorer.add_spans(&g, &p).unwrap();
        scorer
            .add_spans(&[], &[WordSpan::new(1, 3, "LOC")])
            .unwrap();
        let s = scorer.finish();
        assert_eq!((s.support, s.predicted, s.correct), (1, 2, 1));
        let loc = s.per_label["LOC"];
        assert_eq!(
            (loc.precision, loc.recall, loc.f1, loc.support),
            (0.0, 0.0, 0.0, 0)
        );
        let empty = Scorer::default().finish();
        assert_eq!((empty.precision, empty.recall, empty.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn sentences_use_tags_when_present_and_spans_otherwise() {
        let mut gold = Sentence::from_words(&["Ann", "met", "Bob"]);
        gold.tags = Some(vec!["I-PER".into(), "O".into(), "B-PER".into()]);
        let mut pred = Sentence::from_words(&["Ann", "met", "Bob"]);
        pred.spans = vec![WordSpan::new(0, 1, "PER"), WordSpan::new(2, 3, "PER")];
        let s = score_sentences(
            std::slice::from_ref(&gold),
            std::slice::from_ref(&pred),
            Mode::Conlleval,
        )
        .unwrap();
        assert_eq!(s.f1, 1.0);
        let s = score_sentences(
            std::slice::from_ref(&gold),
            std::slice::from_ref(&pred),
            Mode::Strict(TagScheme::Iob2),
        )
        .unwrap();
        assert_eq!((s.support, s.correct), (1, 1));

        let short = Sentence::from_words(&["Ann", "met"]);
        let e = score_sentences(&[gold.clone()], &[short], Mode::Conlleval).unwrap_err();
        assert!(
            e.to_string().contains("gold has 3 words, prediction has 2"),
            "{e}"
        );
        let e = score_sentences(&[gold.clone(), gold], &[pred], Mode::Conlleval).unwrap_err();
        assert!(e.to_string().contains("gold has 2 sentences"), "{e}");
    }

    #[test]
    fn json_has_the_documented_top_level_fields() {
        let mut scorer = Scorer::default();
        scorer.add_tags(&["B-PER"], &["B-PER"]).unwrap();
        let v = serde_json::to_value(scorer.finish()).unwrap();
        for k in ["precision", "recall", "f1", "support", "per_label"] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert_eq!(v["per_label"]["PER"]["support"], 1);
        let table = scorer.finish().table();
        assert!(
            table.contains("micro avg") && table.contains("PER"),
            "{table}"
        );
    }
}
