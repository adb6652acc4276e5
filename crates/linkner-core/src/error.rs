//! The one error type of `linkner-core`.

use std::path::PathBuf;

/// A boxed error of a component written outside linkner: what the `backend` constructor of each
/// trait's error ([`TaggerError::backend`](crate::TaggerError::backend),
/// `LlmError::backend`, `UncertaintyError::backend`) takes.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias of this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Every failure of `linkner-core`. Input errors name the file, the 1-based line and what was
/// expected there; nothing in this crate panics on user input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// File that failed.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line does not have the expected shape.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// File being read (`<memory>` for in-memory input).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was found and what was expected.
        message: String,
    },
    /// A line is not valid UTF-8.
    #[error("{}:{line}: invalid UTF-8 (byte offset {byte_offset} in the line); expected UTF-8 text", path.display())]
    InvalidUtf8 {
        /// File being read.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Offset of the first invalid byte inside the line.
        byte_offset: usize,
    },
    /// A label that the label schema does not know.
    #[error("{}:{line}: unknown label `{label}`; schema `{schema}` expects one of: {expected}", path.display())]
    UnknownLabel {
        /// File being read.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The label found.
        label: String,
        /// Schema name.
        schema: String,
        /// Comma-separated list of allowed labels.
        expected: String,
    },
    /// A span does not fit the sentence it belongs to.
    #[error("invalid span [{start}, {end}) for a sequence of length {len}: {message}")]
    InvalidSpan {
        /// Span start.
        start: usize,
        /// Span end (exclusive).
        end: usize,
        /// Length of the sequence (words or chars).
        len: usize,
        /// What is wrong.
        message: String,
    },
    /// Two sequences that must have the same shape do not.
    #[error("mismatch: {0}")]
    Mismatch(String),
    /// A named built-in (schema, format, …) does not exist.
    #[error("unknown {kind} `{name}`; expected one of: {expected}")]
    UnknownName {
        /// What kind of thing was looked up.
        kind: &'static str,
        /// The name given.
        name: String,
        /// Allowed names.
        expected: String,
    },
    /// Data that the output format cannot represent (e.g. a word with a space in a CoNLL file,
    /// overlapping entities written as tags).
    #[error("{}: cannot write: {message}", path.display())]
    Write {
        /// File being written (`<memory>` for in-memory output).
        path: PathBuf,
        /// What cannot be written and what was expected.
        message: String,
    },
    /// A tag that the tagging scheme in force does not allow (seqeval's strict mode).
    #[error(
        "{context}: tag `{tag}` is not allowed by the strict {scheme} scheme; expected {expected}"
    )]
    InvalidTag {
        /// Where the tag was found (sentence and word, 1-based).
        context: String,
        /// The tag found.
        tag: String,
        /// The scheme in force (`iob2`, …).
        scheme: String,
        /// What the scheme allows.
        expected: String,
    },
    /// A label schema (a schema file, or one built in code) that cannot be used: a field of the
    /// wrong shape, a missing field, or a broken rule of [`crate::LabelSchema::validate`].
    #[error("{}: schema field `{field}`: {message}", path.display())]
    Schema {
        /// The schema file (`<schema NAME>` for a schema built in code).
        path: PathBuf,
        /// The field at fault, as a path into the file (`types[2].llm_name`; `(top level)`
        /// for a syntax error or a missing top-level field).
        field: String,
        /// What is wrong, with the line and column when the file's syntax tells them.
        message: String,
    },
    /// A JSON (de)serialisation error outside a line-oriented reader.
    #[error("{}: JSON: {source}", path.display())]
    Json {
        /// File being read or written.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },
}

impl CoreError {
    /// Builds a [`CoreError::Parse`].
    pub fn parse(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        CoreError::Parse {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}

/// An error and its causes on one line: each cause's text only when the line does not already
/// hold it. The one helper of the workspace for printing any error (its own and other
/// libraries').
///
/// The workspace's convention: an error's `Display` is one line that includes the text of the
/// error it wraps (so `to_string()` is enough for a log line), and `source()` returns that
/// error, typed, for programs; a variant that wraps nothing says everything in its fields.
///
/// A cause that ends in serde_json's ` at line L column C` counts as held when the line holds
/// it without that suffix (the workspace's JSON errors give the position up front as
/// `file:L:C:` and drop it from the wrapped text).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) && !text.contains(without_json_position(&t)) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text
}

/// `text` without a trailing ` at line L column C` (serde_json's position), else `text`.
fn without_json_position(text: &str) -> &str {
    match text.rfind(" at line ") {
        Some(i)
            if text[i + 9..].split_once(" column ").is_some_and(|(l, c)| {
                !l.is_empty()
                    && !c.is_empty()
                    && l.bytes().all(|b| b.is_ascii_digit())
                    && c.bytes().all(|b| b.is_ascii_digit())
            }) =>
        {
            &text[..i]
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::{error_chain, without_json_position};

    #[test]
    fn a_json_cause_is_not_repeated_for_its_position() {
        // The shape of LinkError::Json: the position up front, the message without it.
        let source = serde_like("unknown field `note`, expected `tagger` at line 85 column 8");
        let e = Outer2(source);
        assert_eq!(
            error_chain(&e),
            "c.json:85:8: `note`: unknown field `note`, expected `tagger`"
        );
        assert_eq!(without_json_position("x at line 3 column 4"), "x");
        assert_eq!(without_json_position("x at line 3"), "x at line 3");
        assert_eq!(
            without_json_position("x at line three column 4"),
            "x at line three column 4"
        );
    }

    fn serde_like(text: &str) -> std::io::Error {
        std::io::Error::other(text.to_string())
    }

    #[derive(Debug)]
    struct Outer2(std::io::Error);

    impl std::fmt::Display for Outer2 {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let t = self.0.to_string();
            write!(f, "c.json:85:8: `note`: {}", without_json_position(&t))
        }
    }

    impl std::error::Error for Outer2 {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Says its cause's text, like the workspace's errors.
    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "config.json: {}", self.0)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Does not say its cause's text, like many libraries' errors.
    #[derive(Debug)]
    struct Wrap(Outer);

    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("reading the model")
        }
    }

    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = Outer(std::io::Error::other("no such file"));
        assert_eq!(error_chain(&e), "config.json: no such file");
    }

    #[test]
    fn a_new_cause_is_appended_and_its_own_cause_once() {
        let e = Wrap(Outer(std::io::Error::other("permission denied")));
        assert_eq!(
            error_chain(&e),
            "reading the model: config.json: permission denied"
        );
    }
}
