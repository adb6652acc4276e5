//! Every data file under `$LINKNER_DATA` (default `../shared/data` beside the workspace) loads
//! with exactly the counts its `SOURCE.md` states, and files that `SOURCE.md` says are identical
//! load to identical sentences. Writers reproduce the original files byte for byte where the
//! layout allows it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use linkner_core::io::{
    ConllReader, ConllWriter, DataFormat, JsonlReader, JsonlWriter, Separator, SpannerReader,
    SpannerWriter, read_dataset,
};
use linkner_core::{Document, LabelSchema, Sentence, TagScheme, WordSpan};

/// The shared data folder: `$LINKNER_DATA`, else `<workspace>/../shared/data`.
fn data_dir() -> PathBuf {
    match std::env::var_os("LINKNER_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../../shared/data"),
    }
}

fn data(rel: &str) -> PathBuf {
    let p = data_dir().join(rel);
    assert!(
        p.is_file(),
        "data file {} is missing (set LINKNER_DATA to the shared data folder)",
        p.display()
    );
    p
}

/// What SOURCE.md states about one file.
struct Expected {
    path: &'static str,
    format: DataFormat,
    schema: &'static str,
    /// Documents as the reader returns them (`-DOCSTART-` separated, empty ones dropped).
    docs: usize,
    sentences: usize,
    tokens: usize,
    entities: usize,
    /// Entities per type, in schema order.
    per_type: &'static [usize],
}

const fn e(
    path: &'static str,
    format: DataFormat,
    schema: &'static str,
    docs: usize,
    counts: (usize, usize, usize),
    per_type: &'static [usize],
) -> Expected {
    Expected {
        path,
        format,
        schema,
        docs,
        sentences: counts.0,
        tokens: counts.1,
        entities: counts.2,
        per_type,
    }
}

use DataFormat::{Conll, Spanner};

// conll03/SOURCE.md "Counts": PER LOC ORG MISC. Files without -DOCSTART- read as one document.
const TRAIN: (usize, usize, usize) = (14_041, 203_621, 23_499);
const TRAIN_T: &[usize] = &[6_600, 7_140, 6_321, 3_438];
const DEV: (usize, usize, usize) = (3_250, 51_362, 5_942);
const DEV_T: &[usize] = &[1_842, 1_837, 1_341, 922];
const TEST: (usize, usize, usize) = (3_453, 46_435, 5_648);
const TEST_T: &[usize] = &[1_617, 1_668, 1_661, 702];
const TYPOS: (usize, usize, usize) = (2_676, 39_214, 5_559);
const TYPOS_T: &[usize] = &[1_590, 1_655, 1_625, 689];
const OOV: (usize, usize, usize) = (3_453, 46_887, 5_648);
const WIKI: (usize, usize, usize) = (1_696, 39_007, 3_558);
const WIKI_T: &[usize] = &[934, 1_014, 898, 712];

const EXPECTED: &[Expected] = &[
    e(
        "conll03/conll/train.txt",
        Conll,
        "conll03",
        1,
        TRAIN,
        TRAIN_T,
    ),
    e("conll03/conll/dev.txt", Conll, "conll03", 1, DEV, DEV_T),
    e("conll03/conll/test.txt", Conll, "conll03", 1, TEST, TEST_T),
    e(
        "conll03/conll_4col/train.txt",
        Conll,
        "conll03",
        946,
        TRAIN,
        TRAIN_T,
    ),
    e(
        "conll03/conll_4col/dev.txt",
        Conll,
        "conll03",
        216,
        DEV,
        DEV_T,
    ),
    e(
        "conll03/conll_4col/test.txt",
        Conll,
        "conll03",
        231,
        TEST,
        TEST_T,
    ),
    e(
        "conll03/conllpp/conllpp_test.txt",
        Conll,
        "conll03",
        231,
        (3_453, 46_435, 5_702),
        &[1_618, 1_646, 1_715, 723],
    ),
    e(
        "conll03/robustness_conll/typos/test.txt",
        Conll,
        "conll03",
        1,
        TYPOS,
        TYPOS_T,
    ),
    // "the clean version of the same 2,676 sentences" with tags unchanged.
    e(
        "conll03/robustness_conll/typos/ori_test.txt",
        Conll,
        "conll03",
        1,
        TYPOS,
        TYPOS_T,
    ),
    e(
        "conll03/robustness_conll/oov/test.txt",
        Conll,
        "conll03",
        231,
        OOV,
        TEST_T,
    ),
    // "the unmodified test set in this 4-column layout".
    e(
        "conll03/robustness_conll/oov/ori_test.txt",
        Conll,
        "conll03",
        231,
        TEST,
        TEST_T,
    ),
    e(
        "conll03/spanner/spanner.train",
        Spanner,
        "conll03",
        946,
        TRAIN,
        TRAIN_T,
    ),
    e(
        "conll03/spanner/spanner.dev",
        Spanner,
        "conll03",
        216,
        DEV,
        DEV_T,
    ),
    e(
        "conll03/spanner/spanner.test",
        Spanner,
        "conll03",
        231,
        TEST,
        TEST_T,
    ),
    e(
        "conll03/spanner/typos/spanner.test",
        Spanner,
        "conll03",
        1,
        TYPOS,
        TYPOS_T,
    ),
    e(
        "conll03/spanner/oov/spanner.test",
        Spanner,
        "conll03",
        231,
        OOV,
        TEST_T,
    ),
    // 144 -DOCSTART- records plus the leading document that lacks one = WikiGold's 145.
    e(
        "conll03/spanner/ood/spanner.test",
        Spanner,
        "conll03",
        145,
        WIKI,
        WIKI_T,
    ),
    e(
        "wikigold/wikigold.conll.txt",
        Conll,
        "conll03",
        145,
        WIKI,
        WIKI_T,
    ),
    // wnut17/SOURCE.md: person location group corporation product creative-work.
    e(
        "wnut17/wnut17train.conll",
        Conll,
        "wnut17",
        1,
        (3_394, 62_730, 1_975),
        &[660, 548, 264, 221, 142, 140],
    ),
    e(
        "wnut17/emerging.dev.conll",
        Conll,
        "wnut17",
        1,
        (1_009, 15_733, 836),
        &[470, 74, 39, 34, 114, 105],
    ),
    e(
        "wnut17/emerging.test.annotated",
        Conll,
        "wnut17",
        1,
        (1_287, 23_394, 1_079),
        &[429, 150, 165, 66, 127, 142],
    ),
    // twitterner/SOURCE.md: PER LOC ORG OTHER.
    e(
        "twitterner/train.txt",
        Conll,
        "twitterner",
        1,
        (4_000, 64_439, 6_363),
        &[2_285, 2_135, 958, 985],
    ),
    e(
        "twitterner/dev.txt",
        Conll,
        "twitterner",
        1,
        (1_000, 16_178, 1_600),
        &[567, 543, 251, 239],
    ),
    e(
        "twitterner/test.txt",
        Conll,
        "twitterner",
        1,
        (3_257, 52_822, 5_215),
        &[1_873, 1_720, 860, 762],
    ),
];

/// `labels.txt` files: `O` and the schema's types.
const LABEL_FILES: &[(&str, &str)] = &[
    ("conll03/conll/labels.txt", "conll03"),
    ("twitterner/labels.txt", "twitterner"),
];

fn load(path: &str, format: DataFormat, schema: &str) -> Vec<Document> {
    let schema = LabelSchema::builtin(schema).unwrap();
    read_dataset(data(path), Some(format), Some(schema))
        .unwrap_or_else(|e| panic!("{path} does not load: {e}"))
}

fn flat(docs: &[Document]) -> Vec<&Sentence> {
    docs.iter().flat_map(|d| &d.sentences).collect()
}

type Shape<'a> = (&'a str, Vec<(&'a str, usize, usize)>, &'a [WordSpan]);

/// Text, words, offsets and spans (not the raw tags, which spanner files do not have).
fn shape(s: &Sentence) -> Shape<'_> {
    (
        &s.text,
        s.tokens
            .iter()
            .map(|t| (t.text.as_str(), t.start, t.end))
            .collect(),
        &s.spans,
    )
}

/// [`shape`] of every sentence, by document.
fn doc_shapes(docs: &[Document]) -> Vec<Vec<Shape<'_>>> {
    docs.iter()
        .map(|d| d.sentences.iter().map(shape).collect())
        .collect()
}

fn assert_same_sentences(a: &str, af: DataFormat, b: &str, bf: DataFormat) {
    let da = load(a, af, "conll03");
    let db = load(b, bf, "conll03");
    let (sa, sb) = (flat(&da), flat(&db));
    assert_eq!(sa.len(), sb.len(), "{a} vs {b}: sentence counts");
    for (i, (x, y)) in sa.iter().zip(&sb).enumerate() {
        assert_eq!(shape(x), shape(y), "{a} vs {b}: sentence {i} differs");
    }
}

#[test]
fn every_data_file_has_its_documented_counts() {
    for exp in EXPECTED {
        let docs = load(exp.path, exp.format, exp.schema);
        let schema = LabelSchema::builtin(exp.schema).unwrap();
        let sentences = flat(&docs);
        let tokens: usize = sentences.iter().map(|s| s.len()).sum();
        let mut per_type: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &sentences {
            for span in &s.spans {
                *per_type.entry(span.label.as_str()).or_default() += 1;
            }
            // Offsets are exact char offsets into the text.
            for t in &s.tokens {
                assert_eq!(
                    s.char_slice(t.start, t.end).as_deref(),
                    Some(t.text.as_str())
                );
            }
        }
        let entities: usize = per_type.values().sum();
        let by_schema: Vec<usize> = schema
            .type_names()
            .iter()
            .map(|t| per_type.get(t).copied().unwrap_or(0))
            .collect();
        assert_eq!(
            (docs.len(), sentences.len(), tokens, entities),
            (exp.docs, exp.sentences, exp.tokens, exp.entities),
            "{}: (documents, sentences, tokens, entities)",
            exp.path
        );
        assert_eq!(by_schema, exp.per_type, "{}: entities per type", exp.path);
    }
}

#[test]
fn the_table_covers_every_data_file() {
    let mut found = Vec::new();
    let mut stack = vec![data_dir()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list data folder {}: {e}", dir.display()));
        for entry in entries {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_none_or(|x| x != "md") {
                let rel = p.strip_prefix(data_dir()).unwrap();
                found.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    let mut listed: Vec<String> = EXPECTED
        .iter()
        .map(|e| e.path.to_string())
        .chain(LABEL_FILES.iter().map(|(p, _)| p.to_string()))
        .collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "data files vs. the counts table of this test"
    );
}

#[test]
fn label_files_match_the_schemas() {
    for (path, schema) in LABEL_FILES {
        let text = std::fs::read_to_string(data(path)).unwrap();
        let mut labels: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        labels.sort_unstable();
        let schema = LabelSchema::builtin(schema).unwrap();
        let mut names = schema.type_names();
        names.push("O");
        names.sort_unstable();
        assert_eq!(labels, names, "{path}");
    }
}

#[test]
fn detect_guesses_every_format() {
    for exp in EXPECTED {
        assert_eq!(
            DataFormat::detect(data(exp.path)).unwrap(),
            exp.format,
            "{}",
            exp.path
        );
    }
}

#[test]
fn conll_and_spanner_copies_are_identical() {
    for split in ["train", "dev", "test"] {
        let conll = format!("conll03/conll/{split}.txt");
        let four = format!("conll03/conll_4col/{split}.txt");
        let spanner = format!("conll03/spanner/spanner.{split}");
        assert_same_sentences(&conll, Conll, &spanner, Spanner);
        // 2- and 4-column copies: also the same raw tags.
        let (a, b) = (
            load(&conll, Conll, "conll03"),
            load(&four, Conll, "conll03"),
        );
        assert_eq!(flat(&a), flat(&b), "{conll} vs {four}");
        // 4-column and spanner copies: the same documents.
        let sizes = |d: &[Document]| d.iter().map(|d| d.sentences.len()).collect::<Vec<_>>();
        assert_eq!(
            sizes(&b),
            sizes(&load(&spanner, Spanner, "conll03")),
            "{four}"
        );
    }
    assert_same_sentences(
        "conll03/robustness_conll/typos/test.txt",
        Conll,
        "conll03/spanner/typos/spanner.test",
        Spanner,
    );
    assert_same_sentences(
        "conll03/robustness_conll/oov/test.txt",
        Conll,
        "conll03/spanner/oov/spanner.test",
        Spanner,
    );
    assert_same_sentences(
        "wikigold/wikigold.conll.txt",
        Conll,
        "conll03/spanner/ood/spanner.test",
        Spanner,
    );
    let clean = load("conll03/conll/test.txt", Conll, "conll03");
    let ori = load(
        "conll03/robustness_conll/oov/ori_test.txt",
        Conll,
        "conll03",
    );
    assert_eq!(
        flat(&clean),
        flat(&ori),
        "oov/ori_test.txt is the clean test set"
    );
}

#[test]
fn robustness_sets_differ_from_the_clean_test_as_documented() {
    // Typos: 2,676 clean sentences, each verbatim in the clean test set; in 2,631 exactly one
    // word inside an entity differs; tags unchanged.
    let clean = load("conll03/conll/test.txt", Conll, "conll03");
    let clean_texts: std::collections::HashSet<&str> =
        flat(&clean).iter().map(|s| s.text.as_str()).collect();
    let ori = load(
        "conll03/robustness_conll/typos/ori_test.txt",
        Conll,
        "conll03",
    );
    let typos = load("conll03/robustness_conll/typos/test.txt", Conll, "conll03");
    let mut one_typo_in_entity = 0;
    for (o, t) in flat(&ori).iter().zip(flat(&typos)) {
        assert!(
            clean_texts.contains(o.text.as_str()),
            "{:?} not in the test set",
            o.text
        );
        assert_eq!((o.len(), &o.tags, &o.spans), (t.len(), &t.tags, &t.spans));
        let diff: Vec<usize> = (0..o.len())
            .filter(|&i| o.tokens[i].text != t.tokens[i].text)
            .collect();
        if let [i] = diff[..]
            && o.spans.iter().any(|s| s.start <= i && i < s.end)
        {
            one_typo_in_entity += 1;
        }
    }
    assert_eq!(one_typo_in_entity, 2_631);

    // OOV: 5,405 of 5,648 mentions replaced by another of the same type.
    let oov = load("conll03/robustness_conll/oov/test.txt", Conll, "conll03");
    let (mut changed, mut total) = (0, 0);
    for (c, v) in flat(&clean).iter().zip(flat(&oov)) {
        let (ce, ve) = (c.entities().unwrap(), v.entities().unwrap());
        assert_eq!(ce.len(), ve.len());
        for (a, b) in ce.iter().zip(&ve) {
            assert_eq!(a.label, b.label);
            total += 1;
            changed += usize::from(a.text != b.text);
        }
    }
    assert_eq!((changed, total), (5_405, 5_648));

    // CoNLL++: same words as the test set, exactly 186 sentences re-labelled.
    let pp = load("conll03/conllpp/conllpp_test.txt", Conll, "conll03");
    let mut relabelled = 0;
    for (c, p) in flat(&clean).iter().zip(flat(&pp)) {
        assert_eq!(c.tokens, p.tokens);
        relabelled += usize::from(c.spans != p.spans);
    }
    assert_eq!(relabelled, 186);
}

#[test]
fn quirky_tokens_are_kept_byte_exact() {
    let dev = load("wnut17/emerging.dev.conll", Conll, "wnut17");
    let bom: Vec<&str> = flat(&dev)
        .iter()
        .flat_map(|s| &s.tokens)
        .filter(|t| t.text.contains('\u{feff}'))
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(bom, ["Dubbz\u{feff}"]);
    let tw = load("twitterner/dev.txt", Conll, "twitterner");
    let nbsp = flat(&tw)
        .iter()
        .flat_map(|s| &s.tokens)
        .filter(|t| t.text == "\u{a0}")
        .count();
    assert_eq!(nbsp, 1);
}

#[test]
fn writers_reproduce_the_original_files() {
    let space = ConllWriter::new().separator(Separator::Space);
    let tab = ConllWriter::new().separator(Separator::Tab);
    let cases: [(&str, &ConllWriter, &str); 5] = [
        ("conll03/conll/train.txt", &space, "conll03"),
        ("conll03/conll/dev.txt", &space, "conll03"),
        ("conll03/conll/test.txt", &space, "conll03"),
        ("wnut17/emerging.dev.conll", &tab, "wnut17"),
        ("wnut17/emerging.test.annotated", &tab, "wnut17"),
    ];
    for (path, writer, schema) in cases {
        let docs = load(path, Conll, schema);
        let written = writer.write_string(&docs).unwrap();
        let original = std::fs::read_to_string(data(path)).unwrap();
        assert!(
            written == original,
            "{path}: the CoNLL writer does not reproduce the file"
        );
    }
    let spanner = [
        ("conll03/spanner/spanner.train", true),
        ("conll03/spanner/spanner.dev", true),
        ("conll03/spanner/spanner.test", true),
        ("conll03/spanner/typos/spanner.test", false),
        ("conll03/spanner/oov/spanner.test", true),
    ];
    for (path, docstart) in spanner {
        let docs = load(path, Spanner, "conll03");
        let mut out = Vec::new();
        SpannerWriter::new()
            .docstart(docstart)
            .write(&mut out, &docs, path)
            .unwrap();
        let original = std::fs::read(data(path)).unwrap();
        assert!(
            out == original,
            "{path}: the spanner writer does not reproduce the file"
        );
    }
}

#[test]
fn real_files_round_trip_through_every_writer() {
    for path in [
        "wikigold/wikigold.conll.txt",
        "twitterner/dev.txt",
        "wnut17/wnut17train.conll",
    ] {
        let schema = if path.starts_with("wnut") {
            "wnut17"
        } else if path.starts_with("twitter") {
            "twitterner"
        } else {
            "conll03"
        };
        let docs = load(path, Conll, schema);

        let mut jsonl = Vec::new();
        JsonlWriter::new()
            .write(&mut jsonl, &docs, "out.jsonl")
            .unwrap();
        let back = JsonlReader::new()
            .read(jsonl.as_slice(), "out.jsonl")
            .unwrap();
        assert_eq!(back, docs, "{path}: JSONL round trip");

        for scheme in [TagScheme::Iob1, TagScheme::Iob2, TagScheme::Bioes] {
            let text = ConllWriter::new()
                .scheme(scheme)
                .docstart(true)
                .write_string(&docs)
                .unwrap();
            let back = ConllReader::new()
                .scheme(scheme)
                .read(text.as_bytes(), "out.conll")
                .unwrap();
            assert_eq!(
                doc_shapes(&back),
                doc_shapes(&docs),
                "{path}: CoNLL {scheme:?}"
            );
        }

        let mut spanner = Vec::new();
        SpannerWriter::new()
            .write(&mut spanner, &docs, "out.json")
            .unwrap();
        let back = SpannerReader::new()
            .read_bytes(&spanner, "out.json")
            .unwrap();
        assert_eq!(
            back.iter().map(|d| d.sentences.len()).collect::<Vec<_>>(),
            docs.iter().map(|d| d.sentences.len()).collect::<Vec<_>>()
        );
        for (a, b) in flat(&back).iter().zip(flat(&docs)) {
            assert_eq!(shape(a), shape(b), "{path}: spanner round trip");
        }
    }
}

#[test]
fn conll03_train_reads_fast() {
    let cases = [
        ("conll03/conll_4col/train.txt", Conll),
        ("conll03/spanner/spanner.train", Spanner),
    ];
    for (rel, format) in cases {
        let path = data(rel);
        let start = Instant::now();
        let docs = read_dataset(&path, Some(format), Some(LabelSchema::conll03())).unwrap();
        let elapsed = start.elapsed();
        eprintln!("read {rel} in {elapsed:?}");
        assert_eq!(flat(&docs).len(), 14_041);
        // Generous bound for a loaded 2-core CI runner; typically far below it.
        assert!(
            elapsed.as_secs_f64() < 5.0,
            "reading {rel} took {elapsed:?}"
        );
    }
}
