//! One config's run on one set, and how the LLM did on the entities it was asked about.

use std::path::Path;
use std::time::Instant;

use linkner::core::{LabelSchema, Sentence, WordSpan};
use linkner::scoring::local_spans;
use linkner::tune::paired_bootstrap_grouped;
use linkner::{Annotation, LinkConfig, Provenance};

use super::{ReportArgs, RoutedAccuracy, RunResult};
use crate::commands::CliError;
use crate::commands::link::{GoldSet, annotate_all, runtime};
use crate::commands::llm_failures::FailureTally;
use crate::commands::pipeline_args::PipelineArgs;

/// The gold class of each routed entity's span (0 when the span is not a gold entity).
fn gold_class(schema: &LabelSchema, gold: &[WordSpan], span: &WordSpan) -> usize {
    gold.iter()
        .find(|g| g.start == span.start && g.end == span.end)
        .and_then(|g| schema.class_of(&g.label))
        .unwrap_or(0)
}

fn routed_accuracy(
    schema: &LabelSchema,
    gold: &[Sentence],
    annotations: &[Annotation],
) -> RoutedAccuracy {
    let mut acc = RoutedAccuracy::default();
    for (g, a) in gold.iter().zip(annotations) {
        for (e, rejected) in a
            .entities
            .iter()
            .map(|e| (e, false))
            .chain(a.rejected.iter().map(|e| (e, true)))
        {
            let Some(v) = &e.llm else { continue };
            if !e.provenance.is_routed()
                || matches!(
                    e.provenance,
                    Provenance::LlmFailed { .. } | Provenance::Budget { .. }
                )
            {
                continue;
            }
            let want = gold_class(schema, &g.spans, &e.span);
            let merged = if rejected {
                0
            } else {
                schema.class_of(&e.entity.label).unwrap_or(0)
            };
            acc.answered += 1;
            acc.llm_correct += usize::from(v.class == want);
            acc.merged_correct += usize::from(merged == want);
            acc.local_correct += usize::from(schema.class_of(&e.local_label) == Some(want));
        }
    }
    acc
}

impl PipelineArgs {
    /// A config file with this command line's flags applied over it.
    pub(super) fn config_from(&self, path: &Path) -> Result<LinkConfig, CliError> {
        let mut args = self.clone();
        args.config = Some(path.to_path_buf());
        args.link_config()
    }
}

/// Runs one config on `gold` and measures it.
pub(super) fn run_config(
    args: &ReportArgs,
    path: &Path,
    gold_set: &GoldSet,
    label: &str,
    llm_name: &mut String,
    tally: &mut FailureTally,
) -> Result<RunResult, CliError> {
    let config = args.pipeline.config_from(path)?;
    let pipeline = args.pipeline.build(&config, None)?;
    if let Some(n) = pipeline.llm_name() {
        *llm_name = n;
    }
    let schema = pipeline.schema().clone();
    let gold = &gold_set.sentences;
    for s in gold {
        for span in &s.spans {
            if schema.class_of(&span.label).is_none() {
                return Err(format!(
                    "gold label `{}` is not a type of the tagger's schema `{}` (config {})",
                    span.label,
                    schema.name,
                    path.display()
                )
                .into());
            }
        }
    }
    let rt = runtime()?;
    let started = Instant::now();
    let before = pipeline.stats();
    let annotations = rt.block_on(annotate_all(
        &pipeline,
        &gold_set.documents,
        args.chunk,
        label,
    ))?;
    let stats = pipeline.stats().since(&before);
    let wall = started.elapsed();
    tally.add_run(&stats);
    let scores = linkner::score_annotations(gold, &annotations)?;
    let local: Vec<Vec<WordSpan>> = annotations.iter().map(local_spans).collect();
    let linked: Vec<Vec<WordSpan>> = annotations.iter().map(Annotation::spans).collect();
    let delta = paired_bootstrap_grouped(
        gold,
        &local,
        &linked,
        &gold_set.groups(),
        args.resamples,
        0.95,
        args.seed,
    )?;
    let accuracy = routed_accuracy(&schema, gold, &annotations);
    Ok(RunResult {
        config: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        setting: format!(
            "{} · {} · {}",
            pipeline.estimator_name(),
            pipeline.policy(),
            pipeline.merge_policy()
        ),
        note: config.note.clone(),
        scores,
        delta,
        accuracy,
        stats,
        wall_seconds: wall.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkner::core::Entity;
    use linkner::{LinkedEntity, LlmVerdict, MergePolicy};

    #[test]
    fn routed_accuracy_counts_llm_and_merged_decisions_against_gold() {
        let schema = LabelSchema::conll03();
        let mut gold = Sentence::from_words(&["Paris", "said", "Acme"]);
        gold.spans = vec![WordSpan::new(0, 1, "LOC"), WordSpan::new(2, 3, "ORG")];
        let plain = Sentence::from_words(&["Paris", "said", "Acme"]);
        let ent =
            |start: usize, final_label: &str, local: &str, llm: Option<usize>, p: Provenance| {
                let span = WordSpan::new(start, start + 1, final_label);
                LinkedEntity {
                    entity: Entity::from_word_span(&plain, &span).unwrap(),
                    span,
                    local_label: local.into(),
                    local_prob: 0.5,
                    uncertainty: 0.9,
                    provenance: p,
                    local_probs: vec![],
                    llm: llm.map(|c| LlmVerdict {
                        class: c,
                        label: schema.class(c).unwrap().name.clone(),
                        confidence: None,
                        distribution: None,
                        label_mass: None,
                        merged: None,
                        merge: MergePolicy::Replace,
                        cached: false,
                    }),
                }
            };
        let a = Annotation {
            sentence: plain.clone(),
            // Paris: local PER, LLM LOC (right), merged LOC. Acme: local ORG, LLM PER (wrong),
            // merged ORG (right, fuse kept it).
            entities: vec![
                ent(
                    0,
                    "LOC",
                    "PER",
                    Some(2),
                    Provenance::LlmRelabelled { from: "PER".into() },
                ),
                ent(2, "ORG", "ORG", Some(1), Provenance::LlmConfirmed),
            ],
            // "said": local MISC, LLM says O (right), rejected.
            rejected: vec![ent(1, "MISC", "MISC", Some(0), Provenance::LlmRejected)],
            timings: None,
        };
        let acc = routed_accuracy(&schema, &[gold], &[a]);
        assert_eq!(acc.answered, 3);
        assert_eq!(acc.llm_correct, 2);
        assert_eq!(acc.merged_correct, 3);
        assert_eq!(acc.local_correct, 1);
    }
}
