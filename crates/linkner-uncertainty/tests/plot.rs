//! The PNG plots (feature `plot`).
#![cfg(feature = "plot")]
// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

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

/// The decoded RGB pixels of a PNG file: (width, height, 3 bytes per pixel).
fn pixels(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.line_size * info.height as usize);
    (info.width as usize, info.height as usize, buf)
}

/// Dark (text-coloured: black anti-aliased) pixels in rows `rows` and columns `cols`.
fn dark_pixels(
    (w, _, px): &(usize, usize, Vec<u8>),
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> usize {
    rows.flat_map(|y| cols.clone().map(move |x| (y, x)))
        .filter(|&(y, x)| {
            let i = (y * w + x) * 3;
            px[i] < 100 && px[i + 1] < 100 && px[i + 2] < 100
        })
        .count()
}

/// The font the plots draw text with: a missing font is a FAILURE (scripts/test.sh installs
/// one), never a silent pass.
fn require_font() {
    let font = plot::font_path();
    assert!(
        font.as_ref().is_some_and(|f| f.is_file()),
        "no font for plot text ({font:?}): install one (Debian: `apt-get install fonts-dejavu-core`, \
         which scripts/test.sh does) or set LINKNER_FONT to a .ttf file; tried {:?}",
        plot::FONT_CANDIDATES
    );
}

#[test]
fn risk_coverage_png_is_written_with_its_text() {
    require_font();
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
    plot::risk_coverage_png(&path, "risk–coverage of two estimators", &curves).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(png_size(&bytes), (900, 600));
    let image = pixels(&bytes);
    // The title band (above the chart, which starts below the 22 px caption and the 15 px
    // margin) holds only the title's glyphs: black text on white.
    let title = dark_pixels(&image, 0..40, 0..900);
    assert!(title > 150, "no title text drawn: {title} dark pixels");

    // The same plot with an empty title: that band is blank, so the pixels above were text.
    let blank = temp_png("rc-blank");
    plot::risk_coverage_png(&blank, "", &curves).unwrap();
    let image = pixels(&std::fs::read(&blank).unwrap());
    std::fs::remove_file(&blank).unwrap();
    assert_eq!(
        dark_pixels(&image, 0..40, 0..900),
        0,
        "the title band is not blank without a title"
    );
    // Axis descriptions and tick labels are text too: the bottom band below the x axis.
    let bottom = dark_pixels(&image, 560..600, 100..800);
    assert!(bottom > 100, "no axis text drawn: {bottom} dark pixels");
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
