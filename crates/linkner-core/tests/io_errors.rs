//! Malformed input gives the right typed error naming file and line; no input panics a reader;
//! Unicode words keep exact char offsets through every reader and writer.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::io::Write as _;
use std::path::Path;

use linkner_core::io::{
    ConllReader, ConllWriter, JsonlReader, JsonlRecord, JsonlWriter, SpannerReader, SpannerWriter,
    read_conll, read_jsonl, read_spanner,
};
use linkner_core::{CoreError, Document, Entity, LabelSchema, Sentence, TagScheme, WordSpan};
use proptest::prelude::*;

fn conll(text: &[u8]) -> Result<Vec<Document>, CoreError> {
    ConllReader::new()
        .schema(Some(LabelSchema::conll03()))
        .read(text, "in.conll")
}

/// Asserts a `Parse` error at `line` whose message contains every one of `needles`, and whose
/// Display starts with `file:line:`.
fn assert_parse(err: CoreError, file: &str, line: usize, needles: &[&str]) {
    let shown = err.to_string();
    match &err {
        CoreError::Parse {
            path,
            line: l,
            message,
        } => {
            assert_eq!((path.as_path(), *l), (Path::new(file), line), "{shown}");
            for n in needles {
                assert!(message.contains(n), "`{n}` not in: {shown}");
            }
        }
        other => panic!("expected a Parse error, got {other:?}"),
    }
    assert!(shown.starts_with(&format!("{file}:{line}: ")), "{shown}");
}

#[test]
fn wrong_column_count() {
    let err = conll(b"EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nGerman JJ B-MISC\n").unwrap_err();
    assert_parse(
        err,
        "in.conll",
        4,
        &["found 3 columns", "expected 4", "line 1"],
    );
    // The first word line sets the count; -DOCSTART- lines and separators do not count.
    let ok = conll(b"-DOCSTART- O\n\t\nEU NNP B-NP B-ORG\n").unwrap();
    assert_eq!(ok[0].sentences[0].spans, vec![WordSpan::new(0, 1, "ORG")]);
    // A lone word has no tag.
    let err = conll(b"EU B-ORG\nrejects\n").unwrap_err();
    assert_parse(err, "in.conll", 2, &["found 1 column", "at least 2"]);
    // Turning the check off accepts mixed widths.
    let docs = ConllReader::new()
        .check_columns(false)
        .read(&b"EU NNP B-ORG\nrejects O\n"[..], "x")
        .unwrap();
    assert_eq!(docs[0].sentences[0].len(), 2);
}

#[test]
fn bad_tags() {
    for (tag, line) in [
        ("PER", 2),
        ("X-PER", 2),
        ("B-", 2),
        ("b-PER", 2),
        ("B_PER", 2),
    ] {
        let text = format!("Peter B-PER\nBlackburn {tag}\n");
        let err = conll(text.as_bytes()).unwrap_err();
        assert_parse(
            err,
            "in.conll",
            line,
            &[&format!("bad tag `{tag}`"), "expected `O`"],
        );
    }
    // An ill-formed sequence for a required scheme.
    let err = ConllReader::new()
        .scheme(TagScheme::Iob2)
        .read(&b"a O\nb I-PER\n"[..], "s.conll")
        .unwrap_err();
    assert_parse(err, "s.conll", 2, &["`I-PER`", "IOB2"]);
}

#[test]
fn invalid_utf8_names_line_and_byte() {
    let text = b"EU B-ORG\nrejects O\nGer\xffman B-MISC\n";
    match conll(text).unwrap_err() {
        CoreError::InvalidUtf8 {
            path,
            line,
            byte_offset,
        } => assert_eq!((path.to_str(), line, byte_offset), (Some("in.conll"), 3, 3)),
        other => panic!("{other:?}"),
    }
    let err = conll(text).unwrap_err().to_string();
    assert!(err.starts_with("in.conll:3: invalid UTF-8"), "{err}");

    let spanner = b"[\n  {\"context\": \"a b\",\n   \"span_posLabel\": {\"0;0\": \"P\xc3\"}}\n]";
    let err = SpannerReader::new()
        .read_bytes(spanner, "s.json")
        .unwrap_err();
    assert!(
        matches!(err, CoreError::InvalidUtf8 { line: 3, .. }),
        "{err:?}"
    );
    let jsonl = b"{\"text\": \"ok\"}\n{\"text\": \"\xe2\x82\"}\n";
    let err = JsonlReader::new().read(&jsonl[..], "p.jsonl").unwrap_err();
    assert!(
        matches!(
            err,
            CoreError::InvalidUtf8 {
                line: 2,
                byte_offset: 10,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn unknown_labels_with_a_schema() {
    let err = conll(b"-DOCSTART- O\n\nPeter B-PERSON\n").unwrap_err();
    match &err {
        CoreError::UnknownLabel {
            path,
            line,
            label,
            schema,
            expected,
        } => {
            assert_eq!(
                (path.to_str(), *line, label.as_str(), schema.as_str()),
                (Some("in.conll"), 3, "PERSON", "conll03")
            );
            assert_eq!(expected, "PER, LOC, ORG, MISC");
        }
        other => panic!("{other:?}"),
    }
    let shown = err.to_string();
    assert!(
        shown.starts_with("in.conll:3: unknown label `PERSON`"),
        "{shown}"
    );
    // Without a schema any type is accepted.
    assert!(
        ConllReader::new()
            .read(&b"Peter B-PERSON\n"[..], "x")
            .is_ok()
    );

    // WNUT-17 names with the hyphen are known; the underscore spelling is not.
    let wnut = ConllReader::new().schema(Some(LabelSchema::wnut17()));
    assert!(wnut.read(&b"Up\tB-creative-work\n"[..], "w").is_ok());
    let err = wnut.read(&b"Up\tB-creative_work\n"[..], "w").unwrap_err();
    assert!(
        matches!(err, CoreError::UnknownLabel { line: 1, .. }),
        "{err:?}"
    );

    let jsonl = "{\"text\":\"Hi Zoë\",\"entities\":[{\"start\":3,\"end\":6,\"text\":\"Zoë\",\"label\":\"NAME\"}]}\n";
    let err = JsonlReader::new()
        .schema(Some(LabelSchema::conll03()))
        .read(jsonl.as_bytes(), "p.jsonl")
        .unwrap_err();
    assert!(
        matches!(err, CoreError::UnknownLabel { line: 1, .. }),
        "{err:?}"
    );
}

const SPANNER_OK: &str = r#"[
  {
    "context": "-DOCSTART-",
    "span_posLabel": {}
  },
  {
    "context": "Peter Blackburn went to Paris",
    "span_posLabel": {
      "0;1": "PER",
      "4;4": "LOC"
    }
  }
]"#;

#[test]
fn bad_spanner_records() {
    let read = |text: &str| {
        SpannerReader::new()
            .schema(Some(LabelSchema::conll03()))
            .read_bytes(text.as_bytes(), "s.json")
    };
    assert_eq!(read(SPANNER_OK).unwrap()[0].sentences[0].spans.len(), 2);
    // Span keys: line of the key, record index in the message.
    for (key, needle) in [
        ("0-1", "bad span key `0-1`"),
        ("0;x", "bad span key `0;x`"),
        ("1;0", "does not fit"),
        ("0;5", "does not fit the sentence's 5 words"),
        (";", "bad span key"),
    ] {
        let text = SPANNER_OK.replace("\"0;1\"", &format!("\"{key}\""));
        assert_parse(
            read(&text).unwrap_err(),
            "s.json",
            9,
            &["record 1:", needle],
        );
    }
    let err = read(&SPANNER_OK.replace("\"LOC\"", "\"PLACE\"")).unwrap_err();
    assert!(
        matches!(&err, CoreError::UnknownLabel { line: 10, label, .. } if label == "PLACE"),
        "{err:?}"
    );
    let err = read(&SPANNER_OK.replace("\"LOC\"", "\"\"")).unwrap_err();
    assert_parse(err, "s.json", 10, &["record 1:", "empty label"]);
    // Words: single spaces only.
    let err = read(&SPANNER_OK.replace("went to", "went  to")).unwrap_err();
    assert_parse(err, "s.json", 6, &["record 1:", "empty word"]);
    // JSON that does not parse or has the wrong shape: serde's line.
    let err = read(&SPANNER_OK.replace("\"LOC\"\n", "\"LOC\",\n")).unwrap_err();
    assert_parse(err, "s.json", 11, &["invalid spanner JSON"]);
    let err = read(&SPANNER_OK.replace("\"context\": \"Peter", "\"text\": \"Peter")).unwrap_err();
    assert_parse(err, "s.json", 12, &["missing field `context`"]);
    let err = read(&SPANNER_OK.replace("\"LOC\"", "3")).unwrap_err();
    assert_parse(err, "s.json", 10, &["invalid spanner JSON"]);
    let err = read("{\"context\": \"a\"}").unwrap_err();
    assert_parse(err, "s.json", 1, &["expected an array"]);
}

#[test]
fn bad_jsonl_lines() {
    let err = JsonlReader::new()
        .read(&b"{\"text\":\"ok\"}\n\n{\"text\": 3}\n"[..], "p.jsonl")
        .unwrap_err();
    assert_parse(err, "p.jsonl", 3, &["invalid JSONL record", "column"]);
    let err = JsonlReader::new()
        .read(&b"[1, 2]\n"[..], "p.jsonl")
        .unwrap_err();
    assert_parse(err, "p.jsonl", 1, &["expected one JSON object per line"]);
}

#[test]
fn files_are_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.conll");
    let err = read_conll(&missing).unwrap_err();
    assert!(matches!(err, CoreError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.conll"), "{err}");

    let path = dir.path().join("bad.conll");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"a O\nb O O\n")
        .unwrap();
    let err = read_conll(&path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2: ", path.display())),
        "{err}"
    );

    let path = dir.path().join("bad.json");
    std::fs::write(&path, SPANNER_OK.replace("\"4;4\"", "\"4;9\"")).unwrap();
    let err = read_spanner(&path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:10: record 1:", path.display())),
        "{err}"
    );

    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, "{\"text\":\"a\"}\nnot json\n").unwrap();
    let err = read_jsonl(&path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2: ", path.display())),
        "{err}"
    );
}

#[test]
fn writers_refuse_what_the_format_cannot_hold() {
    let docs = |s: Sentence| {
        vec![Document {
            id: None,
            sentences: vec![s],
        }]
    };
    let spaced = Sentence::from_char_ranges("New York", &[(0, 8)]).unwrap();
    let err = ConllWriter::new()
        .write_string(&docs(spaced.clone()))
        .unwrap_err();
    assert!(matches!(err, CoreError::Write { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("<memory>: cannot write: "),
        "{err}"
    );
    let err = SpannerWriter::new()
        .write(Vec::new(), &docs(spaced.clone()), "o.json")
        .unwrap_err();
    assert!(
        err.to_string().starts_with("o.json: cannot write: "),
        "{err}"
    );
    // JSONL holds any word.
    let mut out = Vec::new();
    JsonlWriter::new()
        .write(&mut out, &docs(spaced.clone()), "o.jsonl")
        .unwrap();
    let back = JsonlReader::new().read(out.as_slice(), "o.jsonl").unwrap();
    assert_eq!(back, docs(spaced));

    let mut bad = Sentence::from_words(&["a", "b"]);
    bad.spans = vec![WordSpan::new(1, 3, "X")];
    assert!(ConllWriter::new().write_string(&docs(bad.clone())).is_err());
    assert!(
        JsonlWriter::new()
            .write(Vec::new(), &docs(bad.clone()), "o")
            .is_err()
    );
    assert!(
        SpannerWriter::new()
            .write(Vec::new(), &docs(bad), "o")
            .is_err()
    );
}

/// Words with accents (precomposed and combining), CJK, emoji, ZWJ sequences, flags, variation
/// selectors, BOM, NBSP, right-to-left script.
const UNICODE_WORDS: &[&str] = &[
    "Zoë",
    "Zoe\u{308}",
    "Ångström",
    "東京",
    "北京大学",
    "😀",
    "👩\u{200d}👩\u{200d}👧",
    "🇫🇷",
    "❤\u{fe0f}",
    "a\u{200b}b",
    "\u{feff}x",
    "\u{a0}",
    "שָׁלוֹם",
    "é\u{301}\u{301}",
];

fn unicode_docs() -> Vec<Document> {
    let mut sentences = Vec::new();
    for (i, chunk) in UNICODE_WORDS.chunks(3).enumerate() {
        let mut words: Vec<&str> = chunk.to_vec();
        words.insert(1, "and");
        let mut s = Sentence::from_words(&words);
        s.spans = vec![
            WordSpan::new(0, 1, "PER"),
            WordSpan::new(2, words.len(), if i % 2 == 0 { "LOC" } else { "MISC" }),
        ];
        sentences.push(s);
    }
    vec![Document {
        id: None,
        sentences,
    }]
}

#[test]
fn unicode_words_keep_exact_char_offsets() {
    let docs = unicode_docs();
    let s = &docs[0].sentences[0];
    // "Zoë and Zoe\u{308} Ångström": char offsets, not bytes.
    assert_eq!(
        s.tokens
            .iter()
            .map(|t| (t.start, t.end))
            .collect::<Vec<_>>(),
        [(0, 3), (4, 7), (8, 12), (13, 21)]
    );
    let e = s.entities().unwrap();
    assert_eq!(
        (e[1].start, e[1].end, e[1].text.as_str()),
        (8, 21, "Zoe\u{308} Ångström")
    );

    // CoNLL (TAB and space), all schemes.
    for scheme in [TagScheme::Iob1, TagScheme::Iob2, TagScheme::Bioes] {
        let text = ConllWriter::new()
            .scheme(scheme)
            .write_string(&docs)
            .unwrap();
        let back = ConllReader::new().read(text.as_bytes(), "u.conll").unwrap();
        for (a, b) in back[0].sentences.iter().zip(&docs[0].sentences) {
            assert_eq!(
                (&a.text, &a.tokens, &a.spans),
                (&b.text, &b.tokens, &b.spans)
            );
            assert_eq!(a.entities().unwrap(), b.entities().unwrap());
        }
    }
    // JSONL keeps everything, and the char offsets are what it stores.
    let mut out = Vec::new();
    JsonlWriter::new()
        .write(&mut out, &docs, "u.jsonl")
        .unwrap();
    assert_eq!(
        JsonlReader::new().read(out.as_slice(), "u.jsonl").unwrap(),
        docs
    );
    let first: serde_json::Value =
        serde_json::from_str(std::str::from_utf8(&out).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["entities"][1]["start"], 8);
    assert_eq!(first["entities"][1]["end"], 21);
    // Spanner.
    let mut out = Vec::new();
    SpannerWriter::new()
        .write(&mut out, &docs, "u.json")
        .unwrap();
    assert_eq!(
        SpannerReader::new().read_bytes(&out, "u.json").unwrap(),
        docs
    );
}

#[test]
fn scored_predictions_round_trip_through_jsonl() {
    let s = Sentence::from_words(&["Zoë", "visited", "東京", "🇫🇷"]);
    let mut e = Entity::from_word_span(&s, &WordSpan::new(2, 4, "LOC")).unwrap();
    e.score = Some(0.812_345_6);
    let records = vec![JsonlRecord::with_entities(0, &s, vec![e])];
    let mut out = Vec::new();
    JsonlWriter::new()
        .write_records(&mut out, &records, "p.jsonl")
        .unwrap();
    let back = JsonlReader::new()
        .read_records(out.as_slice(), "p.jsonl")
        .unwrap();
    assert_eq!(back, records);
    assert_eq!(back[0].entities[0].text, "東京 🇫🇷");
}

/// Lines made of fragments that exercise the CoNLL reader's branches.
fn conll_line() -> impl Strategy<Value = String> {
    let frag = prop::sample::select(vec![
        "-DOCSTART-",
        "O",
        "B-PER",
        "I-PER",
        "E-LOC",
        "S-ORG",
        "L-X",
        "U-X",
        "B-",
        "X-Y",
        "I-",
        "word",
        "é",
        "👩\u{200d}👧",
        "\u{a0}",
        "\u{feff}",
        " ",
        "\t",
        "  ",
        "\r",
        "B-MISC",
    ]);
    prop::collection::vec(frag, 0..6).prop_map(|v| v.join(""))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = ConllReader::new().read(bytes.as_slice(), "f");
        let _ = ConllReader::new()
            .scheme(TagScheme::Bioes)
            .schema(Some(LabelSchema::conll03()))
            .read(bytes.as_slice(), "f");
        let _ = SpannerReader::new().read_bytes(&bytes, "f");
        let _ = JsonlReader::new().read(bytes.as_slice(), "f");
    }

    #[test]
    fn arbitrary_json_like_text_never_panics(
        text in "[\\[\\]{}\",:;0-9a-z \n\\\\-]{0,200}",
    ) {
        let _ = SpannerReader::new().read_bytes(text.as_bytes(), "f");
        let _ = JsonlReader::new().read(text.as_bytes(), "f");
        let wrapped = format!("[{{\"context\": \"a b c\", \"span_posLabel\": {{{text}}}}}]");
        let _ = SpannerReader::new().read_bytes(wrapped.as_bytes(), "f");
    }

    #[test]
    fn conll_like_lines_read_consistently(lines in prop::collection::vec(conll_line(), 0..30)) {
        let text = lines.join("\n");
        for scheme in [None, Some(TagScheme::Iob1), Some(TagScheme::Iob2), Some(TagScheme::Bioes)] {
            let reader = ConllReader::new().scheme(scheme);
            if let Ok(docs) = reader.read(text.as_bytes(), "f") {
                for s in docs.iter().flat_map(|d| &d.sentences) {
                    prop_assert!(!s.is_empty());
                    for t in &s.tokens {
                        prop_assert_eq!(s.char_slice(t.start, t.end), Some(t.text.clone()));
                    }
                    for span in &s.spans {
                        prop_assert!(span.start < span.end && span.end <= s.len());
                    }
                }
                // What was read can be written and read back to the same sentences.
                let out = ConllWriter::new().write_string(&docs).unwrap();
                let back = ConllReader::new().read(out.as_bytes(), "g").unwrap();
                let strip = |d: &[Document]| d.iter().flat_map(|d| &d.sentences)
                    .map(|s| (s.tokens.clone(), s.spans.clone())).collect::<Vec<_>>();
                prop_assert_eq!(strip(&back), strip(&docs));
            }
        }
    }

    #[test]
    fn any_words_round_trip_with_exact_offsets(
        words in prop::collection::vec("[^ \t\r\n]{1,6}", 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut s = Sentence::from_words(&words);
        let k = cut.index(words.len()) + 1;
        s.spans = vec![WordSpan::new(0, k, "PER")];
        let docs = vec![Document { id: None, sentences: vec![s.clone()] }];
        // JSONL stores anything exactly.
        let mut out = Vec::new();
        JsonlWriter::new().write(&mut out, &docs, "p").unwrap();
        prop_assert_eq!(&JsonlReader::new().read(out.as_slice(), "p").unwrap(), &docs);
        // CoNLL: words without ASCII whitespace survive (a leading U+FEFF included), except
        // the -DOCSTART- marker word.
        if words.iter().all(|w| w != "-DOCSTART-" && !w.chars().any(|c| c.is_ascii_whitespace()))
        {
            let text = ConllWriter::new().write_string(&docs).unwrap();
            match ConllReader::new().read(text.as_bytes(), "c") {
                Ok(back) => {
                    let b = &back[0].sentences[0];
                    prop_assert_eq!((&b.text, &b.tokens, &b.spans), (&s.text, &s.tokens, &s.spans));
                }
                Err(e) => prop_assert!(false, "{e}: {text:?}"),
            }
        }
    }
}
