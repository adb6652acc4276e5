//! Offsets and windowing with the REAL tagger: the MiniLM encoder with a SpanNER head, trained in
//! the test (seeded) on synthetic sentences until it finds the planted entities, then run
//! through the public API (`Pipeline::annotate*`, `SpanTagger::score_spans`).
//!
//! 1. Unicode: hand-written sentences with precomposed and combining accents, CJK, emoji, emoji
//!    ZWJ sequences and flags, right-to-left text (Arabic, Hebrew) and bidi control marks; the
//!    expected `(text, start, end, label)` of every entity is written by hand below (char
//!    offsets into the original string), never derived from the pipeline's own output.
//! 2. Windowing: one text of more than 2,000 words (far more than the 512 sub-tokens one
//!    MiniLM window holds) with entities planted near the start, on both sides of every window
//!    edge and near the end: every planted entity is found once, with exact offsets; and the
//!    logits of every span equal (to 1e-4) those of the words of the window that owns the span,
//!    encoded alone.
//! 3. Windowing against an independent cut: a text of more than 2,000 words with hundreds of
//!    planted entities, tagged whole and as pieces the test cuts itself (each one window),
//!    gives the same entities, offsets shifted back, in every region both runs see with context.
//!
//! The tagger is trained once per test binary (~30-60 s on one CPU thread).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::BTreeSet;
use std::sync::Arc;

use linkner::core::Sentence;
use linkner::core::{PredictOptions, sentence_from_text};
use linkner::tagger::SpanTagger;
use linkner::tagger::internals::SpanTaggerInternals;
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, RoutingPolicy};

#[path = "real_tagger/fixture.rs"]
mod fixture;
use fixture::*;

// ---------------------------------------------------------------------------------------------
// 1. Unicode offsets, expected values written by hand
// ---------------------------------------------------------------------------------------------

/// One hand-written case: the text and its entities `(text, start, end, label)` in char
/// offsets (Unicode scalar values) of the text.
type Case = (
    &'static str,
    &'static [(&'static str, usize, usize, &'static str)],
);

const CASES: &[Case] = &[
    // Precomposed accents; a capitalised opener that is no entity.
    (
        "Yesterday Zoë Müller flew from Kraków to São Paulo .",
        &[
            ("Zoë Müller", 10, 20, "PER"),
            ("Kraków", 31, 37, "LOC"),
            ("São Paulo", 41, 50, "LOC"),
        ],
    ),
    // Combining acute accents: each is a char of its own, inside the entity and before it.
    (
        "the letter from Jose\u{301} Rami\u{301}rez reached Krako\u{301}w on time .",
        &[
            ("Jose\u{301} Rami\u{301}rez", 16, 30, "PER"),
            ("Krako\u{301}w", 39, 46, "LOC"),
        ],
    ),
    // CJK: one word per ideograph, the entity spans two.
    (
        "the train to 東京 left at noon with Renée Dubois .",
        &[("東京", 13, 15, "LOC"), ("Renée Dubois", 34, 46, "PER")],
    ),
    // Emoji glued to the entities (split off as words of their own).
    (
        "🎉Renée Dubois joined Siemens🚀 today .",
        &[("Renée Dubois", 1, 13, "PER"), ("Siemens", 21, 28, "ORG")],
    ),
    // Emoji ZWJ sequences (5 and 3 chars, one grapheme each) and a flag (2 chars).
    (
        "the 👨\u{200D}👩\u{200D}👧 family from Paris met Zoë Müller 👩\u{200D}🚀 🇮🇹 .",
        &[("Paris", 22, 27, "LOC"), ("Zoë Müller", 32, 42, "PER")],
    ),
    // Right-to-left text (Arabic), then a Latin entity after it.
    (
        "ذهب أحمد إلى القاهرة مع Toyota .",
        &[
            ("أحمد", 4, 8, "PER"),
            ("القاهرة", 13, 20, "LOC"),
            ("Toyota", 24, 30, "ORG"),
        ],
    ),
    // Right-to-left text (Hebrew) inside a left-to-right sentence.
    (
        "the trip to ירושלים started with דוד .",
        &[("ירושלים", 12, 19, "LOC"), ("דוד", 33, 36, "PER")],
    ),
    // Bidi controls (RLM, RLE … PDF, LRM) around the entities: never part of them.
    (
        "\u{200F}القاهرة\u{200F} and \u{202B}Toyota\u{202C} met \u{200E}Paris\u{200E} .",
        &[
            ("القاهرة", 1, 8, "LOC"),
            ("Toyota", 15, 21, "ORG"),
            ("Paris", 28, 33, "LOC"),
        ],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_offsets_of_a_real_tagger_match_hand_written_ones() {
    let p = pipeline(tagger());
    let texts: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    let docs = p.annotate_batch(&texts).await.unwrap();
    assert_eq!(docs.len(), CASES.len());
    let mut missing = Vec::new();
    let mut checked = 0;
    for ((text, expected), doc) in CASES.iter().zip(&docs) {
        assert_eq!(doc.text(), *text);
        let got = found(doc);
        let scores: Vec<f32> = doc.entities.iter().filter_map(|e| e.entity.score).collect();
        eprintln!("{text:?}: {got:?} (scores {scores:?})");
        for &(etext, start, end, label) in *expected {
            let want = (etext.to_string(), start, end, label.to_string());
            if got.contains(&want) {
                checked += 1;
            } else {
                missing.push(format!("{text:?}: expected {want:?}, got {got:?}"));
            }
        }
        // Whatever else was found points into the text too (its chars are its text).
        let chars: Vec<char> = text.chars().collect();
        for (t, s, e, _) in &got {
            assert!(s < e && *e <= chars.len(), "{text:?}: {s}..{e}");
            assert_eq!(*t, chars[*s..*e].iter().collect::<String>());
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    assert_eq!(checked, CASES.iter().map(|c| c.1.len()).sum::<usize>());
    // The cases are not vacuous: byte offsets differ from char offsets in all but the plain one.
    let differ = CASES
        .iter()
        .filter(|(text, ents)| ents.iter().any(|(e, s, _, _)| text.find(e) != Some(*s)))
        .count();
    assert!(
        differ >= 6,
        "only {differ} cases where bytes and chars differ"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. A text of more than 2,000 words: windows, planted entities, logits
// ---------------------------------------------------------------------------------------------

/// Windows `(word_start, word_end, core_start, core_end)` the tagger cuts `sentence` into.
fn windows(tagger: &SpanTagger, sentence: &Sentence) -> Vec<(usize, usize, usize, usize)> {
    tagger
        .prepare(std::slice::from_ref(sentence))
        .unwrap()
        .iter()
        .map(|i| {
            let w = i.enc.window;
            (w.word_start, w.word_end, w.core_start, w.core_end)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_text_entities_at_window_edges_are_found_with_exact_offsets() {
    let tagger = tagger();
    // Filler words of one sub-token each (so planting one-token entity words keeps the windows).
    let mut rng = Rng(0xF111_E4E4_0000_0002);
    let n = 2_400;
    let mut words: Vec<String> = (0..n)
        .map(|i| {
            if i % 23 == 22 {
                ".".to_string()
            } else {
                rng.pick(&FILLER[..29]).to_string()
            }
        })
        .collect();
    words[n - 1] = ".".into();
    let plain = Sentence::from_words(&words);
    let before = windows(tagger, &plain);
    assert!(before.len() >= 4, "expected several windows: {before:?}");

    // Plant: near the start, around every window edge (the last word a window owns, the first
    // word of the next core, the first and last word a window encodes), near the end.
    let mut planted: Vec<(usize, Vec<&str>, &str)> = Vec::new();
    let mut taken = BTreeSet::new();
    let mut plant = |at: usize, ws: Vec<&'static str>, label: &'static str| {
        let span = at.saturating_sub(2)..(at + ws.len() + 2).min(n);
        if at + ws.len() < n && span.clone().all(|i| !taken.contains(&i)) {
            taken.extend(span);
            planted.push((at, ws, label));
        }
    };
    plant(0, vec!["Anna", "Smith"], "PER");
    plant(5, vec!["Paris"], "LOC");
    for k in 0..before.len() - 1 {
        let (_, word_end, _, core_end) = before[k];
        let (next_start, _, _, _) = before[k + 1];
        // The first word the next window encodes (left context there, core here).
        plant(next_start, vec!["Siemens"], "ORG");
        // A two-word entity starting on the last word a window owns: it crosses the core edge.
        plant(core_end - 1, vec!["Peter", "Blackburn"], "PER");
        // Just inside the next core, and the last words this window encodes.
        plant(core_end + 5, vec!["Berlin"], "LOC");
        plant(word_end - 1, vec!["Japan"], "LOC");
        plant(word_end - 6, vec!["Toyota"], "ORG");
    }
    plant(n - 6, vec!["Anna", "Smith"], "PER");
    plant(n - 2, vec!["Japan"], "LOC");
    for (at, ws, _) in &planted {
        for (k, w) in ws.iter().enumerate() {
            words[at + k] = (*w).to_string();
        }
    }
    let edges = before.len() - 1;
    assert!(
        planted.len() >= 2 + 3 * edges,
        "too few entities planted: {planted:?} for windows {before:?}"
    );

    // The text, and the char offsets of the planted entities computed from the word lengths.
    let text = words.join(" ");
    let mut offsets = Vec::with_capacity(n);
    let mut pos = 0;
    for w in &words {
        offsets.push(pos);
        pos += w.chars().count() + 1;
    }
    let expected: Vec<(String, usize, usize, String)> = planted
        .iter()
        .map(|(at, ws, label)| {
            let start = offsets[*at];
            let surface = ws.join(" ");
            let end = start + surface.chars().count();
            (surface, start, end, label.to_string())
        })
        .collect();
    let sentence = sentence_from_text(&text);
    assert_eq!(sentence.tokens.len(), n);
    let after = windows(tagger, &sentence);
    assert_eq!(after, before, "planting changed the windows");
    assert!(
        after.iter().all(|w| w.1 - w.0 < n),
        "no window may hold the whole text"
    );

    // Every planted entity is found once, with exact offsets and its label.
    let p = pipeline(tagger);
    let doc = p.annotate(&text).await.unwrap();
    let got = found(&doc);
    let lowest = doc
        .entities
        .iter()
        .filter_map(|e| e.entity.score)
        .fold(1f32, f32::min);
    eprintln!(
        "{} entities found in the long text, lowest score {lowest}",
        got.len()
    );
    let missing: Vec<_> = expected.iter().filter(|e| !got.contains(e)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} planted entities not found exactly: {missing:?}\nfound: {got:?}\nwindows: {after:?}",
        missing.len(),
        expected.len()
    );
    let unique: BTreeSet<(usize, usize)> = got.iter().map(|e| (e.1, e.2)).collect();
    assert_eq!(unique.len(), got.len(), "an entity was reported twice");
    let spurious: Vec<_> = got.iter().filter(|e| !expected.contains(e)).collect();
    assert!(
        spurious.len() <= expected.len() / 10,
        "many spurious entities: {spurious:?}"
    );

    // Windowed logits == the logits of each window's words encoded alone.
    let opts = PredictOptions::default();
    let full = tagger
        .score_spans(std::slice::from_ref(&sentence), &opts)
        .unwrap()
        .remove(0);
    let by_span: std::collections::HashMap<(usize, usize), &Vec<f32>> =
        full.iter().map(|s| ((s.start, s.end), &s.logits)).collect();
    let mut compared = 0usize;
    let mut worst = 0f32;
    for &(ws, we, cs, ce) in &after {
        let alone = Sentence::from_words(&sentence.words()[ws..we]);
        assert_eq!(
            windows(tagger, &alone).len(),
            1,
            "a window's words fit one window"
        );
        let scored = tagger
            .score_spans(std::slice::from_ref(&alone), &opts)
            .unwrap()
            .remove(0);
        for s in &scored {
            let (start, end) = (s.start + ws, s.end + ws);
            // Spans this window owns; a span starting on the first word of a cut window has
            // the sentence-initial shape feature alone but not in the long text.
            if start < cs || start >= ce || (s.start == 0 && ws > 0) {
                continue;
            }
            let windowed = by_span
                .get(&(start, end))
                .unwrap_or_else(|| panic!("span {start}..{end} not scored in the long text"));
            for (a, b) in windowed.iter().zip(&s.logits) {
                worst = worst.max((a - b).abs());
            }
            compared += 1;
        }
    }
    eprintln!(
        "{} windows, {} spans, {compared} compared with their window alone, worst |Δlogit| {worst:e}",
        after.len(),
        full.len()
    );
    assert!(worst <= 1e-4, "windowed logits differ by {worst}");
    assert!(
        compared + after.len() * 5 >= full.len(),
        "only {compared} of {} spans compared",
        full.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The same long text, windowed by the tagger and cut by the test
// ---------------------------------------------------------------------------------------------

/// An entity as [`found`] gives it: `(text, start, end, label)`.
type Found = (String, usize, usize, String);

/// Chars `start..end` of `text`.
fn chars_of(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

/// The Latin-script entities of [`ENTITIES`] (precomposed and combining accents, one and two
/// words).
fn latin_entities() -> Vec<(&'static str, &'static str)> {
    ENTITIES
        .iter()
        .copied()
        .filter(|(e, _)| e.chars().all(|c| (c as u32) < 0x370))
        .collect()
}

/// Sentences of 8-24 filler words, each ending in ".", with one of `entities` planted in about
/// three slots in ten (never two side by side), until there are `at_least` words: the words
/// and the planted entities as word spans `(start, end, label)`.
fn planted_sentences(
    at_least: usize,
    rng: &mut Rng,
    entities: &[(&str, &str)],
) -> (Vec<String>, Vec<(usize, usize, String)>) {
    let mut words: Vec<String> = Vec::new();
    let mut gold = Vec::new();
    while words.len() < at_least {
        let mut pieces: Vec<(String, Option<&str>)> = Vec::new();
        let mut after_entity = false;
        for _ in 0..8 + rng.below(17) {
            if !after_entity && rng.chance(30) {
                let (surface, label) = entities[rng.below(entities.len())];
                pieces.push((surface.to_string(), Some(label)));
                after_entity = true;
            } else {
                pieces.push((rng.pick(&FILLER[..29]).to_string(), None));
                after_entity = false;
            }
        }
        pieces.push((".".to_string(), None));
        let s = labelled(&pieces);
        let offset = words.len();
        gold.extend(
            s.spans
                .iter()
                .map(|w| (offset + w.start, offset + w.end, w.label.clone())),
        );
        words.extend(s.words().iter().map(|w| w.to_string()));
    }
    (words, gold)
}

/// A copy of the trained `tagger` whose encoder windows hold at most `max_tokens` sub-tokens
/// (the same weights; only the windowing budget differs).
fn with_max_tokens(tagger: &SpanTagger, max_tokens: usize) -> SpanTagger {
    let mut config = tagger.config().clone();
    config.max_tokens = max_tokens;
    SpanTagger::from_parts(
        tagger.model().clone(),
        config,
        tagger.tokenizer().clone(),
        tagger.device().clone(),
    )
}

/// What [`whole_against_pieces`] saw.
struct PieceComparison {
    /// The tagger's windows of the whole text `(word_start, word_end, core_start, core_end)`.
    windows: Vec<(usize, usize, usize, usize)>,
    /// The test's pieces `(start, end, own_start, own_end)`, in words of the text.
    pieces: Vec<(usize, usize, usize, usize)>,
    /// Entities of the whole run compared (every one of them, once).
    compared: usize,
    /// The entities found by one run and not the other (counted with multiplicity).
    differ: Vec<String>,
    /// Planted entities the whole run found exactly.
    planted_found: usize,
}

/// Tags `words` (joined by spaces) whole, and as pieces the test cuts itself: about `piece`
/// words each, ending after a ".", consecutive pieces overlapping by at least 2 × `margin`
/// words. Each piece *owns* a region at least `margin` words inside it (the text's own start
/// and end excepted: they are edges in both runs), the owned regions partition the text, and
/// every entity (of either run) is compared in the piece owning its first word.
async fn whole_against_pieces(
    tagger: &SpanTagger,
    words: &[String],
    planted: &[(usize, usize, String)],
    piece: usize,
    margin: usize,
) -> PieceComparison {
    let whole = Sentence::from_words(words);
    let n = words.len();
    let planned = windows(tagger, &sentence_from_text(&whole.text));

    // The cut, in words.
    let after_stop = |i: usize| i == 0 || i == n || words[i - 1] == ".";
    let mut pieces: Vec<(usize, usize, usize, usize)> = Vec::new();
    let (mut start, mut own_start) = (0usize, 0usize);
    loop {
        let mut end = (start + piece).min(n);
        while !after_stop(end) {
            end += 1;
        }
        if end == n {
            pieces.push((start, n, own_start, n));
            break;
        }
        let own_end = end - margin;
        pieces.push((start, end, own_start, own_end));
        // The next piece starts at the last sentence start `margin` words before `own_end`.
        let next = (start + 1..=own_end - margin)
            .rev()
            .find(|&i| after_stop(i))
            .expect("a sentence start between two cuts");
        (start, own_start) = (next, own_end);
    }
    assert_eq!(pieces.first().map(|p| p.2), Some(0));
    assert_eq!(pieces.last().map(|p| p.3), Some(n));
    for (k, &(s, e, os, oe)) in pieces.iter().enumerate() {
        assert!(os < oe, "piece {k}: empty owned region: {pieces:?}");
        assert!(s == 0 || os >= s + margin, "piece {k}: {pieces:?}");
        assert!(e == n || oe + margin <= e, "piece {k}: {pieces:?}");
        assert!(k == 0 || pieces[k - 1].3 == os, "owned regions touch");
    }
    let texts: Vec<String> = pieces.iter().map(|p| words[p.0..p.1].join(" ")).collect();
    for (k, t) in texts.iter().enumerate() {
        assert_eq!(
            windows(tagger, &sentence_from_text(t)).len(),
            1,
            "piece {k} ({} words) must fit one window",
            pieces[k].1 - pieces[k].0
        );
    }

    // The whole text in one call; the pieces alone, in another.
    let p = pipeline(tagger);
    let whole_found = found(&p.annotate(&whole.text).await.unwrap());
    let docs = p.annotate_batch(&texts).await.unwrap();

    // The word of `words` a char offset of the whole text falls in.
    let word_at = |c: usize| whole.tokens.partition_point(|t| t.start <= c) - 1;
    let mut compared = 0usize;
    let mut differ = Vec::new();
    for (k, (&(s, _, os, oe), doc)) in pieces.iter().zip(&docs).enumerate() {
        let owned = |e: &Found| (os..oe).contains(&word_at(e.1));
        // Multisets: +1 per entity of the whole run, -1 per entity of the piece.
        let mut count: std::collections::BTreeMap<Found, i64> = Default::default();
        for e in whole_found.iter().filter(|e| owned(e)) {
            *count.entry(e.clone()).or_default() += 1;
            compared += 1;
        }
        let shift = whole.tokens[s].start;
        for (t, a, b, l) in found(doc) {
            let e = (t, a + shift, b + shift, l);
            if owned(&e) {
                // Shifted back, the piece's entity names the same chars of the whole text.
                assert_eq!(e.0, chars_of(&whole.text, e.1, e.2), "piece {k}: {e:?}");
                *count.entry(e).or_default() -= 1;
            }
        }
        for (e, c) in count.into_iter().filter(|(_, c)| *c != 0) {
            let side = if c > 0 { "the whole text" } else { "the piece" };
            differ.push(format!("piece {k}: {e:?} {}× more in {side}", c.abs()));
        }
    }
    assert_eq!(compared, whole_found.len(), "an entity outside every piece");
    let planted_found = planted
        .iter()
        .filter(|(a, b, l)| {
            let (start, end) = (whole.tokens[*a].start, whole.tokens[*b - 1].end);
            whole_found
                .iter()
                .any(|e| (e.1, e.2, e.3.as_str()) == (start, end, l.as_str()))
        })
        .count();
    PieceComparison {
        windows: planned,
        pieces,
        compared,
        differ,
        planted_found,
    }
}

/// Windowing checked against a cut the test makes itself, not the tagger's own plan: a text of
/// more than 2,000 words with ~450 planted entities is tagged whole (many windows), and again
/// as pieces cut at sentence ends, each fitting one window (see [`whole_against_pieces`]).
/// Shifted back by their piece's char offset, the pieces' entities must equal the whole run's
/// exactly (text, start, end, label, multiplicity): a lost or duplicated window, a span owned
/// by no window or by two, or offsets mapped back wrongly all show.
///
/// Why exact agreement is a fair demand here, and the choices it rests on:
/// - The encoder sees different context in the two runs, and this tiny tagger (trained on
///   sentences of at most ~20 words) is sensitive to the *length* of what it reads: with
///   512-sub-token windows (the default) the whole run misses 1-9 of ~450 entities that the
///   160-word pieces find at p ≥ 0.9, far from any window edge (e.g. word 311 of a window of
///   words 0..510), and pieces of 300 words lose entities too. That is the model, not the
///   windowing (the windowed logits equal those of each window encoded alone: the test
///   above). So the comparison runs on a copy of the trained tagger with short windows (128
///   and 192 sub-tokens, 15-26 windows: more window edges, too), where the two runs agreed
///   exactly on every one of 8 texts measured (4 seeds × 2 densities).
/// - The entities are the Latin-script ones of [`ENTITIES`] (accents precomposed and
///   combining, so chars ≠ bytes) amid lowercase filler: the Arabic, Hebrew and CJK entities
///   and the emoji/RTL filler of the training sentences flip with context even in short
///   windows (1-4 of ~420 differ at 128 sub-tokens), which would measure the model again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_text_tagged_whole_equals_its_pieces_cut_independently() {
    let (words, planted) =
        planted_sentences(2_300, &mut Rng(0x10C7_CAFE_0000_0031), &latin_entities());
    let text = words.join(" ");
    let seen = sentence_from_text(&text).tokens.len();
    assert!(seen > 2_000, "the tagger sees {seen} words");
    for (max_tokens, piece, margin) in [(128, 70, 20), (192, 120, 30)] {
        let tagger = with_max_tokens(tagger(), max_tokens);
        let t = std::time::Instant::now();
        let c = whole_against_pieces(&tagger, &words, &planted, piece, margin).await;
        eprintln!(
            "{max_tokens} sub-tokens a window: {} windows, {} pieces, {} entities compared, \
             {} differ, {} of {} planted found whole ({:.1?})",
            c.windows.len(),
            c.pieces.len(),
            c.compared,
            c.differ.len(),
            c.planted_found,
            planted.len(),
            t.elapsed()
        );
        assert!(
            c.windows.len() >= 10,
            "{max_tokens}: the whole text must need many windows: {:?}",
            c.windows
        );
        assert!(
            c.differ.is_empty(),
            "{max_tokens} sub-tokens a window: {} of {} entities differ between the whole text \
             and its pieces:\n{}\nwindows: {:?}\npieces: {:?}",
            c.differ.len(),
            c.compared,
            c.differ.join("\n"),
            c.windows,
            c.pieces
        );
        // Not vacuous: hundreds of entities compared, nearly all of them the planted ones.
        assert!(c.compared >= 300, "only {} entities compared", c.compared);
        assert!(
            c.planted_found * 100 >= planted.len() * 98,
            "the whole run found {} of {} planted entities",
            c.planted_found,
            planted.len()
        );
    }
}

#[test]
fn the_training_set_plants_every_kind_of_case() {
    // The generator really produces the contexts the tests need (a cheap check, no model).
    let data = training_set(96, &mut Rng(0x5EED_1234_ABCD_0001));
    let texts: Vec<&str> = data.iter().map(|s| s.text.as_str()).collect();
    let has = |f: &dyn Fn(&str) -> bool| texts.iter().filter(|t| f(t)).count();
    assert!(has(&|t| t.contains('\u{200D}')) >= 5);
    assert!(has(&|t| t.contains('\u{301}')) >= 5);
    assert!(has(&|t| t.chars().any(|c| ('\u{0600}'..='\u{06FF}').contains(&c))) >= 5);
    assert!(has(&|t| t.chars().any(|c| ('\u{0590}'..='\u{05FF}').contains(&c))) >= 5);
    assert!(has(&|t| t.contains('東')) >= 3);
    assert!(has(&|t| t.contains('\u{200F}') || t.contains('\u{202B}')) >= 3);
    let entities: usize = data.iter().map(|s| s.spans.len()).sum();
    assert!(entities >= 150, "{entities}");
}

/// An LLM whose answer depends only on the request: relabels every entity whose text has an
/// even number of chars to ORG, rejects the odd ones. Deterministic, so any difference between
/// two runs comes from the pipeline.
struct ParityLlm;

#[linkner::async_trait]
impl linkner::llm::LlmClassifier for ParityLlm {
    fn name(&self) -> String {
        "parity".into()
    }
    async fn classify(
        &self,
        request: &linkner::llm::ClassifyRequest,
    ) -> Result<linkner::llm::Answer, linkner::llm::LlmError> {
        let class = if request.entity().chars().count().is_multiple_of(2) {
            3
        } else {
            0
        };
        linkner::llm::Answer::for_class(request.schema(), class)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_budget_a_stream_of_the_real_tagger_gives_the_batch_results() {
    use futures_util::StreamExt;
    let tagger = tagger();
    let mut rng = Rng(0xBA7C_5EED_0000_0042);
    let data = training_set(60, &mut rng);
    let texts: Vec<String> = data.iter().map(|s| s.text.clone()).collect();
    let build = || {
        Pipeline::builder()
            .exclusive_tagger(tagger.clone())
            .estimator(Arc::new(Confidence::new()))
            .llm(Arc::new(ParityLlm))
            // Every candidate is routed: the stream's LLM path is exercised on all of them.
            .policy(RoutingPolicy::Always)
            .stream_options(linkner::StreamOptions {
                chunk_size: 7,
                max_wait: std::time::Duration::from_millis(1),
                ..Default::default()
            })
            .build()
            .unwrap()
    };
    let batch = build().annotate_batch(&texts).await.unwrap();
    let streamed: Vec<_> = build()
        .stream(futures_util::stream::iter(
            texts.clone().into_iter().enumerate(),
        ))
        .unwrap()
        .collect()
        .await;
    assert_eq!(streamed.len(), batch.len());
    let mut routed = 0;
    for (b, s) in batch.iter().zip(&streamed) {
        let s = s.result.as_ref().unwrap();
        let key = |a: &linkner::Annotation| -> Vec<(usize, usize, String, String, String)> {
            a.entities
                .iter()
                .chain(&a.rejected)
                .map(|e| {
                    (
                        e.entity.start,
                        e.entity.end,
                        e.entity.label.clone(),
                        e.local_label.clone(),
                        e.provenance.name().to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(key(s), key(b), "{}", b.text());
        for (x, y) in s.entities.iter().zip(&b.entities) {
            // Batches of other sizes pad differently: scores agree to float noise.
            assert!((x.uncertainty - y.uncertainty).abs() < 1e-4);
        }
        routed += b.entities.len() + b.rejected.len();
    }
    assert!(routed >= 60, "the tagger found {routed} entities");
    let f1 = |anns: Vec<linkner::Annotation>| {
        linkner::score_annotations(&data, &anns).unwrap().linked.f1
    };
    let streamed: Vec<_> = streamed.into_iter().map(|s| s.result.unwrap()).collect();
    assert_eq!(f1(batch), f1(streamed), "the same F1 to the digit");
}
