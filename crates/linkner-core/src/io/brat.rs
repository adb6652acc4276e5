//! brat standoff: a `.txt` file with the text and an `.ann` file beside it with the annotations.
//!
//! ```text
//! T1<TAB>PER 0 3<TAB>Zoë
//! T2<TAB>LOC 13 21;22 26<TAB>New York
//! ```
//!
//! Only text-bound annotations (`T` lines) are entities; relations, events, attributes,
//! normalisations and notes (`R`, `E`, `A`, `M`, `N`, `#` lines) are not and are skipped. Offsets
//! are chars of the `.txt` file (brat's server is Python). A discontinuous entity whose fragments
//! are separated by whitespace only (brat's way of crossing a line break) is read as one entity;
//! other discontinuous entities, and overlapping ones, are errors naming the line.
//!
//! [`BratReader::read_path`] takes a folder (every `.ann` in it, in name order, each a
//! [`Document`] named by its stem) or one `.ann`/`.txt` file. [`BratWriter`] writes a folder.

use std::fs;
use std::path::{Path, PathBuf};

use super::align::{CharSpan, sentence_from_char_spans};
use super::record::{RecordWriter, TextRecord};
use super::{check_label, io_error};
use crate::error::{CoreError, Result};
use crate::schema::LabelSchema;
use crate::text::Document;

/// Reads brat standoff files.
#[derive(Debug, Clone, Default)]
pub struct BratReader {
    schema: Option<LabelSchema>,
}

impl BratReader {
    /// A reader that accepts any label.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes any label that `schema` does not list a [`CoreError::UnknownLabel`].
    pub fn schema(mut self, schema: Option<LabelSchema>) -> Self {
        self.schema = schema;
        self
    }

    /// Reads a folder of `.txt`/`.ann` pairs, or one pair given by either file.
    pub fn read_path(&self, path: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = path.as_ref();
        let anns: Vec<PathBuf> = if path.is_dir() {
            let mut v: Vec<PathBuf> = fs::read_dir(path)
                .map_err(|e| io_error(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "ann"))
                .collect();
            v.sort();
            if v.is_empty() {
                return Err(CoreError::parse(
                    path,
                    0,
                    "no .ann files in this folder; expected brat standoff (.txt + .ann pairs)",
                ));
            }
            v
        } else {
            vec![path.with_extension("ann")]
        };
        anns.iter().map(|ann| self.document(ann)).collect()
    }

    fn document(&self, ann: &Path) -> Result<Document> {
        let txt = ann.with_extension("txt");
        let text = fs::read_to_string(&txt).map_err(|e| io_error(&txt, e))?;
        let ann_text = fs::read_to_string(ann).map_err(|e| io_error(ann, e))?;
        let chars: Vec<char> = text.chars().collect();
        let mut spans = Vec::new();
        for (i, line) in ann_text.lines().enumerate() {
            let line_no = i + 1;
            if !line.starts_with('T') {
                continue;
            }
            let err = |m: String| CoreError::parse(ann, line_no, m);
            let mut fields = line.splitn(3, '\t');
            let (_, Some(middle)) = (fields.next(), fields.next()) else {
                return Err(err(
                    "expected `T<n><TAB><type> <start> <end><TAB><text>`".into()
                ));
            };
            let (label, offsets) = middle.split_once(' ').unwrap_or((middle, ""));
            let mut frags = Vec::new();
            for frag in offsets.split(';') {
                let mut it = frag.split_whitespace().map(str::parse::<usize>);
                match (it.next(), it.next(), it.next()) {
                    (Some(Ok(s)), Some(Ok(e)), None) if s < e && e <= chars.len() => {
                        frags.push((s, e));
                    }
                    _ => {
                        return Err(err(format!(
                            "offsets `{offsets}`; expected `<start> <end>` fragments (`;` \
                             between them) inside the text's {} chars",
                            chars.len()
                        )));
                    }
                }
            }
            for w in frags.windows(2) {
                let between = &chars[w[0].1.min(w[1].0)..w[1].0];
                if w[1].0 < w[0].1 || between.iter().any(|c| !c.is_whitespace()) {
                    return Err(err(format!(
                        "a discontinuous entity `{offsets}`; expected one range (fragments may \
                         only be separated by whitespace)"
                    )));
                }
            }
            check_label(self.schema.as_ref(), label, ann, line_no)?;
            let (s, e) = (frags[0].0, frags[frags.len() - 1].1);
            spans.push((line_no, CharSpan::new(s, e, label)));
        }
        let only: Vec<CharSpan> = spans.iter().map(|(_, s)| s.clone()).collect();
        let sentence = sentence_from_char_spans(&text, None, &only)
            .map_err(|m| CoreError::parse(ann, spans.first().map_or(0, |s| s.0), m))?;
        Ok(Document {
            id: ann.file_stem().map(|s| s.to_string_lossy().into_owned()),
            sentences: vec![sentence],
        })
    }
}

/// Writes records as a brat folder: `<id>.txt` and `<id>.ann` per record (ids made safe as file
/// names and unique; `doc<N>` for a record without one).
#[derive(Debug)]
pub struct BratWriter {
    dir: PathBuf,
    count: usize,
    used: std::collections::HashSet<String>,
}

impl BratWriter {
    /// A writer into `dir` (created when missing).
    pub fn create(dir: impl AsRef<Path>) -> Result<BratWriter> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        Ok(BratWriter {
            dir,
            count: 0,
            used: Default::default(),
        })
    }

    fn name(&mut self, record: &TextRecord) -> String {
        let base: String = match &record.id {
            Some(id) => id
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect(),
            None => format!("doc{}", self.count),
        };
        let base = if base.is_empty() || base.starts_with('.') {
            format!("doc{}", self.count)
        } else {
            base
        };
        let mut name = base.clone();
        let mut k = 1;
        while !self.used.insert(name.clone()) {
            name = format!("{base}-{k}");
            k += 1;
        }
        name
    }
}

impl RecordWriter for BratWriter {
    fn write(&mut self, record: &TextRecord) -> Result<()> {
        let name = self.name(record);
        let txt = self.dir.join(format!("{name}.txt"));
        let ann = self.dir.join(format!("{name}.ann"));
        let chars: Vec<char> = record.text.chars().collect();
        let mut out = String::new();
        for (k, e) in record.entities.iter().enumerate() {
            let label = &e.entity.label;
            if label.is_empty() || label.chars().any(char::is_whitespace) {
                return Err(CoreError::Write {
                    path: ann,
                    message: format!("label {label:?}: brat types cannot be empty or hold spaces"),
                });
            }
            // Fragments split at line breaks (an .ann line cannot hold one).
            let (s, e_) = (
                e.entity.start.min(chars.len()),
                e.entity.end.min(chars.len()),
            );
            let mut frags: Vec<(usize, usize)> = Vec::new();
            let mut i = s;
            while i < e_ {
                while i < e_ && matches!(chars[i], '\n' | '\r') {
                    i += 1;
                }
                let start = i;
                while i < e_ && !matches!(chars[i], '\n' | '\r') {
                    i += 1;
                }
                if i > start {
                    frags.push((start, i));
                }
            }
            let offsets: Vec<String> = frags.iter().map(|(a, b)| format!("{a} {b}")).collect();
            let shown: Vec<String> = frags
                .iter()
                .map(|&(a, b)| chars[a..b].iter().collect())
                .collect();
            out.push_str(&format!(
                "T{}\t{label} {}\t{}\n",
                k + 1,
                offsets.join(";"),
                shown.join(" ")
            ));
        }
        fs::write(&txt, &record.text).map_err(|e| io_error(&txt, e))?;
        fs::write(&ann, out).map_err(|e| io_error(&ann, e))?;
        self.count += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
