//! The exchange formats without an owner library in the venv (doccano, brat's spec, CoNLL with
//! the tag in another column), round trips of every writer through linkner's own readers in both
//! offset units, and the errors of malformed input (file, line, what was expected).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::path::Path;

use linkner_core::io::{
    DataFormat, OffsetUnit, ReadOptions, RecordEntity, TextRecord, WriteOptions, read_dataset_with,
    record_writer_to_path,
};
use linkner_core::{Entity, sentence_from_text};

fn read(path: &Path, format: Option<DataFormat>) -> linkner_core::Result<Vec<(String, String)>> {
    read_with(path, format, &ReadOptions::default())
}

/// `(surface, label)` of every gold entity in the file.
fn read_with(
    path: &Path,
    format: Option<DataFormat>,
    options: &ReadOptions,
) -> linkner_core::Result<Vec<(String, String)>> {
    let docs = read_dataset_with(path, format, options)?;
    let mut out = Vec::new();
    for s in docs.iter().flat_map(|d| d.sentences.iter()) {
        for e in s.entities()? {
            out.push((e.text, e.label));
        }
    }
    Ok(out)
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn doccano_both_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"id": 1, "text": "Zoë lives in 東京 🎉 now", "label": [[0, 3, "PER"], [13, 15, "LOC"]]}"#,
            "\n",
            r#"{"id": 2, "text": "Obama's visit", "entities": [{"id": 9, "start_offset": 0, "end_offset": 5, "label": "PER"}]}"#,
            "\n"
        ),
    )
    .unwrap();
    assert_eq!(DataFormat::detect(&path).unwrap(), DataFormat::Doccano);
    let got = read(&path, None).unwrap();
    assert_eq!(
        got,
        pairs(&[("Zoë", "PER"), ("東京", "LOC"), ("Obama", "PER")])
    );
    let docs = read_dataset_with(&path, None, &ReadOptions::default()).unwrap();
    assert_eq!(docs[1].id.as_deref(), Some("2"));
    // An offset past the text names the line and what was expected.
    std::fs::write(
        &path,
        "{\"text\": \"ab\"}\n{\"text\": \"ab\", \"label\": [[0, 9, \"X\"]]}\n",
    )
    .unwrap();
    let err = read(&path, Some(DataFormat::Doccano))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("admin.jsonl:2: ") && err.contains("offset 9"),
        "{err}"
    );
}

#[test]
fn brat_by_its_spec() {
    let dir = tempfile::tempdir().unwrap();
    let text = "Zoë met the\nNew York Times team in Zürich.\n";
    std::fs::write(dir.path().join("a.txt"), text).unwrap();
    std::fs::write(
        dir.path().join("a.ann"),
        "T1\tPER 0 3\tZoë\nT2\tORG 12 20;21 26\tNew York Times\nR1\tWorks Arg1:T1 Arg2:T2\n\
         #1\tAnnotatorNotes T1\tcheck\nA1\tNegated T2\nT3\tLOC 35 41\tZürich\n",
    )
    .unwrap();
    assert_eq!(DataFormat::detect(dir.path()).unwrap(), DataFormat::Brat);
    let got = read(dir.path(), None).unwrap();
    assert_eq!(
        got,
        pairs(&[("Zoë", "PER"), ("New York Times", "ORG"), ("Zürich", "LOC")])
    );
    // A discontinuous entity across words is not a flat entity.
    std::fs::write(dir.path().join("a.ann"), "T1\tORG 12 15;21 26\tNew Times\n").unwrap();
    let err = read(dir.path(), None).unwrap_err().to_string();
    assert!(
        err.contains("a.ann:1: ") && err.contains("discontinuous"),
        "{err}"
    );
    std::fs::write(dir.path().join("a.ann"), "T1\tORG 12 99\tNew\n").unwrap();
    let err = read(dir.path(), None).unwrap_err().to_string();
    assert!(
        err.contains("a.ann:1: ") && err.contains("inside the text"),
        "{err}"
    );
}

#[test]
fn conll_with_the_tag_in_another_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("onto.conll");
    // id, word, pos, NER, chunk: the NER tag is neither first nor last.
    std::fs::write(
        &path,
        "# sent_id = 1\n1\tZoë\tNNP\tB-PER\tB-NP\n2\tMüller\tNNP\tI-PER\tI-NP\n3\tflew\tVBD\tO\tB-VP\n\
         4\tto\tTO\tO\tB-PP\n5\t東京\tNNP\tB-LOC\tB-NP\n\n",
    )
    .unwrap();
    let opts = ReadOptions {
        word_column: Some(2),
        tag_column: Some(4),
        ..Default::default()
    };
    let got = read_with(&path, Some(DataFormat::Conll), &opts).unwrap();
    assert_eq!(got, pairs(&[("Zoë Müller", "PER"), ("東京", "LOC")]));
    // The default (word first, tag last) reads the chunk tags: not what the file means.
    let plain = read_with(
        &path,
        Some(DataFormat::Conll),
        &ReadOptions {
            tag_column: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    assert_ne!(plain, got);
    let err = read_with(
        &path,
        Some(DataFormat::Conll),
        &ReadOptions {
            tag_column: Some(7),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("onto.conll:2: ") && err.contains("column 7"),
        "{err}"
    );
}

#[test]
fn label_studio_offsets_in_the_wrong_unit_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.json");
    // Offsets counted in code points (Python), not UTF-16 (Label Studio's editor).
    let text = "🎉 Zoë in Paris";
    std::fs::write(
        &path,
        serde_json::json!([{"id": 3, "data": {"text": text}, "annotations": [{"result": [
            {"from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 2, "end": 5, "text": "Zoë", "labels": ["PER"]}}]}]}])
        .to_string(),
    )
    .unwrap();
    let err = read(&path, None).unwrap_err().to_string();
    assert!(err.contains("use offsets chars"), "{err}");
    let opts = ReadOptions {
        offsets: Some(OffsetUnit::Chars),
        ..Default::default()
    };
    assert_eq!(
        read_with(&path, None, &opts).unwrap(),
        pairs(&[("Zoë", "PER")])
    );
    // A task without an annotation is an error, not an empty gold set.
    std::fs::write(
        &path,
        r#"[{"id": 4, "data": {"text": "x"}, "annotations": []}]"#,
    )
    .unwrap();
    let err = read(&path, None).unwrap_err().to_string();
    assert!(err.contains("no annotation"), "{err}");
}

/// Every writer, read back by linkner, gives the entities it was given: texts with emoji,
/// combining marks, CJK, right-to-left script; in both offset units.
#[test]
fn every_writer_round_trips_through_linkner() {
    let dir = tempfile::tempdir().unwrap();
    let texts = [
        "👩\u{200d}💻 Ada Lovelace at Google 🇫🇷 in Zürich",
        "Cafe\u{301} Flore near ירושלים and 東京タワー",
        "Obama's  speech\tin\nChicago",
    ];
    let records: Vec<TextRecord> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let s = sentence_from_text(t);
            let entities = s
                .tokens
                .iter()
                .filter(|w| w.text.chars().next().is_some_and(char::is_uppercase))
                .map(|w| {
                    RecordEntity::from(Entity {
                        start: w.start,
                        end: w.end,
                        text: w.text.clone(),
                        label: "NAME".into(),
                        score: None,
                    })
                })
                .collect();
            TextRecord {
                id: Some(format!("t{i}")),
                text: t.to_string(),
                tokens: None,
                entities,
                predicted: false,
            }
        })
        .collect();
    let want: Vec<(String, String)> = records
        .iter()
        .flat_map(|r| r.entities.iter())
        .map(|e| (e.entity.text.clone(), e.entity.label.clone()))
        .collect();
    assert!(want.len() >= 8, "{want:?}");
    for format in [
        DataFormat::Conll,
        DataFormat::Jsonl,
        DataFormat::Hf,
        DataFormat::Spacy,
        DataFormat::LabelStudio,
        DataFormat::Doccano,
        DataFormat::Brat,
    ] {
        for unit in [OffsetUnit::Chars, OffsetUnit::Utf16] {
            if format == DataFormat::Jsonl && unit == OffsetUnit::Utf16 {
                continue; // linkner's own JSONL is read in chars only
            }
            let path = dir.path().join(format!("{format}-{unit}"));
            let wopts = WriteOptions {
                offsets: Some(unit),
                ..Default::default()
            };
            let mut w = record_writer_to_path(format, &path, &wopts).unwrap();
            for r in &records {
                w.write(r).unwrap();
            }
            w.finish().unwrap();
            let ropts = ReadOptions {
                offsets: Some(unit),
                ..Default::default()
            };
            let got = read_with(&path, Some(format), &ropts)
                .unwrap_or_else(|e| panic!("{format} {unit}: {e}"));
            assert_eq!(got, want, "{format} {unit}");
            let detected = DataFormat::detect(&path).unwrap();
            assert_eq!(detected, format, "{format}: detected as {detected}");
        }
    }
}
