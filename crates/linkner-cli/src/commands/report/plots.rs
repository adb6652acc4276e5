//! The dev F1-vs-threshold plot of a set's tuning record.

use std::collections::BTreeMap;
use std::path::Path;

use linkner::RoutingPolicy;
use linkner::uncertainty::plot::{PlotSpec, Series, line_plot};
use serde::Deserialize;

use super::{ReportArgs, SetSpec};
use crate::commands::CliError;

/// The part of a `linkner tune --json` file the plots read.
#[derive(Debug, Deserialize)]
struct TuneFile {
    local_f1: f64,
    trials: Vec<TuneTrial>,
    best: TuneTrial,
}

#[derive(Debug, Deserialize)]
struct TuneTrial {
    prompt: String,
    estimator: String,
    calibrate: bool,
    policy: RoutingPolicy,
    merge: linkner::MergePolicy,
    f1: f64,
}

/// Dev F1 against the threshold, per estimator, at the tuned prompt, calibration and merge
/// (and with `replace`), from a tune JSON file.
pub(super) fn plot_tuning(
    args: &ReportArgs,
    set: &SetSpec,
    path: &Path,
) -> Result<Option<String>, CliError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tune: TuneFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut curves: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for t in &tune.trials {
        let RoutingPolicy::Threshold { threshold } = t.policy else {
            continue;
        };
        if t.prompt != tune.best.prompt || t.calibrate != tune.best.calibrate {
            continue;
        }
        let name = if t.merge == tune.best.merge {
            format!("{} · {}", t.estimator, t.merge)
        } else if t.merge == linkner::MergePolicy::Replace {
            format!("{} · replace", t.estimator)
        } else {
            continue;
        };
        curves
            .entry(name)
            .or_default()
            .push((f64::from(threshold), 100.0 * t.f1));
    }
    if curves.is_empty() {
        return Ok(None);
    }
    let mut series: Vec<Series> = curves
        .into_iter()
        .map(|(name, mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series::new(name, pts)
        })
        .collect();
    series.push(Series::new(
        "local tagger only",
        vec![(0.0, 100.0 * tune.local_f1), (1.0, 100.0 * tune.local_f1)],
    ));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), y| {
        (l.min(y), h.max(y))
    });
    let plots = args.plots_dir();
    std::fs::create_dir_all(&plots)?;
    let file = format!("results-{}-dev-f1-vs-threshold.png", set.name);
    let out = plots.join(&file);
    let spec = PlotSpec {
        title: format!(
            "{} dev: F1 vs routing threshold (prompt {}, calibration {})",
            super::dev_title(set.name),
            tune.best.prompt,
            if tune.best.calibrate { "on" } else { "off" }
        ),
        x_label: "threshold (entities with uncertainty above it go to the LLM)".into(),
        y_label: "dev entity F1 (%)".into(),
        x_range: (0.0, 1.0),
        y_range: Some(((lo - 1.0).max(0.0), (hi + 1.0).min(100.0))),
        size: (900, 600),
    };
    line_plot(&out, &spec, &series)?;
    let base = args.out.parent().unwrap_or(Path::new(""));
    Ok(Some(
        out.strip_prefix(base)
            .unwrap_or(&out)
            .to_string_lossy()
            .into_owned(),
    ))
}
