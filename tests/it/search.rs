//! Grid search through the library: shared forward passes (counted), equality with a
//! brute-force evaluation of every config, forward reuse between horizons and for the
//! current config.
//!
//! The inner model is built in ONE place, [`inner_model`]; every test is generic over it.

use std::cell::RefCell;

use chrono::NaiveDate;
use model_optimizer::backtest::{self, Evaluation, Metrics};
use model_optimizer::config::{SearchSettings, ValidationSettings};
use model_optimizer::domain::Horizon;
use model_optimizer::forecast::{QuantileForecast, QuantileModel};
use model_optimizer::forecaster_config::ForecasterConfig;
use model_optimizer::search::{self, ForwardCache, Progress};
use model_optimizer::series::Series;
use model_optimizer::validate;

/// The model under test: the real Chronos-Bolt engine on the micro checkpoint.
fn inner_model() -> Box<dyn QuantileModel> {
    Box::new(
        model_optimizer::model::ChronosBolt::load_dir(&crate::util::micro_model()).expect("micro checkpoint"),
    )
}

/// Records every `predict` call as (number of contexts, prediction length).
struct Counting<'a> {
    inner: &'a dyn QuantileModel,
    calls: RefCell<Vec<(usize, usize)>>,
}

impl<'a> Counting<'a> {
    fn new(inner: &'a dyn QuantileModel) -> Self {
        Counting {
            inner,
            calls: RefCell::new(Vec::new()),
        }
    }

    /// Calls with more than one context: the backtest batches (timing calls have one).
    fn batches(&self) -> Vec<(usize, usize)> {
        self.calls
            .borrow()
            .iter()
            .copied()
            .filter(|(n, _)| *n > 1)
            .collect()
    }

    fn singles(&self) -> usize {
        self.calls.borrow().iter().filter(|(n, _)| *n == 1).count()
    }

    fn reset(&self) {
        self.calls.borrow_mut().clear();
    }
}

impl QuantileModel for Counting<'_> {
    fn max_context(&self) -> usize {
        self.inner.max_context()
    }

    fn predict(&self, contexts: &[&[f64]], h: usize) -> anyhow::Result<Vec<QuantileForecast>> {
        self.calls.borrow_mut().push((contexts.len(), h));
        self.inner.predict(contexts, h)
    }
}

/// A seeded synthetic USD/CLP-like walk (not the real series): 700 daily values around 900
/// with two gaps, one of them inside the validation windows.
fn synthetic_series() -> Series {
    let mut state: u64 = 0x5eed_1234_abcd_0001;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let start = NaiveDate::from_ymd_opt(2022, 1, 3).unwrap();
    let mut level = 900.0;
    let mut values = Vec::with_capacity(700);
    for i in 0..700 {
        // Sum of uniforms: roughly normal shocks, with a slow cycle for drift.
        let shock: f64 = (0..4).map(|_| uniform() - 0.5).sum::<f64>() * 6.0;
        level += shock + 0.8 * (f64::from(i) / 40.0).sin();
        values.push(level);
    }
    values[100] = f64::NAN;
    values[660] = f64::NAN;
    Series {
        dates: (0..700).map(|i| start + chrono::Days::new(i)).collect(),
        values,
    }
}

/// Every metric except the wall-clock inference time, which differs between runs.
fn without_time(m: &Metrics) -> Metrics {
    Metrics {
        inference_ms: 0.0,
        ..m.clone()
    }
}

fn assert_same_evaluation(a: &Evaluation, b: &Evaluation) {
    assert_eq!(a.params, b.params);
    assert_eq!(without_time(&a.metrics), without_time(&b.metrics), "{}", a.params);
    assert_eq!(a.points, b.points, "{}", a.params);
}

/// The search's selection rule applied by hand.
fn brute_selection(evals: &[Evaluation], h: Horizon, v: &ValidationSettings) -> (usize, bool) {
    let meets = |e: &Evaluation| {
        e.metrics.coverage_95 >= v.min_coverage_95 && e.metrics.bias.abs() < v.max_abs_bias_for(h)
    };
    let lowest = |only_meeting: bool| {
        let mut best: Option<usize> = None;
        for (i, e) in evals.iter().enumerate() {
            if only_meeting && !meets(e) {
                continue;
            }
            if best.is_none_or(|b| e.metrics.rmse < evals[b].metrics.rmse) {
                best = Some(i);
            }
        }
        best
    };
    match lowest(true) {
        Some(i) => (i, true),
        None => (lowest(false).unwrap(), false),
    }
}

#[test]
fn twenty_seven_configs_cost_three_forward_batches() {
    let inner = inner_model();
    let model = Counting::new(inner.as_ref());
    let series = synthetic_series();
    let settings = SearchSettings::default();
    let h = Horizon(7);
    let mut events = Vec::new();
    let mut cache = ForwardCache::new();
    let report = search::search(
        &model,
        &series,
        h,
        &settings,
        &ValidationSettings::default(),
        &mut cache,
        &mut |p| events.push(p),
    )
    .unwrap();
    assert_eq!(report.configs.len(), 27);
    assert_eq!(report.origins, 30);
    // Exactly 3 batched forwards, each over all 30 origins for 7 steps ...
    assert_eq!(model.batches(), vec![(30, 7); 3]);
    assert_eq!((report.forward_batches, report.naive_forward_batches), (3, 27));
    // ... plus the single-series timing forwards, timing_runs per context length.
    assert_eq!(model.singles(), 3 * settings.timing_runs);
    let started = events
        .iter()
        .filter(|e| matches!(e, Progress::ForwardStarted { .. }))
        .count();
    let evaluated: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Progress::ConfigEvaluated { done, total: 27, .. } => Some(*done),
            _ => None,
        })
        .collect();
    assert_eq!(started, 3);
    assert_eq!(evaluated, (1..=27).collect::<Vec<_>>());
    assert!(matches!(
        events[0],
        Progress::Started {
            forwards: 3,
            configs: 27,
            ..
        }
    ));

    // The same search again through the same cache runs no batch at all.
    model.reset();
    let again = search::search(
        &model,
        &series,
        h,
        &settings,
        &ValidationSettings::default(),
        &mut cache,
        &mut |_| {},
    )
    .unwrap();
    assert!(model.batches().is_empty());
    assert_eq!(again.forward_batches, 0);
    for (a, b) in again.configs.iter().zip(&report.configs) {
        assert_same_evaluation(&a.evaluation, &b.evaluation);
    }
}

#[test]
fn search_result_equals_brute_force_evaluation_of_each_config() {
    let model = inner_model();
    let series = synthetic_series();
    let settings = SearchSettings::default();
    for h in [Horizon(7), Horizon(15)] {
        let origins = backtest::origins(&series, h.steps(), settings.validation_window).unwrap();
        // Each config on its own: its own forward, its own post-processing.
        let brute: Vec<Evaluation> = search::grid(&settings, h)
            .unwrap()
            .iter()
            .map(|p| {
                let raw = backtest::forward(
                    model.as_ref(),
                    &series.values,
                    &origins,
                    p.context_length,
                    h.steps(),
                )
                .unwrap();
                backtest::evaluate(&series, &raw, h.steps(), p.num_samples, p.temperature, 0.0).unwrap()
            })
            .collect();
        // Default thresholds; a stricter coverage that the most accurate config misses, so
        // that the selection has to look past the lowest RMSE; and a bias limit nothing
        // meets, so that the lowest RMSE is taken and flagged.
        let lowest = brute_selection(&brute, h, &ValidationSettings::default()).0;
        let strict = ValidationSettings {
            min_coverage_95: brute[lowest].metrics.coverage_95 + 1e-6,
            ..ValidationSettings::default()
        };
        let impossible = ValidationSettings {
            max_abs_bias: 1e-6,
            ..ValidationSettings::default()
        };
        let overall = (0..brute.len())
            .min_by(|&a, &b| brute[a].metrics.rmse.total_cmp(&brute[b].metrics.rmse))
            .unwrap();
        assert_eq!(brute_selection(&brute, h, &impossible), (overall, false));
        for v in [ValidationSettings::default(), strict, impossible] {
            let report = search::search(
                model.as_ref(),
                &series,
                h,
                &settings,
                &v,
                &mut ForwardCache::new(),
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(report.configs.len(), brute.len());
            for (c, b) in report.configs.iter().zip(&brute) {
                assert_same_evaluation(&c.evaluation, b);
                assert!(c.evaluation.metrics.inference_ms > 0.0);
            }
            assert_eq!(
                (report.best, report.best_meets_criteria),
                brute_selection(&brute, h, &v),
                "{h}"
            );
        }
        // The configs are not all alike: temperature moves coverage, context moves RMSE.
        let cov: Vec<f64> = brute.iter().map(|e| e.metrics.coverage_95).collect();
        assert!(cov[2] >= cov[0], "coverage grows with temperature at context 90");
        assert!(brute
            .iter()
            .any(|e| (e.metrics.rmse - brute[0].metrics.rmse).abs() > 1e-9));
    }
}

#[test]
fn horizons_share_forwards_where_origins_coincide() {
    let inner = inner_model();
    let model = Counting::new(inner.as_ref());
    let series = synthetic_series();
    let settings = SearchSettings {
        context_lengths: [(Horizon(7), vec![90, 180]), (Horizon(15), vec![90, 180])]
            .into_iter()
            .collect(),
        ..SearchSettings::default()
    };
    let v = ValidationSettings::default();
    let mut cache = ForwardCache::new();
    // Longest first: 15-step forecasts serve the 7-step ones at the origins both share.
    search::search(
        &model,
        &series,
        Horizon(15),
        &settings,
        &v,
        &mut cache,
        &mut |_| {},
    )
    .unwrap();
    model.reset();
    let shared = search::search(
        &model,
        &series,
        Horizon(7),
        &settings,
        &v,
        &mut cache,
        &mut |_| {},
    )
    .unwrap();
    let o15 = backtest::origins(&series, 15, 30).unwrap();
    let o7 = backtest::origins(&series, 7, 30).unwrap();
    let fresh = o7.iter().filter(|o| !o15.contains(o)).count();
    assert!(
        fresh > 0 && fresh < 30,
        "the two horizons' origins partly coincide ({fresh} new)"
    );
    assert_eq!(model.batches(), vec![(fresh, 7); 2]);
    assert_eq!(cache.series_reused, 2 * (30 - fresh));
    // Same results as a search with its own cache.
    let alone = search::search(
        inner.as_ref(),
        &series,
        Horizon(7),
        &settings,
        &v,
        &mut ForwardCache::new(),
        &mut |_| {},
    )
    .unwrap();
    for (a, b) in shared.configs.iter().zip(&alone.configs) {
        assert_same_evaluation(&a.evaluation, &b.evaluation);
    }
}

#[test]
fn current_config_reuses_the_search_forward_and_validates() {
    let inner = inner_model();
    let model = Counting::new(inner.as_ref());
    let series = synthetic_series();
    let settings = SearchSettings::default();
    let v = ValidationSettings::default();
    let h = Horizon(7);
    let mut cache = ForwardCache::new();
    let report = search::search(&model, &series, h, &settings, &v, &mut cache, &mut |_| {}).unwrap();
    model.reset();
    let now = chrono::DateTime::parse_from_rfc3339("2026-01-05T06:00:00Z")
        .unwrap()
        .to_utc();
    let current_params = ForecasterConfig::initial(h, "m", now).params();
    assert_eq!(current_params.context_length, 180, "in the 7d grid");
    let current = search::evaluate_params(
        &model,
        &series,
        h,
        &settings,
        &current_params,
        &mut cache,
        &mut |_| {},
    )
    .unwrap();
    assert!(
        model.batches().is_empty(),
        "context 180 was already forecast at these origins"
    );
    let in_grid = report
        .configs
        .iter()
        .find(|c| c.evaluation.params == current_params)
        .unwrap();
    assert_same_evaluation(&current, &in_grid.evaluation);

    let result = validate::validate(h, report.best(), &current, &v).unwrap();
    assert_eq!(result.criteria.len(), 5);
    assert_eq!(result.approved, result.criteria.iter().all(|c| c.passed));
    assert_eq!(result.diebold_mariano.n, 30);
    assert_eq!(result.diebold_mariano.lags, 6);
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(
        json["candidate"]["params"]["context_length"],
        report.best().params.context_length
    );
}
