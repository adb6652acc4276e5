//! PNG line plots with `plotters` (feature `plot`): risk–coverage curves of several estimators,
//! and any other family of curves (routed fraction → F1, F1 vs threshold).
//!
//! Text (title, axis names, legend) is drawn with `ab_glyph` from a TrueType/OpenType font file
//! read at run time — no system font library is linked. The font is the file named by the
//! `LINKNER_FONT` environment variable, else the first of [`FONT_CANDIDATES`] that exists; with
//! none, plotting fails with a [`UncertaintyError::Plot`] that says so.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::error::{Result, UncertaintyError};
use crate::metrics::RiskCoverage;

/// Font files tried, in order, when `LINKNER_FONT` is not set.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// The font family name plots use (registered from the font file).
const FAMILY: &str = "sans-serif";

/// Finds the font file plots will use, if any.
pub fn font_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LINKNER_FONT") {
        return Some(PathBuf::from(p));
    }
    FONT_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Registers the font once per process (the bytes live for the rest of the process, as
/// `plotters` requires).
fn ensure_font() -> std::result::Result<(), String> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = font_path().ok_or_else(|| {
                format!(
                    "no font file found for plot text; set LINKNER_FONT to a .ttf/.otf file \
                     (tried: {})",
                    FONT_CANDIDATES.join(", ")
                )
            })?;
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("cannot read font {}: {e}", path.display()))?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
                .map_err(|_| format!("{} is not a usable TrueType/OpenType font", path.display()))
        })
        .clone()
}

/// One named curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points, drawn in order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A curve named `name`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }

    /// The risk–coverage curve of one estimator (see [`crate::metrics::risk_coverage`]).
    pub fn risk_coverage(name: impl Into<String>, curve: &[RiskCoverage]) -> Self {
        Series::new(name, curve.iter().map(|p| (p.coverage, p.risk)).collect())
    }
}

/// Axes and size of a [`line_plot`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlotSpec {
    /// Title above the chart.
    pub title: String,
    /// Name of the x axis.
    pub x_label: String,
    /// Name of the y axis.
    pub y_label: String,
    /// Range of the x axis.
    pub x_range: (f64, f64),
    /// Range of the y axis; `None` fits the data (from 0).
    pub y_range: Option<(f64, f64)>,
    /// Image size in pixels.
    pub size: (u32, u32),
}

impl PlotSpec {
    /// The spec of a risk–coverage plot: coverage 0–1 against risk, fitted.
    pub fn risk_coverage(title: impl Into<String>) -> Self {
        PlotSpec {
            title: title.into(),
            x_label: "coverage (fraction of predictions kept, most certain first)".into(),
            y_label: "risk (fraction of kept predictions that are wrong)".into(),
            x_range: (0.0, 1.0),
            y_range: None,
            size: (900, 600),
        }
    }
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Draws `series` as lines with a legend into the PNG file `path`.
pub fn line_plot(path: &Path, spec: &PlotSpec, series: &[Series]) -> Result<()> {
    let fail = |message: String| UncertaintyError::Plot {
        path: path.to_path_buf(),
        message,
    };
    let (w, h) = spec.size;
    if w < 200 || h < 150 {
        return Err(fail(format!(
            "image size {w}x{h} is too small (min 200x150)"
        )));
    }
    if let Some(bad) = series
        .iter()
        .flat_map(|s| s.points.iter())
        .find(|(x, y)| !x.is_finite() || !y.is_finite())
    {
        return Err(fail(format!("non-finite point {bad:?}")));
    }
    let (x0, x1) = spec.x_range;
    if !(x0.is_finite() && x1.is_finite() && x0 < x1) {
        return Err(fail(format!("invalid x range {x0}..{x1}")));
    }
    let (y0, y1) = spec.y_range.unwrap_or_else(|| {
        let max = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        (0.0, if max > 0.0 { max * 1.05 } else { 1.0 })
    });
    if !(y0.is_finite() && y1.is_finite() && y0 < y1) {
        return Err(fail(format!("invalid y range {y0}..{y1}")));
    }
    ensure_font().map_err(fail)?;

    let mut buffer = vec![255u8; w as usize * h as usize * 3];
    draw(&mut buffer, spec, series, (x0..x1, y0..y1)).map_err(fail)?;

    let file = File::create(path).map_err(|e| fail(format!("cannot create: {e}")))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| fail(format!("PNG: {e}")))?;
    writer
        .write_image_data(&buffer)
        .map_err(|e| fail(format!("PNG: {e}")))?;
    writer.finish().map_err(|e| fail(format!("PNG: {e}")))
}

fn draw(
    buffer: &mut [u8],
    spec: &PlotSpec,
    series: &[Series],
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
) -> std::result::Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("drawing failed: {e}");
    let root = BitMapBackend::with_buffer(buffer, spec.size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&spec.title, (FAMILY, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(x, y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(&spec.x_label)
        .y_desc(&spec.y_label)
        .label_style((FAMILY, 14))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Risk–coverage curves of several estimators in one PNG: `curves` pairs each estimator name
/// with its [`crate::metrics::risk_coverage`].
pub fn risk_coverage_png(
    path: &Path,
    title: &str,
    curves: &[(String, Vec<RiskCoverage>)],
) -> Result<()> {
    let series: Vec<Series> = curves
        .iter()
        .map(|(name, curve)| Series::risk_coverage(name.clone(), curve))
        .collect();
    line_plot(path, &PlotSpec::risk_coverage(title), &series)
}
