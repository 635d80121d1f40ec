//! The forwards a replay is sure to need, planned and computed up front in full batches.

use chrono::Duration;

use super::{ReplayInput, ReplayProgress, ReplaySpec};
use crate::config::Settings;
use crate::forecaster_config::ForecasterConfig;
use crate::policy::search::ForwardCache;
use crate::series::Series;

/// Contexts sent to the model at once by [`prefetch`].
pub(super) const PREFETCH_BATCH: usize = 32;

/// Computes up front, in full batches, the forwards the replay will ask for: per horizon
/// (longest first, whose longer forecasts serve the shorter horizons) and per context length
/// of its grid and initial config, the lattice origins of the first run's search and every
/// business day from `from` to `to` (the daily forecasts, the fixed-config scores, probation
/// and the later searches' origins); the business days between the first run's trigger
/// hindcast and `from` only at the initial config's context, the one that hindcast scores.
/// A config deployed within the hindcast window of `from` asks for a few more, computed when
/// asked. A forecast at an origin reads only the values up to it, so computing it early
/// changes nothing but the batch sizes; a week's handful of new origins would otherwise each
/// cost a small, slow batch. Returns the contexts requested here (not requests a replay
/// without the cache would make).
pub(super) fn prefetch(
    input: &ReplayInput<'_>,
    settings: &Settings,
    spec: &ReplaySpec,
    initial: &[ForecasterConfig],
    cache: &mut ForwardCache,
    progress: &mut dyn FnMut(ReplayProgress),
) -> anyhow::Result<usize> {
    let configs: Vec<&ForecasterConfig> = initial.iter().collect();
    let plan = prefetch_plan(input.series, settings, spec, &configs);
    let total: usize = plan.iter().map(|p| p.origins.len()).sum();
    let mut done = 0;
    progress(ReplayProgress::Forwards { done, total });
    for p in &plan {
        for chunk in p.origins.chunks(PREFETCH_BATCH) {
            cache.forward(
                input.model,
                input.series,
                chunk,
                p.context_length,
                p.steps,
                &mut |_| {},
            )?;
            done += chunk.len();
            progress(ReplayProgress::Forwards { done, total });
        }
    }
    Ok(total)
}

/// One context length's forwards computed up front: `steps` ahead at each origin.
#[derive(Debug)]
pub(super) struct Prefetch {
    pub(super) context_length: usize,
    pub(super) steps: usize,
    pub(super) origins: Vec<usize>,
}

/// What [`prefetch`] computes, per config in the order given.
pub(super) fn prefetch_plan(
    series: &Series,
    settings: &Settings,
    spec: &ReplaySpec,
    configs: &[&ForecasterConfig],
) -> Vec<Prefetch> {
    let first = series.truncated_at(spec.from);
    let since = spec.from - Duration::days(i64::from(settings.triggers.performance_baseline_days));
    let start = series.dates.partition_point(|x| *x < spec.from);
    let end = series.dates.partition_point(|x| *x <= spec.to);
    let k = settings.search.origin_spacing;
    let mut plan = Vec::new();
    for cfg in configs {
        let h = cfg.horizon.steps();
        let hindcast_start = crate::policy::hindcast::origins_with_targets_after(&first, h, since)
            .first()
            .copied()
            .unwrap_or(first.len());
        let lattice_start = crate::policy::backtest::split_origins(&first, h, &settings.search)
            .ok()
            .and_then(|split| split.all().first().copied())
            .unwrap_or(hindcast_start);
        let mut lengths: Vec<usize> = settings.search.context_lengths_for(cfg.horizon).to_vec();
        lengths.push(cfg.context_length);
        lengths.sort_unstable();
        lengths.dedup();
        for context_length in lengths {
            let daily_start = if context_length == cfg.context_length {
                hindcast_start
            } else {
                start
            };
            let origins = (lattice_start.min(daily_start)..end.min(series.len().saturating_sub(h)))
                .filter(|&i| {
                    (i >= daily_start || (i >= lattice_start && i % k == 0)) && !series.values[i].is_nan()
                })
                .collect();
            plan.push(Prefetch {
                context_length,
                steps: h,
                origins,
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::super::clock;
    use super::*;
    use crate::domain::Horizon;

    #[test]
    fn prefetch_covers_the_first_search_and_hindcast_and_every_later_day_but_no_more() {
        let series = crate::data::demo::synthetic_usdclp(5, 1500, crate::data::demo::DEFAULT_START);
        let settings = Settings::default();
        let spec = ReplaySpec {
            from: series.dates[1200],
            to: series.dates[1300],
            every_days: 7,
        };
        let cfg = ForecasterConfig::initial(Horizon(7), "m", clock(spec.from));
        let plan = prefetch_plan(&series, &settings, &spec, &[&cfg]);
        let lengths: Vec<usize> = plan.iter().map(|p| p.context_length).collect();
        assert_eq!(lengths, [90, 180, 270]);
        assert!(plan.iter().all(|p| p.steps == 7));
        let first = series.truncated_at(spec.from);
        let searched = crate::policy::backtest::split_origins(&first, 7, &settings.search)
            .unwrap()
            .all();
        let since = spec.from - Duration::days(i64::from(settings.triggers.performance_baseline_days));
        let hindcast = crate::policy::hindcast::origins_with_targets_after(&first, 7, since);
        let start = series.dates.partition_point(|x| *x < spec.from);
        let end = series.dates.partition_point(|x| *x <= spec.to);
        assert!(hindcast[0] < start && searched[0] < hindcast[0]);
        for p in &plan {
            let has = |i: &usize| p.origins.binary_search(i).is_ok();
            // The first run's search sees every length; every day from `from` on is forecast.
            assert!(searched.iter().all(has), "{}", p.context_length);
            assert!((start..end).all(|i| has(&i)), "{}", p.context_length);
            // Before `from`, beyond the lattice only the days the initial config's hindcasts
            // score: from the first run's first one on (later runs see later targets).
            let extra: Vec<usize> = p
                .origins
                .iter()
                .copied()
                .filter(|&i| i < start && i % settings.search.origin_spacing != 0)
                .collect();
            if p.context_length == cfg.context_length {
                assert!(hindcast.iter().all(has));
                let days: Vec<usize> = (hindcast[0]..start)
                    .filter(|i| i % settings.search.origin_spacing != 0)
                    .collect();
                assert_eq!(extra, days);
            } else {
                assert_eq!(extra, Vec::<usize>::new(), "{}", p.context_length);
            }
            assert!(p.origins.iter().all(|&i| i >= searched[0] && i < end));
        }
    }
}
