//! The page at `/` of `linkner serve`, in a real headless browser (Debian's Chromium): loaded
//! with `/?text=…` it annotates a Unicode text (accents, a combining accent, CJK, emoji outside
//! the BMP, HTML-like characters) on load, and the DOM it leaves has one `<mark>` per entity of
//! a direct `POST /v1/annotate` of the same text, at the same char (code point) offsets, with the
//! same label and provenance, holding exactly the text at those offsets. Fails when Chromium is
//! missing (`scripts/setup-services.sh` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_support::{Served, output_within, percent_encode, required_program};

/// Entities of the tiny tagger's training sentences (common::TRAIN) mixed with text whose
/// UTF-16 offsets differ from its code point offsets (🎉 and 🇨🇭 are two UTF-16 units per code
/// point), a combining accent, CJK, a line break and characters that HTML would interpret.
const TEXT: &str = "Zoë 🎉 says Peter Blackburn : EU rejects German call ; 東京 cheers \
                    <b>&amp; Ame\u{301}lie</b> as\nJapan beat Syria 🇨🇭 .";

/// One entity as the page draws it, or as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    start: usize,
    end: usize,
    label: String,
    provenance: String,
    text: String,
}

/// The page's DOM after Chromium ran it: `<body data-state>`, the marks, and the text of the
/// drawn document (the `div.doc`, marks included).
#[derive(Debug, Default)]
struct PageDom {
    state: Option<String>,
    marks: Vec<Span>,
    doc_text: Option<String>,
    status: Option<String>,
}

#[test]
fn the_page_annotates_a_unicode_text_in_headless_chromium_at_the_apis_offsets() {
    let chromium = required_program("chromium", "chromium");
    let t0 = Instant::now();
    let model = &common::tiny_fixture().1;
    let server = Served::start(&["--policy", "never", "--model", model.to_str().unwrap()]);

    // The page itself is served.
    let page = serve_support::http(server.addr, "GET", "/", None);
    assert_eq!(page.status, 200, "GET / answered {}", page.status);
    assert!(
        page.headers.iter().any(|h| h
            .to_ascii_lowercase()
            .starts_with("content-type: text/html")),
        "GET / is not text/html: {:?}",
        page.headers
    );
    for loader in ["<link", "src=", "@import", "url(", "http://", "https://"] {
        assert!(
            !page.body.contains(loader),
            "the page must be self-contained (nothing from a CDN), but it has {loader:?}"
        );
    }

    // What the API says about the text.
    let answer = server.annotate(&json!({ "text": TEXT }));
    let annotation = &answer["annotations"][0];
    assert_eq!(annotation["sentence"]["text"], TEXT, "{answer}");
    let expected = api_spans(annotation);
    assert!(
        !expected.is_empty(),
        "the tiny tagger found no entity in {TEXT:?}, so the page has nothing to draw: {answer}"
    );
    let first_astral = TEXT.chars().position(|c| c == '🎉').unwrap();
    assert!(
        expected.iter().any(|s| s.start > first_astral),
        "no entity after the emoji: the test would not tell code point from UTF-16 offsets"
    );

    // The page, loaded with ?text=…, annotates on load.
    let profile = tempfile::tempdir().unwrap();
    let url = server.url(&format!("/?text={}", percent_encode(TEXT)));
    let mut cmd = Command::new(&chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--virtual-time-budget=30000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg("--dump-dom")
    .arg(&url);
    let browsed = Instant::now();
    let out = output_within(cmd, Duration::from_secs(120));
    let dom_text = String::from_utf8_lossy(&out.stdout).into_owned();
    let chromium_log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !dom_text.is_empty(),
        "chromium --dump-dom {url} failed ({}); its stderr:\n{chromium_log}",
        out.status
    );
    let dom = parse_page(&dom_text);
    assert_eq!(
        dom.state.as_deref(),
        Some("done"),
        "the page did not finish (status line: {:?}); server stderr:\n{}\nDOM:\n{dom_text}",
        dom.status,
        server.log()
    );

    // Each mark holds exactly the code point slice of the text at its offsets…
    let chars: Vec<char> = TEXT.chars().collect();
    for m in &dom.marks {
        assert!(
            m.start < m.end && m.end <= chars.len(),
            "mark out of the text: {m:?}"
        );
        let slice: String = chars[m.start..m.end].iter().collect();
        assert_eq!(
            m.text, slice,
            "a mark's text is not the text at its char offsets {}..{}",
            m.start, m.end
        );
    }
    // …and the marks are the API's entities (rejected ones included), attribute for attribute.
    let mut marks = dom.marks.clone();
    marks.sort();
    assert_eq!(
        marks, expected,
        "the page's marks differ from POST /v1/annotate's entities"
    );
    // The drawn document is the whole text, escaped (nothing became markup, nothing was lost).
    assert_eq!(
        dom.doc_text.as_deref(),
        Some(TEXT),
        "the drawn document is not the text"
    );
    eprintln!(
        "{} marks checked; chromium took {:.1} s, the whole test {:.1} s",
        marks.len(),
        browsed.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

/// The entities and rejected entities of one annotation, sorted.
fn api_spans(annotation: &Value) -> Vec<Span> {
    let mut spans = Vec::new();
    for key in ["entities", "rejected"] {
        let list = annotation[key]
            .as_array()
            .unwrap_or_else(|| panic!("no `{key}` array in {annotation}"));
        for e in list {
            let ent = &e["entity"];
            spans.push(Span {
                start: ent["start"].as_u64().unwrap() as usize,
                end: ent["end"].as_u64().unwrap() as usize,
                label: ent["label"].as_str().unwrap().to_string(),
                provenance: e["provenance"]["source"].as_str().unwrap().to_string(),
                text: ent["text"].as_str().unwrap().to_string(),
            });
        }
    }
    spans.sort();
    spans
}

/// Reads the serialised DOM: the body's `data-state`, every `<mark data-start=…>` with its text
/// (nested marks included in their parent's text), the text of `div.doc` and of `#status`.
/// Comments, scripts and styles are skipped.
fn parse_page(html: &str) -> PageDom {
    let mut dom = PageDom::default();
    // Open marks (attributes, text so far); whether we are inside div.doc / #status.
    let mut open: Vec<(BTreeMap<String, String>, String)> = Vec::new();
    let mut doc: Option<String> = None;
    let mut status: Option<String> = None;
    let mut rest = html;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        if rest.starts_with('<') {
            let (tag, after) = read_tag(rest);
            rest = after;
            let Some((name, attrs, closing)) = tag else {
                continue;
            };
            match (name.as_str(), closing) {
                ("script" | "style", false) => {
                    let end = format!("</{name}");
                    rest = rest.find(&end).map_or("", |i| &rest[i..]);
                }
                ("body", false) => dom.state = attrs.get("data-state").cloned(),
                ("mark", false) if attrs.contains_key("data-start") => {
                    open.push((attrs, String::new()));
                }
                ("mark", true) if !open.is_empty() => {
                    let (attrs, text) = open.pop().unwrap();
                    let num = |k: &str| -> usize {
                        attrs
                            .get(k)
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| panic!("mark without a numeric {k}: {attrs:?}"))
                    };
                    let attr = |k: &str| attrs.get(k).cloned().unwrap_or_default();
                    dom.marks.push(Span {
                        start: num("data-start"),
                        end: num("data-end"),
                        label: attr("data-label"),
                        provenance: attr("data-provenance"),
                        text,
                    });
                }
                ("div", false)
                    if attrs
                        .get("class")
                        .is_some_and(|c| c.split_whitespace().any(|c| c == "doc")) =>
                {
                    assert!(dom.doc_text.is_none(), "more than one div.doc");
                    doc = Some(String::new());
                }
                ("div", true) if doc.is_some() => dom.doc_text = doc.take(),
                (_, false) if attrs.get("id").is_some_and(|i| i == "status") => {
                    status = Some(String::new());
                }
                (_, true) if status.is_some() => dom.status = status.take(),
                _ => {}
            }
            continue;
        }
        let end = rest.find('<').unwrap_or(rest.len());
        let text = unescape(&rest[..end]);
        rest = &rest[end..];
        for (_, t) in open.iter_mut() {
            t.push_str(&text);
        }
        for t in [doc.as_mut(), status.as_mut()].into_iter().flatten() {
            t.push_str(&text);
        }
    }
    dom
}

/// A tag: lower-case name, attributes, closing or not.
type Tag = (String, BTreeMap<String, String>, bool);

/// Reads one tag at the start of `s` (`<` included): its lower-case name, attributes (values
/// unescaped) and whether it closes; `None` for a doctype or something unreadable. Returns the
/// rest after `>`.
fn read_tag(s: &str) -> (Option<Tag>, &str) {
    let body = &s[1..];
    let (closing, body) = match body.strip_prefix('/') {
        Some(b) => (true, b),
        None => (false, body),
    };
    let name_len = body
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(body.len());
    let name = body[..name_len].to_ascii_lowercase();
    let mut attrs = BTreeMap::new();
    let mut rest = &body[name_len..];
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            return (None, rest);
        }
        if let Some(after) = rest.strip_prefix('>') {
            let ok = !name.is_empty() && !name.starts_with('!');
            return (ok.then_some((name, attrs, closing)), after);
        }
        let key_len = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '>')
            .unwrap_or(rest.len());
        let key = rest[..key_len].to_ascii_lowercase();
        rest = &rest[key_len..];
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            if let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') {
                let inner = &after[1..];
                let end = inner.find(q).unwrap_or(inner.len());
                value = unescape(&inner[..end]);
                rest = inner.get(end + 1..).unwrap_or("");
            } else {
                let end = after
                    .find(|c: char| c.is_whitespace() || c == '>')
                    .unwrap_or(after.len());
                value = unescape(&after[..end]);
                rest = &after[end..];
            }
        }
        if key.is_empty() {
            // Not a tag after all (a stray character): skip one character.
            rest = rest.get(1..).unwrap_or("");
            continue;
        }
        attrs.insert(key, value);
    }
}

/// Decodes the character references a serialised DOM uses (`&amp;`, `&lt;`, `&gt;`, `&quot;`,
/// `&#39;`, `&nbsp;`, numeric ones).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => name.strip_prefix('#').and_then(|n| {
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok(),
                        None => n.parse().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn the_dom_reader_finds_nested_marks_escaped_text_and_the_state() {
    let html = "<!-- <mark data-start=\"9\"> --><html><head><style>mark{}</style></head>\
                <body data-state=\"done\"><div id=\"status\" class=\"\">Round trip 3 ms</div>\
                <div class=\"doc\">a &lt;b&gt; <mark class=\"ent\" data-start=\"4\" data-end=\"9\" \
                data-label=\"PER\" data-provenance=\"local\" title=\"x &gt; y\n&quot;q&quot;\">\
                <mark data-start=\"4\" data-end=\"5\" data-label=\"LOC\" \
                data-provenance=\"llm_rejected\">&amp;</mark> é🎉</mark>.</div>\
                <script>if (a <mark) {}</script></body></html>";
    let dom = parse_page(html);
    assert_eq!(dom.state.as_deref(), Some("done"));
    assert_eq!(dom.status.as_deref(), Some("Round trip 3 ms"));
    assert_eq!(dom.doc_text.as_deref(), Some("a <b> & é🎉."));
    let span = |start, end, label: &str, provenance: &str, text: &str| Span {
        start,
        end,
        label: label.into(),
        provenance: provenance.into(),
        text: text.into(),
    };
    assert_eq!(
        dom.marks,
        vec![
            span(4, 5, "LOC", "llm_rejected", "&"),
            span(4, 9, "PER", "local", "& é🎉"),
        ]
    );
    assert_eq!(unescape("&#x1F389;&#233;&bogus &"), "🎉é&bogus &");
}
