//! The cost–accuracy frontier of `linkner dev report`: per set, dev F1 against LLM calls per 1,000
//! dev sentences, one curve per estimator, replayed from the set's `linkner tune --json-out` record
//! ([`linkner::frontier`]) — no tagger, no LLM, no data needed. With `--frontier-only` the
//! report is only that:
//!
//! ```text
//! linkner dev report --frontier-only --tune-json configs/tuning [--sets twitterner,conll03]
//!                [--plots docs/plots] [--out docs/frontier.md] [--json-out frontier.json]
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use linkner::frontier::{Frontier, FrontierPoint, TuningRecord, frontier};
use linkner::uncertainty::plot::{PlotSpec, Series, line_plot};
use serde::Serialize;

use super::CliError;
use super::report::{ReportArgs, dev_title};

/// The frontier of one set and its plot.
#[derive(Debug, Clone, Serialize)]
pub struct SetFrontier {
    /// The set's short name (the record's file stem).
    pub name: String,
    /// Display name of its dev split.
    pub title: String,
    /// The tuning record read.
    pub record: PathBuf,
    /// The frontiers, one per estimator.
    pub frontier: Frontier,
    /// The PNG plot, relative to the Markdown report.
    pub plot: String,
}

/// Reads the tuning record `record` of set `name` (`None` when the file does not exist),
/// computes its frontier and plots it into `plots` as `frontier-<name>.png`; `markdown` is the
/// report the plot is linked from.
pub fn for_set(
    name: &str,
    record: &Path,
    plots: &Path,
    markdown: &Path,
) -> Result<Option<SetFrontier>, CliError> {
    if !record.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(record).map_err(|e| format!("{}: {e}", record.display()))?;
    let parsed: TuningRecord =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", record.display()))?;
    let found = frontier(&parsed).map_err(|e| format!("{}: {e}", record.display()))?;
    let title = dev_title(name);
    std::fs::create_dir_all(plots).map_err(|e| format!("{}: {e}", plots.display()))?;
    let out = plots.join(format!("frontier-{name}.png"));
    plot(&found, &title, &out)?;
    let base = markdown.parent().unwrap_or(Path::new(""));
    Ok(Some(SetFrontier {
        name: name.to_string(),
        title,
        record: record.to_path_buf(),
        frontier: found,
        plot: out
            .strip_prefix(base)
            .unwrap_or(&out)
            .to_string_lossy()
            .into_owned(),
    }))
}

/// Draws the frontiers of one set, with the local tagger as a flat line.
fn plot(f: &Frontier, title: &str, out: &Path) -> Result<(), CliError> {
    let mut series: Vec<Series> = f
        .estimators
        .iter()
        .map(|e| {
            Series::new(
                e.estimator.clone(),
                e.points
                    .iter()
                    .map(|p| (p.calls_per_1k, 100.0 * p.f1))
                    .collect(),
            )
        })
        .collect();
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0f64, f64::max);
    let x_max = if x_max > 0.0 { x_max * 1.05 } else { 1.0 };
    series.push(Series::new(
        "local tagger only",
        vec![(0.0, 100.0 * f.local_f1), (x_max, 100.0 * f.local_f1)],
    ));
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), y| {
            (l.min(y), h.max(y))
        });
    let spec = PlotSpec {
        title: format!(
            "{title} dev: F1 vs LLM calls (frontier per estimator, {} sentences)",
            f.sentences
        ),
        x_label: "LLM calls per 1,000 dev sentences".into(),
        y_label: "dev F1 (%)".into(),
        x_range: (0.0, x_max),
        y_range: Some(((lo - 1.0).max(0.0), (hi + 1.0).min(100.0))),
        size: (900, 600),
    };
    line_plot(out, &spec, &series)?;
    Ok(())
}

/// One table row.
fn row(estimator: &str, f: &Frontier, p: &FrontierPoint) -> String {
    let (prompt, policy, merge) = match &p.prompt {
        None => (
            "—".to_string(),
            "route nothing".to_string(),
            "—".to_string(),
        ),
        Some(prompt) => (
            format!(
                "{prompt}, calibration {}",
                if p.calibrate { "on" } else { "off" }
            ),
            format!("`{}`", p.policy),
            format!("`{}`", p.merge),
        ),
    };
    format!(
        "| {estimator} | {:.1} | {:.2} | {:+.2} | {} of {} ({:.1} %) | not recorded | {prompt} | {policy} | {merge} |",
        p.calls_per_1k,
        100.0 * p.f1,
        100.0 * (p.f1 - f.local_f1),
        p.calls,
        f.entities,
        100.0 * p.routed_fraction,
    )
}

/// The frontier section of a report: what the figures are, then per set its plot and table.
pub fn section(sets: &[&SetFrontier]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Cost–accuracy frontier (dev, from the tuning runs)\n\n\
         Dev F1 against LLM calls per 1,000 dev sentences, one curve per estimator: of every \
         setting `linkner tune` replayed for that estimator (prompt variants and calibration \
         pooled), those that no other setting reaches or beats in F1 with fewer calls. All \
         figures are on the **dev** sentences tuning used, replayed from the tuning record: no \
         new LLM calls, and not a test result. One call per routed entity: calls = routed \
         fraction × the entities the local tagger found on those sentences (recovered from the \
         record's `llm_calls`). The 0-call point routes nothing (the local tagger alone). \
         Prompt tokens are **not recorded** in the tuning records, so the table cannot give \
         them.\n"
    );
    for s in sets {
        let f = &s.frontier;
        let _ = writeln!(
            md,
            "### {} (`{}`: {} dev sentences, {} local entities, local dev F1 {:.2})\n",
            s.title,
            s.record.display(),
            f.sentences,
            f.entities,
            100.0 * f.local_f1
        );
        let _ = writeln!(md, "![{}: dev F1 vs LLM calls]({})\n", s.title, s.plot);
        let _ = writeln!(
            md,
            "| estimator | LLM calls per 1,000 dev sentences | dev F1 | Δ vs local | routed entities | prompt tokens | prompt | policy | merge |\n\
             |---|---|---|---|---|---|---|---|---|"
        );
        for e in &f.estimators {
            for p in &e.points {
                let _ = writeln!(md, "{}", row(&e.estimator, f, p));
            }
        }
        let _ = writeln!(md);
    }
    md
}

/// `linkner report --frontier-only`: the frontier of every tuning record of `--tune-json`
/// (the repository keeps its own in `configs/tuning`), or of the `--sets` named, into `--out`
/// and the plots folder.
pub fn run_only(args: &ReportArgs) -> Result<(), CliError> {
    let dir = args
        .tune_json
        .clone()
        .ok_or("--frontier-only needs --tune-json DIR (the folder of tuning records)")?;
    let plots = args.plots_dir();
    let names: Vec<String> = match &args.sets {
        Some(s) => s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
        None => {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            names.sort();
            names
        }
    };
    if names.is_empty() {
        return Err(format!("{}: no tuning records (<set>.json)", dir.display()).into());
    }
    let mut sets = Vec::new();
    for name in &names {
        let record = dir.join(format!("{name}.json"));
        let found = for_set(name, &record, &plots, &args.out)?
            .ok_or_else(|| format!("{}: no such tuning record", record.display()))?;
        eprintln!("{}: frontier plotted to {}", name, plots.display());
        sets.push(found);
    }
    let mut md = String::new();
    let _ = writeln!(md, "# Cost–accuracy frontier of LinkNER linking\n");
    let _ = writeln!(
        md,
        "Generated by `linkner dev report --frontier-only` from the tuning records in `{}` — do not \
         edit by hand; rerun it. Command:\n\n```sh\n{}\n```\n",
        dir.display(),
        std::iter::once("linkner".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ")
    );
    md.push_str(&section(&sets.iter().collect::<Vec<_>>()));
    if let Some(parent) = args.out.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, md).map_err(|e| format!("{}: {e}", args.out.display()))?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&sets)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    eprintln!("frontier written to {}", args.out.display());
    Ok(())
}
