//! The run-to-run spread of fresh (uncached) runs, read from the folders `scripts/fresh-runs.sh`
//! writes (`--fresh-runs DIR`): each holds `run1.json`, `run2.json`, … — reports of one set, the
//! same sample asked of the LLM again each time.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::CliError;

/// The fresh runs of one folder: one set, one sample, one server setting.
#[derive(Debug, Clone, Serialize)]
pub struct FreshSpread {
    /// The folder the runs were read from.
    pub folder: PathBuf,
    /// The set's display name.
    pub title: String,
    /// Sentences of each run, and of the set's file.
    pub sentences: (usize, usize),
    /// Estimator · policy · merge of the runs' config.
    pub setting: String,
    /// The server's parallel slots, as the server reported them (absent when it did not).
    pub slots: Option<u64>,
    /// The commit of the binary that ran them.
    pub commit: Option<String>,
    /// Local F1 of each run (the tagger is deterministic: normally all equal).
    pub local_f1: Vec<f64>,
    /// Linked F1 of each run, in run order.
    pub linked_f1: Vec<f64>,
    /// Each run's Δ interval: (low, high, units, unit name).
    pub intervals: Vec<(f64, f64, u64, String)>,
}

impl FreshSpread {
    /// Max − min linked F1 over the runs.
    pub fn range(&self) -> f64 {
        let max = self.linked_f1.iter().copied().fold(f64::MIN, f64::max);
        let min = self.linked_f1.iter().copied().fold(f64::MAX, f64::min);
        max - min
    }
}

/// Reads every `--fresh-runs` folder; an error names the folder or file that is not one.
pub(super) fn read_all(dirs: &[PathBuf]) -> Result<Vec<FreshSpread>, CliError> {
    dirs.iter().map(|d| read_folder(d)).collect()
}

/// The `run<N>.json` files of `dir`, in run order.
fn run_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("--fresh-runs {}: {e}", dir.display()))?;
    let mut runs: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let n = name
                .strip_prefix("run")?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            Some((n, p))
        })
        .collect();
    runs.sort();
    if runs.len() < 2 {
        return Err(format!(
            "--fresh-runs {}: expected at least two run<N>.json reports (scripts/fresh-runs.sh \
             writes them), found {}",
            dir.display(),
            runs.len()
        )
        .into());
    }
    Ok(runs.into_iter().map(|(_, p)| p).collect())
}

fn field<'a>(v: &'a Value, path: &[&str], file: &Path) -> Result<&'a Value, CliError> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key).ok_or_else(|| {
            format!(
                "{}: not a `linkner dev report --json-out` report: no field `{}`",
                file.display(),
                path.join(".")
            )
        })?;
    }
    Ok(cur)
}

fn number(v: &Value, path: &[&str], file: &Path) -> Result<f64, CliError> {
    field(v, path, file)?.as_f64().ok_or_else(|| {
        format!(
            "{}: field `{}` is not a number",
            file.display(),
            path.join(".")
        )
        .into()
    })
}

/// One folder of fresh runs: all must be of one set, sample and setting.
fn read_folder(dir: &Path) -> Result<FreshSpread, CliError> {
    let mut spread: Option<FreshSpread> = None;
    for file in run_files(dir)? {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let sets = field(&v, &["sets"], &file)?
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let [set] = sets else {
            return Err(format!(
                "{}: a fresh run reports one set, this one {}",
                file.display(),
                sets.len()
            )
            .into());
        };
        let title = field(set, &["title"], &file)?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let setting = field(set, &["run", "setting"], &file)?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let sentences = (
            number(set, &["sentences"], &file)? as usize,
            number(set, &["sentences_in_file"], &file)? as usize,
        );
        let s = spread.get_or_insert_with(|| FreshSpread {
            folder: dir.to_path_buf(),
            title: title.clone(),
            sentences,
            setting: setting.clone(),
            slots: v
                .pointer("/provenance/llm/server/slots")
                .and_then(Value::as_u64),
            commit: v
                .pointer("/provenance/commit")
                .and_then(Value::as_str)
                .map(str::to_string),
            local_f1: Vec::new(),
            linked_f1: Vec::new(),
            intervals: Vec::new(),
        });
        if s.title != title || s.sentences != sentences || s.setting != setting {
            return Err(format!(
                "{}: runs of one folder must be of one set, sample and setting; this one is {title}, \
                 {} sentences, `{setting}`, the first {}, {} sentences, `{}`",
                file.display(),
                sentences.0,
                s.title,
                s.sentences.0,
                s.setting
            )
            .into());
        }
        s.local_f1
            .push(number(set, &["run", "scores", "local", "f1"], &file)?);
        s.linked_f1
            .push(number(set, &["run", "scores", "linked", "f1"], &file)?);
        s.intervals.push((
            number(set, &["run", "delta", "low"], &file)?,
            number(set, &["run", "delta", "high"], &file)?,
            v.pointer("/sets/0/run/delta/units")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            v.pointer("/sets/0/run/delta/unit")
                .and_then(Value::as_str)
                .unwrap_or("sentences")
                .to_string(),
        ));
    }
    spread.ok_or_else(|| format!("--fresh-runs {}: no runs", dir.display()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(f1: f64, setting: &str) -> String {
        serde_json::json!({
            "sets": [{
                "title": "CoNLL-03 OOV", "sentences": 305, "sentences_in_file": 3453,
                "run": {
                    "setting": setting,
                    "scores": {"local": {"f1": 0.6599}, "linked": {"f1": f1}},
                    "delta": {"low": -0.002, "high": 0.025, "units": 22, "unit": "documents"}
                }
            }],
            "provenance": {"commit": "abc", "llm": {"server": {"slots": 4}}}
        })
        .to_string()
    }

    #[test]
    fn reads_the_runs_of_a_folder_and_their_range() {
        let dir = tempfile::tempdir().unwrap();
        for (i, f1) in [0.6701, 0.6680, 0.6701].iter().enumerate() {
            std::fs::write(
                dir.path().join(format!("run{}.json", i + 1)),
                report(*f1, "s"),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("run1.md"), "not json").unwrap();
        let s = read_folder(dir.path()).unwrap();
        assert_eq!(s.linked_f1, vec![0.6701, 0.6680, 0.6701]);
        assert_eq!(s.slots, Some(4));
        assert_eq!(s.sentences, (305, 3453));
        assert!((s.range() - 0.0021).abs() < 1e-12, "{}", s.range());
        assert_eq!(s.intervals[0].2, 22);
    }

    #[test]
    fn refuses_runs_of_different_settings_and_a_single_run() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("run1.json"), report(0.67, "a")).unwrap();
        let err = read_folder(dir.path()).unwrap_err().to_string();
        assert!(err.contains("at least two"), "{err}");
        std::fs::write(dir.path().join("run2.json"), report(0.67, "b")).unwrap();
        let err = read_folder(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("one set, sample and setting") && err.contains("run2.json"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_no_report_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("run1.json"), "{\"sets\": [{}]}").unwrap();
        std::fs::write(dir.path().join("run2.json"), "{}").unwrap();
        let err = read_folder(dir.path()).unwrap_err().to_string();
        assert!(err.contains("run1.json") && err.contains("title"), "{err}");
    }
}
