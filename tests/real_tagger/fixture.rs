//! The fixture of `real_tagger.rs`: a seeded synthetic training set (Unicode, bidi, CJK and
//! Latin entities in filler text) and the tiny MiniLM SpanNER tagger trained on it once per test
//! binary.

use std::sync::{Arc, OnceLock};

use linkner::core::{LabelSchema, Sentence, WordSpan};
use linkner::tagger::train::Silent;
use linkner::tagger::{DeviceSpec, HeadOptions, SpanTagger, TrainConfig, train};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, RoutingPolicy};

// ---------------------------------------------------------------------------------------------
// The synthetic training set
// ---------------------------------------------------------------------------------------------

/// The entities the tagger learns (surface, label). Several are written in two Unicode forms
/// (precomposed and with combining marks): both must come out with their own offsets.
pub const ENTITIES: &[(&str, &str)] = &[
    ("Zoë Müller", "PER"),
    ("Renée Dubois", "PER"),
    ("José Ramírez", "PER"),
    ("Jose\u{301} Rami\u{301}rez", "PER"),
    ("Peter Blackburn", "PER"),
    ("Anna Smith", "PER"),
    ("أحمد", "PER"),
    ("דוד", "PER"),
    ("Kraków", "LOC"),
    ("Krako\u{301}w", "LOC"),
    ("São Paulo", "LOC"),
    ("東京", "LOC"),
    ("القاهرة", "LOC"),
    ("ירושלים", "LOC"),
    ("Paris", "LOC"),
    ("Berlin", "LOC"),
    ("Japan", "LOC"),
    ("Siemens", "ORG"),
    ("Toyota", "ORG"),
];

/// Non-entity words: lowercase English (also the filler of the long text), emoji and ZWJ
/// sequences, CJK function characters, Arabic and Hebrew words.
pub const FILLER: &[&str] = &[
    "the", "market", "rose", "on", "friday", "and", "prices", "fell", "after", "a", "long", "week",
    "of", "trading", "in", "shares", "with", "to", "from", "met", "left", "visited", "said",
    "that", "new", "talks", "would", "start", "soon", ",", ".",
];
pub const DECOR: &[&str] = &[
    "🎉",
    "🚀",
    "🚄",
    "👨\u{200D}👩\u{200D}👧",
    "👩\u{200D}🚀",
    "🇮🇹",
    "と",
    "は",
    "に",
    "日",
    "ذهب",
    "إلى",
    "مع",
    "في",
    "עם",
    "אל",
    "שלום",
];
/// Capitalised sentence openers that are not entities.
pub const OPENERS: &[&str] = &["Yesterday", "The", "Later", "Today"];
/// Bidi controls wrapped around an entity: (before, after).
pub const BIDI: &[(&str, &str)] = &[
    ("\u{200F}", "\u{200F}"),
    ("\u{200E}", "\u{200E}"),
    ("\u{202B}", "\u{202C}"),
    ("\u{2067}", "\u{2069}"),
];

/// A tiny seeded generator (xorshift), so the training set is the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

/// One labelled sentence from pieces `(text, label)`, built from words directly (not through the
/// tagger's own word splitter, which the tests check): a piece is one word, except that spaces
/// separate words and every CJK ideograph is a word of its own, as in `linkner::core::words`.
pub fn labelled(pieces: &[(String, Option<&str>)]) -> Sentence {
    let mut words: Vec<String> = Vec::new();
    let mut spans = Vec::new();
    for (piece, label) in pieces {
        let first = words.len();
        for w in piece.split(' ') {
            if w.chars().all(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c)) {
                words.extend(w.chars().map(String::from));
            } else {
                words.push(w.to_string());
            }
        }
        if let Some(label) = label {
            spans.push(WordSpan::new(first, words.len(), *label));
        }
    }
    let mut s = Sentence::from_words(&words);
    s.spans = spans;
    s
}

/// `n` synthetic sentences: fillers with 1-3 entities planted, sometimes wrapped in bidi
/// controls or next to an emoji, sometimes after a capitalised opener.
pub fn training_set(n: usize, rng: &mut Rng) -> Vec<Sentence> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut pieces: Vec<(String, Option<&str>)> = Vec::new();
        if rng.chance(25) {
            pieces.push((rng.pick(OPENERS).to_string(), None));
        }
        let entities = 1 + rng.below(3);
        for _ in 0..entities {
            for _ in 0..1 + rng.below(4) {
                let w = if rng.chance(30) {
                    rng.pick(DECOR)
                } else {
                    rng.pick(FILLER)
                };
                pieces.push((w.to_string(), None));
            }
            let (surface, label) = ENTITIES[rng.below(ENTITIES.len())];
            if rng.chance(15) {
                let (open, close) = BIDI[rng.below(BIDI.len())];
                pieces.push((open.to_string(), None));
                pieces.push((surface.to_string(), Some(label)));
                pieces.push((close.to_string(), None));
            } else if rng.chance(15) {
                pieces.push((rng.pick(&DECOR[..6]).to_string(), None));
                pieces.push((surface.to_string(), Some(label)));
            } else {
                pieces.push((surface.to_string(), Some(label)));
                if rng.chance(15) {
                    pieces.push((rng.pick(&DECOR[..6]).to_string(), None));
                }
            }
        }
        for _ in 0..rng.below(3) {
            pieces.push((rng.pick(FILLER).to_string(), None));
        }
        pieces.push((".".to_string(), None));
        out.push(labelled(&pieces));
    }
    out
}

/// The tagger, trained once per test binary.
pub fn tagger() -> &'static SpanTagger {
    static TAGGER: OnceLock<SpanTagger> = OnceLock::new();
    TAGGER.get_or_init(|| {
        linkner::tagger::set_threads(1).unwrap();
        let encoder = linkner::tagger::default_encoder_dir()
            .expect("all-MiniLM-L6-v2 not found: run scripts/setup-python.sh");
        let device = DeviceSpec::Cpu.checked_device().unwrap();
        // The head's initialisation draws from the backend's generator: seed it.
        device.seed(7);
        let (tagger, _) = SpanTagger::from_encoder_dir(
            &encoder,
            LabelSchema::conll03(),
            HeadOptions::default(),
            &device,
        )
        .unwrap();
        let mut rng = Rng(0x5EED_1234_ABCD_0001);
        let data = training_set(96, &mut rng);
        let config = TrainConfig {
            epochs: 4,
            batch_size: 8,
            learning_rate: 3e-4,
            patience: 0,
            seed: 7,
            ..TrainConfig::default()
        };
        let t = std::time::Instant::now();
        let (tagger, report) = train(tagger, &data, &[], &config, &mut Silent).unwrap();
        eprintln!(
            "trained the tiny tagger on {} sentences in {:.1?}: {:?}",
            data.len(),
            t.elapsed(),
            report
                .epochs
                .iter()
                .map(|e| e.train_loss)
                .collect::<Vec<_>>()
        );
        tagger
    })
}

pub fn pipeline(tagger: &SpanTagger) -> Pipeline {
    Pipeline::builder()
        .exclusive_tagger(tagger.clone())
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .build()
        .unwrap()
}

/// `(text, start, end, label)` of every entity of an annotation, in order.
pub fn found(a: &linkner::Annotation) -> Vec<(String, usize, usize, String)> {
    a.entities
        .iter()
        .map(|e| {
            (
                e.entity.text.clone(),
                e.entity.start,
                e.entity.end,
                e.entity.label.clone(),
            )
        })
        .collect()
}
