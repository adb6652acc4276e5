//! Properties of raw-text word splitting: offsets are exact char offsets, words are ordered and
//! non-empty, and only separators are left out.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use linkner_core::{sentence_from_text, split_words};
use proptest::prelude::*;

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{200B}'
                | '\u{200C}'
                | '\u{200D}'
                | '\u{2060}'
                | '\u{FEFF}'
                | '\u{00AD}'
                | '\u{180E}'
        )
        || ('\u{FE00}'..='\u{FE0F}').contains(&c)
}

fn alphabet() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::char::range('a', 'z'),
        proptest::char::range('A', 'Z'),
        proptest::char::range('0', '9'),
        Just(' '),
        Just('\t'),
        Just('\n'),
        Just('.'),
        Just(','),
        Just('-'),
        Just('\''),
        Just('&'),
        Just('é'),
        Just('\u{301}'),
        Just('\u{200B}'),
        Just('\u{200D}'),
        Just('\u{FEFF}'),
        Just('\u{00AD}'),
        Just('\u{FE0F}'),
        Just('東'),
        Just('京'),
        Just('👩'),
        Just('🚀'),
        Just('🇫'),
        Just('🇷'),
        any::<char>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn words_are_exact_char_slices(chars in proptest::collection::vec(alphabet(), 0..60)) {
        let text: String = chars.iter().collect();
        let words = split_words(&text);
        let mut covered = vec![false; chars.len()];
        let mut prev_end = 0;
        for &(s, e) in &words {
            prop_assert!(s < e && e <= chars.len());
            prop_assert!(s >= prev_end, "overlap or disorder at {s}");
            prev_end = e;
            let w: String = chars[s..e].iter().collect();
            prop_assert!(!w.chars().all(is_separator), "word of separators {:?}", w);
            for c in covered.iter_mut().take(e).skip(s) {
                *c = true;
            }
        }
        for (i, c) in chars.iter().enumerate() {
            prop_assert!(covered[i] || is_separator(*c), "char {:?} at {} dropped from {:?}", c, i, text);
        }
        let sentence = sentence_from_text(&text);
        prop_assert_eq!(sentence.text, text.clone());
        for t in &sentence.tokens {
            let slice: String = text.chars().skip(t.start).take(t.end - t.start).collect();
            prop_assert_eq!(&t.text, &slice);
        }
    }
}
