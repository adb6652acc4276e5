//! Which files mark their documents ([`marks_documents`]) and how [`read_documents`] reads
//! files that do not: small files written here, and the shared data sets (what the readers keep
//! of the document boundaries of CoNLL-03, its robustness sets and WikiGold).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::path::{Path, PathBuf};

use linkner_core::io::{DataFormat, marks_documents, read_dataset, read_documents};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn markers_in_each_format() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conll = |name, text| write(d, name, text);
    // CoNLL: a -DOCSTART- line, even before a single document, marks documents.
    let one_doc = conll(
        "one.txt",
        "-DOCSTART- -X- -X- O\n\nEU B-ORG\nrejects O\n\nIt O\n",
    );
    let none = conll("none.txt", "EU B-ORG\nrejects O\n\nIt O\n\nHe O\n");
    assert!(marks_documents(&one_doc, None).unwrap());
    assert!(!marks_documents(&none, None).unwrap());
    // A word that merely contains the marker is not one.
    let inner = conll("inner.txt", "x-DOCSTART- O\n\nIt O\n");
    assert!(!marks_documents(&inner, None).unwrap());
    // Spanner: a -DOCSTART- record.
    let sp = write(
        d,
        "s.json",
        r#"[{"context": "-DOCSTART-", "span_posLabel": {}}, {"context": "EU rejects", "span_posLabel": {"0;0": "ORG"}}]"#,
    );
    let sp_none = write(
        d,
        "s2.json",
        r#"[{"context": "EU rejects", "span_posLabel": {}}, {"context": "It", "span_posLabel": {}}]"#,
    );
    assert!(marks_documents(&sp, Some(DataFormat::Spanner)).unwrap());
    assert!(!marks_documents(&sp_none, Some(DataFormat::Spanner)).unwrap());
    // JSONL: two documents, or a document id; `doc` 0 everywhere (the default) marks nothing.
    let two = write(
        d,
        "a.jsonl",
        "{\"doc\":0,\"text\":\"a b\"}\n{\"doc\":1,\"text\":\"c\"}\n",
    );
    let id = write(
        d,
        "b.jsonl",
        "{\"doc\":0,\"doc_id\":\"x\",\"text\":\"a b\"}\n",
    );
    let zero = write(
        d,
        "c.jsonl",
        "{\"doc\":0,\"text\":\"a b\"}\n{\"text\":\"c\"}\n",
    );
    assert!(marks_documents(&two, None).unwrap());
    assert!(marks_documents(&id, None).unwrap());
    assert!(!marks_documents(&zero, None).unwrap());

    // Without markers every sentence is a document of its own; with them, the file's documents.
    let split = read_documents(&none, None, None).unwrap();
    assert_eq!(split.len(), 3);
    assert!(split.iter().all(|d| d.sentences.len() == 1));
    assert_eq!(read_dataset(&none, None, None).unwrap().len(), 1);
    let kept = read_documents(&one_doc, None, None).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].sentences.len(), 2);
    // A missing file is an error, not "no markers".
    assert!(marks_documents(d.join("missing.txt"), None).is_err());
}

/// The shared data folder: `$LINKNER_DATA`, else `<workspace>/../shared/data`.
fn data(rel: &str) -> PathBuf {
    let root = match std::env::var_os("LINKNER_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../../shared/data"),
    };
    let p = root.join(rel);
    assert!(
        p.is_file(),
        "data file {} is missing (set LINKNER_DATA to the shared data folder)",
        p.display()
    );
    p
}

#[test]
fn document_boundaries_of_the_shared_data_sets() {
    // (file, marks documents, documents read_documents returns, sentences)
    let cases: &[(&str, bool, usize, usize)] = &[
        // MINER's 2-column CoNLL-03 copy drops -DOCSTART-: every sentence alone.
        ("conll03/conll/train.txt", false, 14_041, 14_041),
        ("conll03/conll/dev.txt", false, 3_250, 3_250),
        ("conll03/conll/test.txt", false, 3_453, 3_453),
        // The 4-column copy keeps the documents (same tokens and tags).
        ("conll03/conll_4col/train.txt", true, 946, 14_041),
        ("conll03/conll_4col/dev.txt", true, 216, 3_250),
        ("conll03/conll_4col/test.txt", true, 231, 3_453),
        ("conll03/robustness_conll/oov/test.txt", true, 231, 3_453),
        // Typos is a subset of the test sentences without any document marker.
        (
            "conll03/robustness_conll/typos/test.txt",
            false,
            2_676,
            2_676,
        ),
        ("wikigold/wikigold.conll.txt", true, 145, 1_696),
        ("conll03/spanner/spanner.test", true, 231, 3_453),
        ("conll03/spanner/typos/spanner.test", false, 2_676, 2_676),
        ("wnut17/emerging.test.annotated", false, 1_287, 1_287),
    ];
    for &(rel, marked, docs, sentences) in cases {
        let path = data(rel);
        assert_eq!(marks_documents(&path, None).unwrap(), marked, "{rel}");
        let read = read_documents(&path, None, None).unwrap();
        assert_eq!(read.len(), docs, "{rel}");
        assert_eq!(
            read.iter().map(|d| d.sentences.len()).sum::<usize>(),
            sentences,
            "{rel}"
        );
    }
}
