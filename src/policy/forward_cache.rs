//! The raw forecasts every caller shares: one batched forward per context length, reused
//! across horizons, weeks and prefixes of one series.
//!
//! [`ForwardCache`] keeps each raw forecast under (effective context length, origin). The
//! effective length is `min(context_length, model max context, origin + 1)`: two keys are
//! equal exactly when the model sees the same slice of the series. An entry holding `P`
//! steps serves any request for `h <= P` steps through its first `h` steps. That is exact
//! for Chronos-Bolt: one pass emits 64 steps that are then cut to the requested length, and
//! past 64 the official expansion loop only appends later chunks computed from the earlier
//! ones, so a forecast's first `h` steps do not depend on how many steps were asked for.
//! (Any [`QuantileModel`] used with the cache must have this prefix property.)
//!
//! A request looks up every origin; the ones missing (or cached with fewer steps) go to the
//! model in one batch, at the requested length. So:
//! - within a horizon, `validate` runs one batch per context length over the selection and
//!   confirmation origins together; the search and the evaluation of candidate and current
//!   then cost no forward at all;
//! - between horizons, all origins lie on the same lattice (see [`crate::policy::backtest`]), so the
//!   origins two horizons share at a shared context length (90 and 180 for 7d/15d, 180 and
//!   365 for 15d/30d, 365 and 540 for 30d/90d) are forecast once. Searching horizons from the
//!   longest to the shortest lets the longer forecasts serve the shorter ones; the other
//!   order still works, it just reuses nothing across horizons;
//! - a week later the lattice origins recur, so a cache kept across weeks forecasts only the
//!   new ones.
//!
//! The cache belongs to one series and one model: it fingerprints the series values and
//! refuses another series; the caller keeps one cache per model. A batch's composition may
//! change a forecast at float rounding level (gemm blocking), far below what any metric
//! reports.
//!

use std::collections::HashMap;
use std::time::Instant;

use anyhow::ensure;

use crate::forecast::{QuantileForecast, QuantileModel};
use crate::policy::backtest::{self, RawForecasts};
use crate::policy::search::Progress;
use crate::series::Series;

/// Raw forecasts shared between requests; see the module docs.
#[derive(Debug, Default)]
pub struct ForwardCache {
    /// The longest series seen; every series given must be a prefix of it or extend it.
    reference: Option<Vec<f64>>,
    entries: HashMap<(usize, usize), QuantileForecast>,
    /// Model calls made for backtests (timing forwards excluded).
    pub batches_run: usize,
    /// Contexts sent to the model, and contexts served from the cache.
    pub series_run: usize,
    pub series_reused: usize,
}

impl ForwardCache {
    pub fn new() -> ForwardCache {
        ForwardCache::default()
    }

    /// A forecast at origin `o` reads only the values up to `o`, so one cache serves every
    /// series that agrees with the others on their common prefix: the same history cut at
    /// different dates (a replay), but never a different series.
    fn check_prefix(&mut self, values: &[f64]) -> anyhow::Result<()> {
        let reference = self.reference.get_or_insert_with(Vec::new);
        let common = reference.len().min(values.len());
        let same = reference[..common]
            .iter()
            .zip(&values[..common])
            .all(|(a, b)| a.to_bits() == b.to_bits());
        ensure!(
            same,
            "internal: a forward cache was reused for a different series (one cache per series and its prefixes)"
        );
        if values.len() > reference.len() {
            reference.extend_from_slice(&values[reference.len()..]);
        }
        Ok(())
    }

    /// The raw forecasts of `origins` at `context_length` for `h` steps: cached ones reused,
    /// the rest in one batched `predict`.
    pub fn forward(
        &mut self,
        model: &dyn QuantileModel,
        series: &Series,
        origins: &[usize],
        context_length: usize,
        h: usize,
        progress: &mut dyn FnMut(Progress),
    ) -> anyhow::Result<RawForecasts> {
        self.check_prefix(&series.values)?;
        let key = |o: usize| (context_length.min(model.max_context()).min(o + 1), o);
        let missing: Vec<usize> = origins
            .iter()
            .copied()
            .filter(|&o| self.entries.get(&key(o)).is_none_or(|f| f.steps() < h))
            .collect();
        progress(Progress::ForwardStarted {
            context_length,
            to_run: missing.len(),
            cached: origins.len() - missing.len(),
        });
        let start = Instant::now();
        if !missing.is_empty() {
            let raw = backtest::forward(model, &series.values, &missing, context_length, h)?;
            self.batches_run += 1;
            self.series_run += missing.len();
            for (o, f) in missing.iter().zip(raw.forecasts) {
                self.entries.insert(key(*o), f);
            }
        }
        self.series_reused += origins.len() - missing.len();
        progress(Progress::ForwardFinished {
            context_length,
            ran: missing.len(),
            seconds: start.elapsed().as_secs_f64(),
        });
        let forecasts = origins
            .iter()
            .map(|&o| {
                let f = &self.entries[&key(o)];
                QuantileForecast {
                    values: f.values.iter().map(|row| row[..h].to_vec()).collect(),
                }
            })
            .collect();
        Ok(RawForecasts {
            context_length,
            origins: origins.to_vec(),
            forecasts,
        })
    }
}
