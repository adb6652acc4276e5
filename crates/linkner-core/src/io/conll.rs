//! CoNLL column files.
//!
//! One word per line, the word in the first column and its tag in the last; columns are
//! separated by ASCII spaces and/or TABs (runs count as one separator, so `\u{a0}` and `\u{feff}`
//! stay inside words). Sentences are separated by lines that are empty or hold only ASCII
//! whitespace (e.g. a lone TAB). A line whose first column is `-DOCSTART-` (with or without more
//! columns) starts a new [`Document`]; documents without sentences are dropped.
//!
//! Tags are `O` or `P-TYPE` with `P` one of `B I E S` (`L`/`U` read as `E`/`S`), so IOB1, IOB2
//! and BIOES files all load; entities are the chunks of [`crate::tags::chunks`] (conlleval's
//! rules: an orphan `I-X` opens an entity). A [`ConllReader`] can also require a
//! [`LabelSchema`]'s types and a well-formed [`TagScheme`].
//!
//! [`ConllWriter`] writes `word<SEP>tag` lines with tags made from the sentences' spans in the
//! chosen scheme.

use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::entity::WordSpan;
use crate::error::{CoreError, Result};
use crate::schema::LabelSchema;
use crate::tags::{Tag, TagScheme, chunks, spans_to_tags};
use crate::text::{Document, Sentence};

use super::{check_label, for_each_line, io_error, open};

/// The first column of a document-start line.
pub const DOCSTART: &str = "-DOCSTART-";

/// Reads CoNLL column files. Options are set builder-style:
///
/// ```
/// use linkner_core::io::ConllReader;
/// use linkner_core::{LabelSchema, TagScheme};
///
/// let reader = ConllReader::new()
///     .scheme(TagScheme::Iob2)
///     .schema(Some(LabelSchema::conll03()));
/// let docs = reader.read("Paris B-LOC\n".as_bytes(), "<inline>")?;
/// assert_eq!(docs[0].sentences[0].spans[0].label, "LOC");
/// # Ok::<(), linkner_core::CoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConllReader {
    scheme: Option<TagScheme>,
    schema: Option<LabelSchema>,
    check_columns: bool,
    word_column: Option<usize>,
    tag_column: Option<usize>,
}

impl Default for ConllReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ConllReader {
    /// A reader that accepts any tag scheme and any label, and checks that every line has the
    /// column count of the file's first word line.
    pub fn new() -> Self {
        ConllReader {
            scheme: None,
            schema: None,
            check_columns: true,
            word_column: None,
            tag_column: None,
        }
    }

    /// The 1-based columns of the word and the tag (`None`: the first and the last), for files
    /// with the tag elsewhere (CoNLL-U's `MISC`, OntoNotes' NER column, CoNLL-2003's chunk
    /// tags). With either given, lines that start with `#` are comments (CoNLL-U) and every line
    /// must have the columns named.
    pub fn columns(mut self, word: Option<usize>, tag: Option<usize>) -> Self {
        self.word_column = word;
        self.tag_column = tag;
        self
    }

    /// Requires every sentence's tags to be well formed in `scheme` (`None`, the default,
    /// accepts any mix of prefixes and reads ill-formed sequences as conlleval does).
    ///
    /// Well formed means: IOB2 — every `I-X` follows `B-X` or `I-X`; IOB1 — every `B-X`
    /// follows `I-X` or `B-X`; both without `E-`/`S-`; BIOES — `B-X` and `I-X` are followed by
    /// `I-X` or `E-X`, and `I-X` and `E-X` follow `B-X` or `I-X`.
    pub fn scheme(mut self, scheme: impl Into<Option<TagScheme>>) -> Self {
        self.scheme = scheme.into();
        self
    }

    /// Makes any entity type that `schema` does not list a [`CoreError::UnknownLabel`].
    pub fn schema(mut self, schema: Option<LabelSchema>) -> Self {
        self.schema = schema;
        self
    }

    /// Turns the column-count check on (default) or off.
    pub fn check_columns(mut self, check: bool) -> Self {
        self.check_columns = check;
        self
    }

    /// Reads a file.
    pub fn read_path(&self, path: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = path.as_ref();
        self.read(open(path)?, path)
    }

    /// Reads from any buffered reader; `name` is the file name errors show.
    pub fn read<R: BufRead>(&self, reader: R, name: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = name.as_ref();
        let mut state = State {
            reader: self,
            path,
            docs: Vec::new(),
            doc: Document::default(),
            words: Vec::new(),
            tags: Vec::new(),
            lines: Vec::new(),
            columns: None,
        };
        for_each_line(reader, path, |line_no, line| state.line(line_no, line))?;
        state.end_sentence()?;
        state.end_document();
        Ok(state.docs)
    }
}

/// Reads a CoNLL file with the default [`ConllReader`].
pub fn read_conll(path: impl AsRef<Path>) -> Result<Vec<Document>> {
    ConllReader::new().read_path(path)
}

/// Parsing state of one file.
struct State<'a> {
    reader: &'a ConllReader,
    path: &'a Path,
    docs: Vec<Document>,
    doc: Document,
    words: Vec<String>,
    tags: Vec<String>,
    /// Line number of each word of the current sentence.
    lines: Vec<usize>,
    /// Column count of the first word line, and that line's number.
    columns: Option<(usize, usize)>,
}

impl State<'_> {
    fn parse_error(&self, line: usize, message: String) -> CoreError {
        CoreError::parse(self.path, line, message)
    }

    fn line(&mut self, line_no: usize, line: &str) -> Result<()> {
        if line.bytes().all(|b| b.is_ascii_whitespace()) {
            return self.end_sentence();
        }
        // A stray carriage return separates columns like a space (the writer never puts one in
        // a word, so what is read can be written back).
        let explicit = self.reader.word_column.is_some() || self.reader.tag_column.is_some();
        if explicit && line.starts_with('#') {
            return Ok(());
        }
        let cols: Vec<&str> = line
            .split([' ', '\t', '\r'])
            .filter(|c| !c.is_empty())
            .collect();
        let Some(&first) = cols.first() else {
            return self.end_sentence();
        };
        let count = cols.len();
        let word_col = self.reader.word_column.unwrap_or(1);
        let tag_col = self.reader.tag_column.unwrap_or(count);
        if first == DOCSTART || cols.get(word_col.wrapping_sub(1)) == Some(&DOCSTART) {
            self.end_sentence()?;
            self.end_document();
            return Ok(());
        }
        if explicit {
            let need = word_col.max(tag_col);
            if word_col == 0 || tag_col == 0 || count < need || word_col == tag_col {
                return Err(self.parse_error(
                    line_no,
                    format!(
                        "found {count} columns; expected the word in column {word_col} and the \
                         tag in column {tag_col} (1-based, two different columns)"
                    ),
                ));
            }
        }
        let word = cols[word_col - 1];
        let tag = cols[tag_col - 1];
        if count < 2 {
            return Err(self.parse_error(
                line_no,
                format!(
                    "found 1 column (`{word}`); expected at least 2: the word first and its tag \
                     last, separated by spaces or TABs"
                ),
            ));
        }
        if self.reader.check_columns {
            match self.columns {
                None => self.columns = Some((count, line_no)),
                Some((expected, first)) if expected != count => {
                    return Err(self.parse_error(
                        line_no,
                        format!(
                            "found {count} columns; expected {expected} columns like line \
                             {first}, the file's first word line"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let Some(parsed) = Tag::parse(tag) else {
            return Err(self.parse_error(
                line_no,
                format!(
                    "bad tag `{tag}` in the last column; expected `O` or a prefix `B-`, `I-`, \
                     `E-`, `S-` followed by an entity type (BILOU `L-`/`U-`: convert to `E-`/`S-`)"
                ),
            ));
        };
        if parsed.prefix != 'O' {
            check_label(
                self.reader.schema.as_ref(),
                parsed.label,
                self.path,
                line_no,
            )?;
        }
        self.words.push(word.to_string());
        self.tags.push(tag.to_string());
        self.lines.push(line_no);
        Ok(())
    }

    fn end_sentence(&mut self) -> Result<()> {
        if self.words.is_empty() {
            return Ok(());
        }
        if let Some(scheme) = self.reader.scheme
            && let Some((i, message)) = scheme_violation(&self.tags, scheme)
        {
            return Err(self.parse_error(self.lines[i], message));
        }
        let mut sentence = Sentence::from_words(&self.words);
        sentence.spans = chunks(&self.tags);
        sentence.tags = Some(std::mem::take(&mut self.tags));
        self.words.clear();
        self.lines.clear();
        self.doc.sentences.push(sentence);
        Ok(())
    }

    fn end_document(&mut self) {
        let doc = std::mem::take(&mut self.doc);
        if !doc.sentences.is_empty() {
            self.docs.push(doc);
        }
    }
}

/// The first tag that is not well formed in `scheme`, with a message saying what was expected.
fn scheme_violation(tags: &[String], scheme: TagScheme) -> Option<(usize, String)> {
    let parsed: Vec<Tag<'_>> = tags
        .iter()
        .map(|t| {
            Tag::parse(t).unwrap_or(Tag {
                prefix: 'O',
                label: "",
            })
        })
        .collect();
    let name = match scheme {
        TagScheme::Iob1 => "IOB1",
        TagScheme::Iob2 => "IOB2",
        TagScheme::Bioes => "BIOES",
    };
    for (i, cur) in parsed.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| parsed[j]);
        let next = parsed.get(i + 1);
        let continues = |t: Option<Tag<'_>>, prefixes: &[char]| {
            t.is_some_and(|t| prefixes.contains(&t.prefix) && t.label == cur.label)
        };
        let fail = |what: &str| Some((i, format!("tag `{}` is not valid {name}: {what}", tags[i])));
        match (scheme, cur.prefix) {
            (_, 'O') => {}
            (TagScheme::Iob1 | TagScheme::Iob2, 'E' | 'S') => {
                return fail("expected only `O`, `B-` and `I-` tags");
            }
            (TagScheme::Iob2, 'I') if !continues(prev, &['B', 'I']) => {
                return fail("expected `B-` before it, since `I-` must continue an entity");
            }
            (TagScheme::Iob1, 'B') if !continues(prev, &['B', 'I']) => {
                return fail("`B-` may only separate two adjacent entities of the same type");
            }
            (TagScheme::Bioes, 'I' | 'E') if !continues(prev, &['B', 'I']) => {
                return fail("expected `B-` or `I-` of the same type before it");
            }
            (TagScheme::Bioes, 'B' | 'I') if !continues(next.copied(), &['I', 'E']) => {
                return fail("expected `I-` or `E-` of the same type after it");
            }
            _ => {}
        }
    }
    None
}

/// The column separator a [`ConllWriter`] puts between word and tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Separator {
    /// A TAB.
    #[default]
    Tab,
    /// One ASCII space.
    Space,
}

impl Separator {
    fn as_str(self) -> &'static str {
        match self {
            Separator::Tab => "\t",
            Separator::Space => " ",
        }
    }
}

/// Writes CoNLL `word<SEP>tag` files: one word per line, a blank line after each sentence, and
/// optionally a `-DOCSTART-<SEP>O` line (plus a blank line) before each document.
///
/// Tags are made from each sentence's `spans` in the writer's scheme (IOB2 by default); words
/// that are empty or contain an ASCII space, TAB or line break, and spans that overlap or fall
/// outside their sentence, cannot be written and give a [`CoreError::Write`].
#[derive(Debug, Clone, Default)]
pub struct ConllWriter {
    scheme: TagScheme,
    separator: Separator,
    docstart: bool,
}

impl ConllWriter {
    /// IOB2 tags, TAB separator, no `-DOCSTART-` lines.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tag scheme to write.
    pub fn scheme(mut self, scheme: TagScheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// The separator between word and tag.
    pub fn separator(mut self, separator: Separator) -> Self {
        self.separator = separator;
        self
    }

    /// Writes a `-DOCSTART-` line before every document when `on`.
    pub fn docstart(mut self, on: bool) -> Self {
        self.docstart = on;
        self
    }

    /// Writes `docs` to `out`; `name` is the file name errors show.
    pub fn write<W: Write>(&self, out: W, docs: &[Document], name: impl AsRef<Path>) -> Result<()> {
        let path = name.as_ref();
        let mut out = out;
        let mut buf = String::new();
        let mut at_start = true;
        for doc in docs {
            buf.clear();
            if self.docstart {
                let sep = self.separator.as_str();
                buf.push_str(DOCSTART);
                buf.push_str(sep);
                buf.push_str("O\n\n");
            }
            for sentence in &doc.sentences {
                self.sentence_into(sentence, path, &mut buf)?;
            }
            if at_start && !buf.is_empty() {
                // Readers drop a byte-order mark at the start of a file; a first word that
                // begins with U+FEFF keeps it behind an extra mark.
                if buf.starts_with('\u{feff}') {
                    buf.insert(0, '\u{feff}');
                }
                at_start = false;
            }
            out.write_all(buf.as_bytes())
                .map_err(|e| io_error(path, e))?;
        }
        out.flush().map_err(|e| io_error(path, e))
    }

    /// Writes `docs` to a file (created or truncated).
    pub fn write_path(&self, path: impl AsRef<Path>, docs: &[Document]) -> Result<()> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|e| io_error(path, e))?;
        self.write(BufWriter::new(file), docs, path)
    }

    /// Writes `docs` into a string.
    pub fn write_string(&self, docs: &[Document]) -> Result<String> {
        let mut out = Vec::new();
        self.write(&mut out, docs, "<memory>")?;
        String::from_utf8(out).map_err(|e| CoreError::Write {
            path: PathBuf::from("<memory>"),
            message: e.to_string(),
        })
    }

    fn sentence_into(&self, sentence: &Sentence, path: &Path, buf: &mut String) -> Result<()> {
        let n = sentence.tokens.len();
        check_spans(&sentence.spans, n, path)?;
        let tags = spans_to_tags(&sentence.spans, n, self.scheme);
        let sep = self.separator.as_str();
        for (token, tag) in sentence.tokens.iter().zip(&tags) {
            let w = token.text.as_str();
            if w.is_empty() || w.contains([' ', '\t', '\n', '\r']) || w == DOCSTART {
                return Err(CoreError::Write {
                    path: path.to_path_buf(),
                    message: format!(
                        "word {w:?} of sentence {:?} cannot be a CoNLL column: expected a \
                         non-empty word without spaces, TABs or line breaks",
                        sentence.text
                    ),
                });
            }
            buf.push_str(w);
            buf.push_str(sep);
            buf.push_str(tag);
            buf.push('\n');
        }
        if n > 0 {
            buf.push('\n');
        }
        Ok(())
    }
}

/// Spans must be non-empty, inside `0..len` and must not overlap to be written as tags.
pub(crate) fn check_spans(spans: &[WordSpan], len: usize, path: &Path) -> Result<()> {
    let mut sorted: Vec<&WordSpan> = spans.iter().collect();
    sorted.sort();
    let mut prev: Option<&WordSpan> = None;
    for s in sorted {
        if s.start >= s.end || s.end > len || s.label.is_empty() {
            return Err(CoreError::Write {
                path: path.to_path_buf(),
                message: format!(
                    "span [{}, {}) `{}` does not fit a sentence of {len} words; expected a \
                     non-empty labelled span inside it",
                    s.start, s.end, s.label
                ),
            });
        }
        if let Some(p) = prev
            && p.overlaps(s)
        {
            return Err(CoreError::Write {
                path: path.to_path_buf(),
                message: format!(
                    "spans [{}, {}) `{}` and [{}, {}) `{}` overlap; tags need disjoint spans",
                    p.start, p.end, p.label, s.start, s.end, s.label
                ),
            });
        }
        prev = Some(s);
    }
    Ok(())
}

/// Writes `docs` to a CoNLL file in `scheme` with the default [`ConllWriter`] options.
pub fn write_conll(path: impl AsRef<Path>, docs: &[Document], scheme: TagScheme) -> Result<()> {
    ConllWriter::new().scheme(scheme).write_path(path, docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Document>> {
        ConllReader::new().read(text.as_bytes(), "t.conll")
    }

    #[test]
    fn documents_sentences_and_offsets() {
        let docs = read(
            "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\
             -DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let s = &docs[1].sentences[0];
        assert_eq!(s.text, "Peter Blackburn");
        assert_eq!((s.tokens[1].start, s.tokens[1].end), (6, 15));
        assert_eq!(s.spans, vec![WordSpan::new(0, 2, "PER")]);
        assert_eq!(s.tags.as_deref().unwrap(), ["B-PER", "I-PER"]);
    }

    #[test]
    fn separators_tab_lines_and_nbsp() {
        let docs = read("a\tO\n\t\n\u{a0} O\nb\u{feff}\tI-LOC\n  \n").unwrap();
        let s = &docs[0].sentences;
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].words(), ["\u{a0}", "b\u{feff}"]);
        assert_eq!(s[1].spans, vec![WordSpan::new(1, 2, "LOC")]);
        assert_eq!(s[1].tokens[1].start, 2);
    }

    #[test]
    fn iob1_and_bioes_chunks() {
        let s = &read("A I-PER\nB I-PER\nC B-PER\nD O\nE S-LOC\nF B-ORG\nG E-ORG\n").unwrap()[0]
            .sentences[0];
        assert_eq!(
            s.spans,
            vec![
                WordSpan::new(0, 2, "PER"),
                WordSpan::new(2, 3, "PER"),
                WordSpan::new(4, 5, "LOC"),
                WordSpan::new(5, 7, "ORG"),
            ]
        );
    }

    #[test]
    fn scheme_checks() {
        let ok = |text: &str, scheme| {
            ConllReader::new()
                .scheme(scheme)
                .read(text.as_bytes(), "t")
                .is_ok()
        };
        assert!(ok("a B-X\nb I-X\nc O\n", TagScheme::Iob2));
        assert!(!ok("a O\nb I-X\n", TagScheme::Iob2));
        assert!(!ok("a S-X\n", TagScheme::Iob2));
        assert!(ok("a I-X\nb B-X\n", TagScheme::Iob1));
        assert!(!ok("a O\nb B-X\n", TagScheme::Iob1));
        assert!(ok("a B-X\nb I-X\nc E-X\nd S-Y\n", TagScheme::Bioes));
        assert!(!ok("a B-X\nb O\n", TagScheme::Bioes));
        assert!(!ok("a B-X\nb I-X\n", TagScheme::Bioes));
        assert!(!ok("a O\nb E-X\n", TagScheme::Bioes));
        let err = ConllReader::new()
            .scheme(TagScheme::Iob2)
            .read("a O\nb O\n\nc O\nd I-X\n".as_bytes(), "t")
            .unwrap_err();
        assert!(matches!(err, CoreError::Parse { line: 5, .. }), "{err:?}");
    }

    #[test]
    fn writer_schemes_and_docstart() {
        let docs = read("New B-LOC\nYork I-LOC\nis O\nbig O\n").unwrap();
        let w = ConllWriter::new()
            .scheme(TagScheme::Bioes)
            .separator(Separator::Space)
            .docstart(true);
        assert_eq!(
            w.write_string(&docs).unwrap(),
            "-DOCSTART- O\n\nNew B-LOC\nYork E-LOC\nis O\nbig O\n\n"
        );
        let iob1 = ConllWriter::new()
            .scheme(TagScheme::Iob1)
            .write_string(&docs)
            .unwrap();
        assert_eq!(iob1, "New\tI-LOC\nYork\tI-LOC\nis\tO\nbig\tO\n\n");
    }

    #[test]
    fn writer_rejects_unwritable_input() {
        let mut s = Sentence::from_words(&["a b", "c"]);
        let doc = |s: Sentence| {
            vec![Document {
                id: None,
                sentences: vec![s],
            }]
        };
        let err = ConllWriter::new()
            .write_string(&doc(s.clone()))
            .unwrap_err();
        assert!(matches!(err, CoreError::Write { .. }), "{err:?}");
        s = Sentence::from_words(&["a", "b", "c"]);
        s.spans = vec![WordSpan::new(0, 2, "X"), WordSpan::new(1, 3, "Y")];
        let err = ConllWriter::new()
            .write_string(&doc(s.clone()))
            .unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
        s.spans = vec![WordSpan::new(2, 4, "X")];
        assert!(ConllWriter::new().write_string(&doc(s)).is_err());
    }
}
