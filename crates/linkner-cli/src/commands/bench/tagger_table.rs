//! The table of `linkner bench tagger`.

use super::num;
use super::tagger::{SETTINGS, TaggerBench};

fn label_of(key: &str) -> &'static str {
    SETTINGS.iter().find(|s| s.0 == key).map_or("?", |s| s.1)
}

/// Prints the table of `linkner bench tagger`.
pub(super) fn print_table(r: &TaggerBench) {
    print_heading(r);
    print_rows(r);
    print_notes(r);
}

/// The data, the FLOPs and the peer.
fn print_heading(r: &TaggerBench) {
    println!(
        "linkner bench tagger: {} sentences, {} tokens, {} spans of {} ({}, {} threads)",
        r.sentences,
        r.tokens,
        r.spans,
        r.data.display(),
        r.device,
        r.threads,
    );
    println!(
        "one pass = {:.2} GFLOP encoder + {:.2} GFLOP span head (unpadded tokens: dense layers, attention, span head)",
        r.encoder_gflop, r.head_gflop
    );
    match (&r.python_versions, &r.python_skipped) {
        (Some(v), _) => println!("python peer: {v}"),
        (None, Some(why)) => println!("python peer: skipped ({why})"),
        (None, None) => {}
    }
    println!();
}

/// One row per setting and batch size.
fn print_rows(r: &TaggerBench) {
    println!(
        "{:<20} {:>5} {:>11} {:>11} {:>7} {:>11} {:>11} {:>9} {:>9} {:>8}",
        "setting",
        "batch",
        "linkner s/s",
        "python s/s",
        "ratio",
        "lk enc s/s",
        "py enc s/s",
        "lk RSS MB",
        "py RSS MB",
        "lk F1"
    );
    for s in &r.settings {
        println!(
            "{:<20} {:>5} {:>11} {:>11} {:>7} {:>11} {:>11} {:>9} {:>9} {:>8}",
            label_of(&s.setting),
            s.batch_size,
            num(s.linkner.sentences_per_s, 1),
            num(s.python.sentences_per_s, 1),
            s.ratio.map_or_else(|| "n/a".into(), |r| format!("{r:.2}x")),
            num(s.linkner.encoder_sentences_per_s, 1),
            num(s.python.encoder_sentences_per_s, 1),
            num(s.linkner.peak_rss_mb, 0),
            num(s.python.peak_rss_mb, 0),
            num(s.linkner.f1.map(|f| f * 100.0), 2),
        );
    }
    println!(
        "(s/s: sentences per second end to end; enc s/s: the encoder alone on prepared batches)"
    );
}

/// Why a number is missing, the bf16 − f32 F1 difference and the targets.
fn print_notes(r: &TaggerBench) {
    for s in &r.settings {
        let label = label_of(&s.setting);
        if let Some(why) = &s.linkner.unavailable {
            println!("linkner {label} (batch {}): n/a ({why})", s.batch_size);
        }
        if r.python_skipped.is_none()
            && let Some(why) = &s.python.unavailable
        {
            println!("python {label} (batch {}): n/a ({why})", s.batch_size);
        }
    }
    let f1_of = |key: &str| {
        r.settings
            .iter()
            .find(|s| s.setting == key)
            .and_then(|s| s.linkner.f1)
    };
    if let (Some(f32_f1), Some(bf16_f1)) = (f1_of("length_sorted"), f1_of("bf16")) {
        println!("F1 bf16 − f32: {:+.2} points", (bf16_f1 - f32_f1) * 100.0);
    }
    if let Some(t) = r.target_ratio {
        println!(
            "target: best linkner ≥ 1.5× python as given: {t:.2}× ({})",
            if t >= 1.5 { "met" } else { "not met" }
        );
    }
    if let Some(g) = r.goal_ratio {
        println!(
            "best linkner ≥ 1.2× best python, end to end: {g:.2}× ({})",
            if g >= 1.2 { "met" } else { "not met" }
        );
    }
    if let Some(g) = r.end_to_end_vs_python_encoder {
        println!(
            "best linkner end to end ≥ 1.2× best python encoder-only: {g:.2}× ({})",
            if g >= 1.2 { "met" } else { "not met" }
        );
    }
}
