//! Which dev setting `tune` writes: per-type merges only when they out-do one merge on held-out
//! halves, then the guard (interval and selection check).

use linkner::RoutingPolicy;
use linkner::merge::MergePolicy;
use linkner::tune::{CrossFit, DeltaCi, Grid, Guard, GuardVerdict, SearchedPass, cross_fit};
use serde::Serialize;

use super::search::{Pass, Searched};
use super::{CliError, Trial, TuneArgs};

/// Per-type merges against one merge, both searches cross-fitted on the same halves.
#[derive(Debug, Clone, Serialize)]
pub struct PerTypeMergeCheck {
    /// Cross-fitted gain of the search with per-type merges.
    pub with: DeltaCi,
    /// Cross-fitted gain of the search without them (`--no-per-type-merge`).
    pub without: DeltaCi,
    /// True when per-type merges gained more and were kept; else the best single-merge
    /// setting was written.
    pub kept: bool,
}

/// The passes of the search, named, for [`cross_fit`].
fn passes(found: &Searched) -> (Vec<String>, Vec<&[linkner::Annotation]>) {
    let names = found
        .annotations
        .keys()
        .map(|(p, e, c)| format!("{p} · {e}{}", if *c { " · calibrated" } else { "" }))
        .collect();
    let anns = found.annotations.values().map(Vec::as_slice).collect();
    (names, anns)
}

/// The cross-fitted gain of the whole search over `grid`.
fn crossed(
    pass: &Pass<'_>,
    found: &Searched,
    groups: &[usize],
    grid: &Grid,
    guard: &Guard,
) -> Result<CrossFit, CliError> {
    let (names, anns) = passes(found);
    let searched: Vec<SearchedPass<'_>> = names
        .iter()
        .zip(anns)
        .map(|(name, annotations)| SearchedPass { name, annotations })
        .collect();
    Ok(cross_fit(
        &pass.gold_set.sentences,
        groups,
        &searched,
        &pass.schema,
        pass.args.floor,
        grid,
        guard,
    )?)
}

/// The setting to write, the guard's verdict on it and the per-type-merge comparison: the best
/// dev setting (the best single-merge one when per-type merges do not gain more on held-out
/// halves) when the guard lets it route (or `--no-guard`), else the best setting that routes
/// nothing.
pub(super) fn guarded_best(
    args: &TuneArgs,
    pass: &Pass<'_>,
    found: &Searched,
) -> Result<(Trial, Option<GuardVerdict>, Option<PerTypeMergeCheck>), CliError> {
    let mut best = found
        .trials
        .first()
        .cloned()
        .ok_or("nothing was searched")?;
    if best.scored.policy == RoutingPolicy::Never {
        return Ok((best, None, None));
    }
    let guard = Guard {
        level: args.guard_level,
        resamples: 1000,
        seed: args.seed,
    };
    let groups = pass.gold_set.groups();
    let mut check = if groups.len() > 1 {
        Some(crossed(pass, found, &groups, &pass.grid, &guard)?)
    } else {
        None
    };
    let mut per_type = None;
    if let (MergePolicy::PerType { .. }, Some(with)) = (&best.scored.merge, &check) {
        let mut single_grid = pass.grid.clone();
        single_grid.per_type_merge = false;
        let without = crossed(pass, found, &groups, &single_grid, &guard)?;
        let kept = with.gain.delta > without.gain.delta + 1e-12;
        per_type = Some(PerTypeMergeCheck {
            with: with.gain,
            without: without.gain,
            kept,
        });
        if !kept {
            best = found
                .trials
                .iter()
                .find(|t| !matches!(t.scored.merge, MergePolicy::PerType { .. }))
                .cloned()
                .ok_or("internal: no single-merge setting was searched")?;
            check = Some(without);
            if best.scored.policy == RoutingPolicy::Never {
                return Ok((best, None, per_type));
            }
        }
    }
    let annotations = found
        .annotations_of(&best)
        .ok_or("internal: no annotations for the best setting")?;
    let mut verdict = guard.judge(
        &pass.gold_set.sentences,
        annotations,
        &pass.schema,
        &groups,
        &best.scored,
    )?;
    if verdict.routes
        && let Some(c) = check
    {
        verdict = verdict.with_cross_fit(c);
    }
    if verdict.routes || args.no_guard {
        return Ok((best, Some(verdict), per_type));
    }
    let never = found
        .trials
        .iter()
        .find(|t| t.scored.policy == RoutingPolicy::Never && t.prompt == best.prompt)
        .cloned()
        .ok_or("internal: routing nothing was not searched")?;
    Ok((never, Some(verdict), per_type))
}
