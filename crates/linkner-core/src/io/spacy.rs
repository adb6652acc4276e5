//! spaCy's JSON documents: what `Doc.to_json()` gives and `Doc.from_json()` takes, one per line
//! (or a JSON array of them).
//!
//! ```json
//! {"text": "Zoë lives in 東京", "ents": [{"start": 0, "end": 3, "label": "PERSON"}],
//!  "tokens": [{"id": 0, "start": 0, "end": 3}, …]}
//! ```
//!
//! `ents` are char offsets into `text` (Python `str` indices). A DocBin (`DocBin.to_disk`, the
//! `.spacy` files of `spacy train`) is read too: words, spaces and the `ENT_IOB`/`ENT_TYPE`
//! columns ([`SpacyReader::read_path`]); records written to a path ending in `.spacy` are
//! written as a DocBin ([`super::record_writer_to_path`]). `tokens` are optional on input;
//! when present they are the words (whitespace tokens dropped), cut at entity boundaries
//! ([`super::align`]). Each record is a [`Document`] of one sentence; `sents` and the other
//! annotation layers (`pos`, `dep`, …) are ignored. The writer puts out `text`, `ents` and
//! `tokens` the way spaCy lays them out (whitespace other than one space after a word is a token
//! of its own), so that `Doc.from_json` rebuilds the exact text.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use super::align::{CharSpan, sentence_from_char_spans};
use super::json_records::{read_json_records, record_as};
use super::offsets::{OffsetMap, OffsetUnit};
use super::record::TextRecord;
use super::{check_label, unit_error};
use crate::error::{CoreError, Result};
use crate::schema::LabelSchema;
use crate::text::{Document, Sentence};

#[derive(Deserialize)]
struct SpacyDoc {
    text: String,
    #[serde(default)]
    ents: Vec<SpacyEnt>,
    #[serde(default)]
    tokens: Option<Vec<SpacyToken>>,
}

#[derive(Deserialize)]
struct SpacyEnt {
    start: usize,
    end: usize,
    label: String,
}

#[derive(Deserialize)]
struct SpacyToken {
    start: usize,
    end: usize,
}

/// Reads spaCy `Doc.to_json` records.
#[derive(Debug, Clone, Default)]
pub struct SpacyReader {
    schema: Option<LabelSchema>,
    offsets: OffsetUnit,
}

impl SpacyReader {
    /// A reader of char offsets that accepts any label.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes any label that `schema` does not list a [`CoreError::UnknownLabel`].
    pub fn schema(mut self, schema: Option<LabelSchema>) -> Self {
        self.schema = schema;
        self
    }

    /// The unit of the file's offsets (chars, spaCy's own, by default).
    pub fn offsets(mut self, unit: OffsetUnit) -> Self {
        self.offsets = unit;
        self
    }

    /// Reads a file (JSON lines of `Doc.to_json`, or a DocBin `.spacy` file): one [`Document`]
    /// per spaCy `Doc`.
    pub fn read_path(&self, path: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = path.as_ref();
        if is_docbin(path)? {
            return docbin::read(path)?
                .into_iter()
                .map(|d| {
                    for e in &d.ents {
                        check_label(self.schema.as_ref(), &e.label, path, 1)?;
                    }
                    let s = sentence_from_char_spans(&d.text, Some(&d.words), &d.ents)
                        .map_err(|m| CoreError::parse(path, 1, m))?;
                    Ok(Document {
                        id: None,
                        sentences: vec![s],
                    })
                })
                .collect();
        }
        read_json_records(path)?
            .into_iter()
            .map(|(line, value)| {
                let doc: SpacyDoc = record_as(value, path, line, "spaCy JSON document")?;
                Ok(Document {
                    id: None,
                    sentences: vec![self.sentence(&doc, path, line)?],
                })
            })
            .collect()
    }

    fn sentence(&self, doc: &SpacyDoc, path: &Path, line: usize) -> Result<Sentence> {
        let map = OffsetMap::new(&doc.text, self.offsets);
        let chars: Vec<char> = doc.text.chars().collect();
        let char_of = |o: usize, what: &str| {
            map.to_char(o)
                .ok_or_else(|| unit_error(path, line, what, o, self.offsets, map.len()))
        };
        let words = match &doc.tokens {
            None => None,
            Some(tokens) => {
                let mut w = Vec::with_capacity(tokens.len());
                for (i, t) in tokens.iter().enumerate() {
                    let (s, e) = (
                        char_of(t.start, &format!("token {i}"))?,
                        char_of(t.end, &format!("token {i}"))?,
                    );
                    if s < e && chars[s..e].iter().any(|c| !c.is_whitespace()) {
                        w.push((s, e));
                    }
                }
                Some(w)
            }
        };
        let mut spans = Vec::with_capacity(doc.ents.len());
        for (i, e) in doc.ents.iter().enumerate() {
            check_label(self.schema.as_ref(), &e.label, path, line)?;
            let what = format!("entity {i}");
            spans.push(CharSpan::new(
                char_of(e.start, &what)?,
                char_of(e.end, &what)?,
                e.label.as_str(),
            ));
        }
        sentence_from_char_spans(&doc.text, words.as_deref(), &spans)
            .map_err(|m| CoreError::parse(path, line, m))
    }
}

/// Whether `path` is a DocBin: a `.spacy` file, or one that starts like a zlib stream.
pub(crate) fn is_docbin(path: &Path) -> Result<bool> {
    use std::io::Read;
    if path.extension().is_some_and(|e| e == "spacy") {
        return Ok(true);
    }
    let mut head = [0u8; 2];
    let mut f = super::open(path)?;
    let n = f.read(&mut head).map_err(|e| super::io_error(path, e))?;
    Ok(docbin::looks_like(&head[..n]))
}

/// The `Doc.to_json` layout of a record: `text`, `ents`, `tokens` (with spaCy's whitespace
/// tokens) in `map`'s unit.
pub(crate) fn record_json(record: &TextRecord, words: &Sentence, map: &OffsetMap) -> Value {
    let ranges = spacy_tokens(&record.text, words);
    let tokens: Vec<Value> = ranges
        .iter()
        .enumerate()
        .map(|(i, &(s, e))| json!({"id": i, "start": map.from_char(s), "end": map.from_char(e)}))
        .collect();
    let ents: Vec<Value> = record
        .entities
        .iter()
        .map(|e| {
            json!({
                "start": map.from_char(e.entity.start),
                "end": map.from_char(e.entity.end),
                "label": e.entity.label,
            })
        })
        .collect();
    json!({ "text": record.text, "ents": ents, "tokens": tokens })
}

/// The char ranges of spaCy's tokens of `text` with the words of `words`: the words, and the
/// whitespace spaCy keeps as tokens of their own.
pub(crate) fn spacy_tokens(text: &str, words: &Sentence) -> Vec<(usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(words.tokens.len() + 2);
    let mut prev_end = 0usize;
    // spaCy gives each token a trailing whitespace of "" or " ": a gap after a word that starts
    // with a space gives that space to the word, and whatever whitespace is left (or a gap before
    // the first word) is a token of its own, so that the tokens rebuild the exact text.
    let gap = |from: usize, to: usize, after_word: bool, ranges: &mut Vec<(usize, usize)>| {
        let from = if after_word && from < to && chars[from] == ' ' {
            from + 1
        } else {
            from
        };
        if from < to {
            ranges.push((from, to));
        }
    };
    for t in &words.tokens {
        gap(prev_end, t.start, !ranges.is_empty(), &mut ranges);
        ranges.push((t.start, t.end));
        prev_end = t.end;
    }
    gap(prev_end, chars.len(), !ranges.is_empty(), &mut ranges);
    ranges
}

/// spaCy's DocBin (`.spacy` files: `DocBin.to_disk`): zlib-compressed MessagePack with the
/// documents' token attributes as a `uint64` array, their string store and trailing spaces.
///
/// The words and their spaces rebuild each text exactly as spaCy does; entities come from the
/// `ENT_IOB`/`ENT_TYPE` columns (spaCy's attribute ids 77 and 78; `ORTH`, 65, is always the first
/// column). Strings are stored by their 64-bit MurmurHash (`hash64`, seed 1), spaCy's built-in
/// symbols (`ORG`, `LOC`, …) by their small id ([`super::spacy_symbols`]).
pub(crate) mod docbin {
    use std::io::Read;
    use std::path::Path;

    use rmpv::Value;

    use super::super::align::CharSpan;
    use crate::error::{CoreError, Result};

    /// spaCy's attribute id of the word's text.
    const ORTH: u64 = 65;
    /// spaCy's attribute id of the IOB code of the entity (0 unset, 1 I, 2 O, 3 B).
    const ENT_IOB: u64 = 77;
    /// spaCy's attribute id of the entity type (a string hash).
    const ENT_TYPE: u64 = 78;

    /// Whether `head` starts like a zlib stream (what DocBin writes).
    pub(crate) fn looks_like(head: &[u8]) -> bool {
        matches!(head, [0x78, 0x01 | 0x9c | 0xda, ..])
    }

    /// One document of a DocBin: its text and entities (char offsets).
    pub(crate) struct Doc {
        pub text: String,
        pub words: Vec<(usize, usize)>,
        pub ents: Vec<CharSpan>,
    }

    /// Reads every document of a DocBin file.
    pub(crate) fn read(path: &Path) -> Result<Vec<Doc>> {
        let bad = |m: String| CoreError::parse(path, 1, format!("not a spaCy DocBin: {m}"));
        let raw = std::fs::read(path).map_err(|e| super::super::io_error(path, e))?;
        let mut bytes = Vec::new();
        flate2::read::ZlibDecoder::new(raw.as_slice())
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("zlib: {e}")))?;
        let msg = rmpv::decode::read_value(&mut bytes.as_slice())
            .map_err(|e| bad(format!("MessagePack: {e}")))?;
        let field = |name: &str| -> Result<&Value> {
            msg.as_map()
                .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(name)))
                .map(|(_, v)| v)
                .ok_or_else(|| bad(format!("no `{name}` field")))
        };
        let attrs: Vec<u64> = field("attrs")?
            .as_array()
            .ok_or_else(|| bad("`attrs` is not a list".into()))?
            .iter()
            .map(|a| {
                a.as_u64()
                    .ok_or_else(|| bad("an attribute id is not an integer".into()))
            })
            .collect::<Result<_>>()?;
        let col = |id: u64| attrs.iter().position(|&a| a == id);
        let orth = col(ORTH).ok_or_else(|| bad("no ORTH column".into()))?;
        let (iob, typ) = (col(ENT_IOB), col(ENT_TYPE));
        let bin = |name: &str| -> Result<&[u8]> {
            field(name)?
                .as_slice()
                .ok_or_else(|| bad(format!("`{name}` is not binary")))
        };
        let tokens: Vec<u64> = bin("tokens")?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let spaces = bin("spaces")?;
        let lengths: Vec<usize> = bin("lengths")?
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap_or_default()).max(0) as usize)
            .collect();
        let strings: std::collections::HashMap<u64, String> = field("strings")?
            .as_array()
            .ok_or_else(|| bad("`strings` is not a list".into()))?
            .iter()
            .filter_map(|s| s.as_str())
            .map(|s| (hash64(s.as_bytes(), 1), s.to_string()))
            .collect();
        let width = attrs.len();
        let total: usize = lengths.iter().sum();
        if width == 0 || tokens.len() != total * width || spaces.len() != total {
            return Err(bad(format!(
                "{} token values and {} spaces for {total} tokens of {width} attributes",
                tokens.len(),
                spaces.len()
            )));
        }
        // spaCy's own symbols are stored under their small id, every other string by its hash.
        let name = |h: u64| {
            let symbol = usize::try_from(h)
                .ok()
                .and_then(|i| super::super::spacy_symbols::SYMBOLS.get(i));
            match symbol {
                Some(s) => Ok((*s).to_string()),
                None => strings
                    .get(&h)
                    .cloned()
                    .ok_or_else(|| bad(format!("string hash {h} is not in the string store"))),
            }
        };
        let mut docs = Vec::with_capacity(lengths.len());
        let mut row = 0usize;
        for &n in &lengths {
            let mut text = String::new();
            let mut ents: Vec<CharSpan> = Vec::new();
            let mut words = Vec::with_capacity(n);
            let mut pos = 0usize;
            for t in row..row + n {
                let values = &tokens[t * width..(t + 1) * width];
                let word = name(values[orth])?;
                let len = word.chars().count();
                let code = iob.map_or(0, |c| values[c]);
                let label = match typ.map(|c| values[c]) {
                    Some(h) if h != 0 && code != 2 && code != 0 => Some(name(h)?),
                    _ => None,
                };
                match (code, label) {
                    (3, Some(l)) => ents.push(CharSpan::new(pos, pos + len, l)),
                    (1, Some(l)) => match ents.last_mut() {
                        Some(e) if e.label == l && e.end <= pos => e.end = pos + len,
                        _ => ents.push(CharSpan::new(pos, pos + len, l)),
                    },
                    _ => {}
                }
                if word.chars().any(|c| !c.is_whitespace()) {
                    words.push((pos, pos + len));
                }
                text.push_str(&word);
                pos += len;
                if spaces[t] != 0 {
                    text.push(' ');
                    pos += 1;
                }
            }
            row += n;
            docs.push(Doc { text, words, ents });
        }
        Ok(docs)
    }

    /// The id spaCy's string store gives `s`: its symbol id, else its hash.
    fn id_of(s: &str) -> u64 {
        static IDS: std::sync::OnceLock<std::collections::HashMap<&'static str, u64>> =
            std::sync::OnceLock::new();
        let ids = IDS.get_or_init(|| {
            super::super::spacy_symbols::SYMBOLS
                .iter()
                .enumerate()
                .map(|(i, s)| (*s, i as u64))
                .collect()
        });
        ids.get(s)
            .copied()
            .unwrap_or_else(|| hash64(s.as_bytes(), 1))
    }

    /// Writes a DocBin (`.spacy`) at `finish`: words, spaces and entities of every record.
    #[derive(Debug)]
    pub(crate) struct DocBinWriter {
        path: std::path::PathBuf,
        tokens: Vec<u64>,
        spaces: Vec<u8>,
        lengths: Vec<i32>,
        strings: std::collections::BTreeSet<String>,
    }

    impl DocBinWriter {
        /// A writer of the file `path` (written by `finish`).
        pub(crate) fn new(path: &Path) -> DocBinWriter {
            DocBinWriter {
                path: path.to_path_buf(),
                tokens: Vec::new(),
                spaces: Vec::new(),
                lengths: Vec::new(),
                strings: Default::default(),
            }
        }

        fn bad(&self, message: String) -> CoreError {
            CoreError::Write {
                path: self.path.clone(),
                message: format!("record {}: {message}", self.lengths.len() + 1),
            }
        }
    }

    impl super::super::record::RecordWriter for DocBinWriter {
        fn write(&mut self, record: &super::super::record::TextRecord) -> Result<()> {
            let words = record.sentence().map_err(|m| self.bad(m))?;
            let ranges = super::spacy_tokens(&record.text, &words);
            let chars: Vec<char> = record.text.chars().collect();
            // The entities as the words hold them (trimmed, on word boundaries).
            let ents: Vec<(usize, usize, &str)> = words
                .spans
                .iter()
                .map(|sp| {
                    let (a, b) = (&words.tokens[sp.start], &words.tokens[sp.end - 1]);
                    (a.start, b.end, sp.label.as_str())
                })
                .collect();
            let mut n = 0i32;
            for (k, &(s, e)) in ranges.iter().enumerate() {
                let text: String = chars[s..e].iter().collect();
                let ent = ents.iter().find(|x| x.0 <= s && e <= x.1);
                let (iob, typ) = match ent {
                    Some(x) if x.0 == s => (3, id_of(x.2)),
                    Some(x) => (1, id_of(x.2)),
                    None => (2, 0),
                };
                if let Some(x) = ent {
                    self.strings.insert(x.2.to_string());
                }
                self.tokens.extend([id_of(&text), iob, typ]);
                self.strings.insert(text);
                let next = ranges.get(k + 1).map_or(chars.len(), |r| r.0);
                self.spaces.push(u8::from(next > e));
                n += 1;
            }
            self.lengths.push(n);
            Ok(())
        }

        fn finish(&mut self) -> Result<()> {
            let docs = self.lengths.len();
            let le = |v: &[u64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            let key = |k: &str| Value::from(k);
            let msg = Value::Map(vec![
                (key("version"), Value::from("0.1")),
                (
                    key("attrs"),
                    Value::Array(vec![ORTH.into(), ENT_IOB.into(), ENT_TYPE.into()]),
                ),
                (key("tokens"), Value::Binary(le(&self.tokens))),
                (key("spaces"), Value::Binary(self.spaces.clone())),
                (
                    key("lengths"),
                    Value::Binary(self.lengths.iter().flat_map(|x| x.to_le_bytes()).collect()),
                ),
                (
                    key("strings"),
                    Value::Array(
                        self.strings
                            .iter()
                            .map(|s| Value::from(s.as_str()))
                            .collect(),
                    ),
                ),
                (key("cats"), Value::Array(vec![Value::Map(vec![]); docs])),
                (key("flags"), Value::Array(vec![Value::Map(vec![]); docs])),
                // An empty span group set, as spaCy serialises it (msgpack of `[]`).
                (
                    key("span_groups"),
                    Value::Array(vec![Value::Binary(vec![0x90]); docs]),
                ),
            ]);
            let mut packed = Vec::new();
            rmpv::encode::write_value(&mut packed, &msg)
                .map_err(|e| self.bad(format!("MessagePack: {e}")))?;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut z, &packed)
                .map_err(|e| super::super::io_error(&self.path, e))?;
            let bytes = z
                .finish()
                .map_err(|e| super::super::io_error(&self.path, e))?;
            std::fs::write(&self.path, bytes).map_err(|e| super::super::io_error(&self.path, e))
        }
    }

    /// MurmurHash64A, the hash of spaCy's string store (`murmurhash.mrmr.hash64`).
    pub(crate) fn hash64(key: &[u8], seed: u64) -> u64 {
        const M: u64 = 0xc6a4_a793_5bd1_e995;
        const R: u32 = 47;
        let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
        let mut chunks = key.chunks_exact(8);
        for c in &mut chunks {
            let mut k = u64::from_le_bytes(c.try_into().unwrap_or_default());
            k = k.wrapping_mul(M);
            k ^= k >> R;
            k = k.wrapping_mul(M);
            h ^= k;
            h = h.wrapping_mul(M);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            for (i, &b) in rest.iter().enumerate() {
                h ^= u64::from(b) << (8 * i);
            }
            h = h.wrapping_mul(M);
        }
        h ^= h >> R;
        h = h.wrapping_mul(M);
        h ^= h >> R;
        h
    }
}

#[cfg(test)]
mod tests {
    use super::docbin::hash64;

    #[test]
    fn string_hashes_are_spacys() {
        // `spacy.strings.hash_string` of spaCy 3.8.
        for (s, h) in [
            ("", 14313749767032693980u64),
            ("a", 11901859001352538922),
            ("Zoë", 16948573035762911534),
            ("PERSON", 11121653176597302729),
            ("abcdefgh", 17751780907874141760),
            ("abcdefghi", 13885881106499164936),
            ("東京タワー🎉", 2616783074393641200),
        ] {
            assert_eq!(hash64(s.as_bytes(), 1), h, "{s:?}");
        }
    }
}
