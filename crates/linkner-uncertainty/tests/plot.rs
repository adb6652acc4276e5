//! The PNG plots (feature `plot`).
#![cfg(feature = "plot")]
// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use linkner_uncertainty::UncertaintyError;
use linkner_uncertainty::metrics::{self, Scored};
use linkner_uncertainty::plot::{self, PlotSpec, Series};

fn temp_png(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("linkner-plot-{}-{name}.png", std::process::id()))
}

/// Width and height from the IHDR chunk of a PNG file.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn risk_coverage_png_is_written() {
    let flags = [
        true, true, false, true, false, true, true, true, false, true,
    ];
    let good: Vec<Scored> = flags
        .iter()
        .enumerate()
        .map(|(i, &c)| Scored::new(if c { 0.1 } else { 0.9 } + i as f32 / 100.0, c))
        .collect();
    let bad: Vec<Scored> = flags
        .iter()
        .enumerate()
        .map(|(i, &c)| Scored::new(i as f32 / 10.0, c))
        .collect();
    let curves = vec![
        ("good".to_string(), metrics::risk_coverage(&good).unwrap()),
        ("bad".to_string(), metrics::risk_coverage(&bad).unwrap()),
    ];
    let path = temp_png("rc");
    match plot::risk_coverage_png(&path, "risk–coverage", &curves) {
        Ok(()) => {
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(png_size(&bytes), (900, 600));
            // more than a blank canvas: lines and text compress worse than a white image
            assert!(
                bytes.len() > 5_000,
                "suspiciously small PNG: {} bytes",
                bytes.len()
            );
            std::fs::remove_file(&path).unwrap();
        }
        // A machine without any font file: the error must say how to fix it.
        Err(UncertaintyError::Plot { message, .. }) if plot::font_path().is_none() => {
            assert!(message.contains("LINKNER_FONT"), "{message}");
        }
        Err(e) => panic!("plot failed: {e}"),
    }
}

#[test]
fn bad_plot_input_is_an_error() {
    let path = temp_png("bad");
    let nan = [Series::new("nan", vec![(0.0, f64::NAN)])];
    assert!(plot::line_plot(&path, &PlotSpec::risk_coverage("t"), &nan).is_err());
    let mut tiny = PlotSpec::risk_coverage("t");
    tiny.size = (10, 10);
    assert!(plot::line_plot(&path, &tiny, &[]).is_err());
    let mut empty_range = PlotSpec::risk_coverage("t");
    empty_range.x_range = (1.0, 1.0);
    assert!(plot::line_plot(&path, &empty_range, &[]).is_err());
    assert!(!path.exists());
}
