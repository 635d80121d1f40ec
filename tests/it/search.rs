//! Grid search and validation through the library: shared forward passes (counted), equality
//! with a brute-force evaluation of every config and the rules applied by hand, forward reuse
//! between horizons and for the current config, the search never seeing a confirmation
//! origin, and criterion 3 timing identical parameters alike.
//!
//! The inner model is built in ONE place, [`inner_model`]; every test is generic over it.

use std::cell::RefCell;

use chrono::NaiveDate;
use model_optimizer::config::{SearchSettings, ValidationSettings};
use model_optimizer::domain::{Horizon, InferenceParams};
use model_optimizer::forecast::{QuantileForecast, QuantileModel};
use model_optimizer::forecaster_config::ForecasterConfig;
use model_optimizer::policy::backtest::{self, Evaluation, Metrics, OriginSplit};
use model_optimizer::policy::search::{self, ForwardCache, Progress};
use model_optimizer::policy::validate;
use model_optimizer::series::Series;

/// The model under test: the real Chronos-Bolt engine on the micro checkpoint.
fn inner_model() -> Box<dyn QuantileModel> {
    Box::new(
        model_optimizer::model::ChronosBolt::load_dir(&crate::util::micro_model()).expect("micro checkpoint"),
    )
}

/// Records every `predict` call as (number of contexts, prediction length), and the series
/// index each context ends at (contexts are slices of `base`, when given).
struct Counting<'a> {
    inner: &'a dyn QuantileModel,
    calls: RefCell<Vec<(usize, usize)>>,
    base: Option<&'a [f64]>,
    ends: RefCell<Vec<usize>>,
}

impl<'a> Counting<'a> {
    fn new(inner: &'a dyn QuantileModel) -> Self {
        Counting {
            inner,
            calls: RefCell::new(Vec::new()),
            base: None,
            ends: RefCell::new(Vec::new()),
        }
    }

    /// Also records where in `values` each context ends.
    fn watching(inner: &'a dyn QuantileModel, values: &'a [f64]) -> Self {
        Counting {
            base: Some(values),
            ..Counting::new(inner)
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
        if let Some(base) = self.base {
            let range = base.as_ptr_range();
            for c in contexts {
                assert!(
                    range.contains(&c.as_ptr()),
                    "every context is a slice of the series"
                );
                // Safe index arithmetic on addresses: the slice starts inside `base`.
                let start = (c.as_ptr() as usize - base.as_ptr() as usize) / std::mem::size_of::<f64>();
                self.ends.borrow_mut().push(start + c.len() - 1);
            }
        }
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

fn split(series: &Series, h: Horizon, settings: &SearchSettings) -> OriginSplit {
    backtest::split_origins(series, h.steps(), settings).unwrap()
}

/// The largest deviation of `e` from `r` over every point, in percent of `r`'s CI95 width.
fn deviation_by_hand(e: &Evaluation, r: &Evaluation) -> f64 {
    let mut worst: f64 = 0.0;
    for (p, q) in e.points.iter().zip(&r.points) {
        let d = [
            p.forecast - q.forecast,
            p.ci95[0] - q.ci95[0],
            p.ci95[1] - q.ci95[1],
        ]
        .iter()
        .fold(0.0_f64, |m, x| m.max(x.abs()));
        worst = worst.max(100.0 * d / (q.ci95[1] - q.ci95[0]));
    }
    worst
}

/// The three rules applied by hand to brute-force evaluations in grid order.
fn rules_by_hand(evals: &[Evaluation], tolerance_pct: f64) -> InferenceParams {
    let at = |c: usize, n: usize, t: f64| {
        evals
            .iter()
            .find(|e| {
                e.params.context_length == c
                    && e.params.num_samples == n
                    && (e.params.temperature - t).abs() < 1e-12
            })
            .unwrap()
    };
    let argmin = |xs: Vec<(f64, f64)>| {
        let mut best = xs[0];
        for x in xs {
            if x.1 < best.1 {
                best = x;
            }
        }
        best.0
    };
    let ctx = argmin(
        [90.0, 180.0, 270.0]
            .iter()
            .map(|&c| (c, at(c as usize, 200, 1.0).metrics.rmse))
            .collect(),
    ) as usize;
    let temp = argmin(
        [0.8, 1.0, 1.2]
            .iter()
            .map(|&t| (t, at(ctx, 200, t).metrics.interval_score_95))
            .collect(),
    );
    let n = [50, 100, 200]
        .into_iter()
        .find(|&n| deviation_by_hand(at(ctx, n, temp), at(ctx, 200, temp)) <= tolerance_pct)
        .unwrap();
    InferenceParams {
        context_length: ctx,
        num_samples: n,
        temperature: temp,
    }
}

#[test]
fn twenty_seven_configs_cost_three_forward_batches() {
    let inner = inner_model();
    let model = Counting::new(inner.as_ref());
    let series = synthetic_series();
    let settings = SearchSettings::default();
    let h = Horizon(7);
    let parts = split(&series, h, &settings);
    let mut events = Vec::new();
    let mut cache = ForwardCache::new();
    let report = search::search(
        &search::SearchInput {
            model: &model,
            series: &series,
            horizon: h,
            settings: &settings,
            validation: &ValidationSettings::default(),
            selection: &parts.selection,
            current: None,
        },
        &mut cache,
        &mut |p| events.push(p),
    )
    .unwrap();
    assert_eq!(report.configs.len(), 27);
    assert_eq!(report.origins, 52);
    assert_eq!(report.last_origin, series.dates[*parts.selection.last().unwrap()]);
    // Exactly 3 batched forwards, each over the 52 selection origins for 7 steps ...
    assert_eq!(model.batches(), vec![(52, 7); 3]);
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
        &search::SearchInput {
            model: &model,
            series: &series,
            horizon: h,
            settings: &settings,
            validation: &ValidationSettings::default(),
            selection: &parts.selection,
            current: None,
        },
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
fn search_result_equals_brute_force_evaluation_and_the_rules_by_hand() {
    let model = inner_model();
    let series = synthetic_series();
    let settings = SearchSettings::default();
    for h in [Horizon(7), Horizon(15)] {
        let origins = split(&series, h, &settings).selection;
        // The same three context lengths for both horizons, so one hand rule serves.
        let h_settings = SearchSettings {
            context_lengths: [(h, vec![90, 180, 270])].into_iter().collect(),
            ..settings.clone()
        };
        // Each config on its own: its own forward, its own post-processing.
        let brute: Vec<Evaluation> = search::grid(&h_settings, h)
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
        // The default tolerance, one the middle num_samples misses, and a loose one.
        for tol in [2.5, 0.5, 50.0] {
            let s = SearchSettings {
                num_samples_tolerance_pct: tol,
                ..h_settings.clone()
            };
            let report = search::search(
                &search::SearchInput {
                    model: model.as_ref(),
                    series: &series,
                    horizon: h,
                    settings: &s,
                    validation: &ValidationSettings::default(),
                    selection: &origins,
                    current: None,
                },
                &mut ForwardCache::new(),
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(report.configs.len(), brute.len());
            for (c, b) in report.configs.iter().zip(&brute) {
                assert_same_evaluation(&c.evaluation, b);
                assert!(c.evaluation.metrics.inference_ms > 0.0);
                let reference = brute
                    .iter()
                    .find(|r| {
                        r.params.context_length == b.params.context_length
                            && r.params.num_samples == 200
                            && r.params.temperature.to_bits() == b.params.temperature.to_bits()
                    })
                    .unwrap();
                assert!(
                    (c.mc_deviation_pct - deviation_by_hand(b, reference)).abs() < 1e-9,
                    "{}",
                    b.params
                );
            }
            assert_eq!(
                report.best().params,
                rules_by_hand(&brute, tol),
                "{h} tolerance {tol}"
            );
            assert_eq!(report.rules.num_samples.tolerance_pct.to_bits(), tol.to_bits());
        }
        // The configs are not all alike: temperature moves coverage, num_samples the draws.
        let cov: Vec<f64> = brute.iter().map(|e| e.metrics.coverage_95).collect();
        assert!(cov[2] >= cov[0], "coverage grows with temperature at context 90");
        assert!(brute
            .iter()
            .any(|e| (e.metrics.rmse - brute[0].metrics.rmse).abs() > 1e-9));
        assert!(
            deviation_by_hand(&brute[0], &brute[6]) > 0.5,
            "50 draws differ from 200"
        );
    }
}

#[test]
fn no_confirmation_origin_is_ever_seen_by_the_search() {
    let inner = inner_model();
    let series = synthetic_series();
    let settings = SearchSettings::default();
    for h in [Horizon(7), Horizon(15)] {
        let parts = split(&series, h, &settings);
        let model = Counting::watching(inner.as_ref(), &series.values);
        let report = search::search(
            &search::SearchInput {
                model: &model,
                series: &series,
                horizon: h,
                settings: &settings,
                validation: &ValidationSettings::default(),
                selection: &parts.selection,
                current: None,
            },
            &mut ForwardCache::new(),
            &mut |_| {},
        )
        .unwrap();
        // Every context the model was given (batches and timing runs) ends at a selection
        // origin, and every point scored is a selection origin with a target before the first
        // confirmation target.
        let ends = model.ends.borrow().clone();
        assert!(!ends.is_empty());
        assert!(ends.iter().all(|e| parts.selection.contains(e)), "{h}");
        let first_conf = parts.confirmation[0];
        for c in &report.configs {
            for p in &c.evaluation.points {
                assert!(
                    parts.selection.contains(&p.origin) && p.target <= first_conf,
                    "{h}"
                );
            }
        }
        // So the search is blind to everything after its last target: change all of it and
        // nothing in the report moves but the timings.
        let last_target = parts.selection.last().unwrap() + h.steps();
        let mut changed = series.clone();
        for v in &mut changed.values[last_target + 1..] {
            *v *= 1.5;
        }
        assert_eq!(split(&changed, h, &settings).selection, parts.selection);
        let blind = search::search(
            &search::SearchInput {
                model: inner.as_ref(),
                series: &changed,
                horizon: h,
                settings: &settings,
                validation: &ValidationSettings::default(),
                selection: &parts.selection,
                current: None,
            },
            &mut ForwardCache::new(),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(blind.best, report.best);
        assert_eq!(blind.rules, report.rules);
        for (a, b) in blind.configs.iter().zip(&report.configs) {
            assert_same_evaluation(&a.evaluation, &b.evaluation);
            assert_eq!(a.mc_deviation_pct.to_bits(), b.mc_deviation_pct.to_bits());
        }
        // The confirmation origins do see the change (the split is not vacuous).
        let conf_eval = |s: &Series| {
            let raw =
                backtest::forward(inner.as_ref(), &s.values, &parts.confirmation, 90, h.steps()).unwrap();
            backtest::evaluate(s, &raw, h.steps(), 100, 1.0, 0.0)
                .unwrap()
                .metrics
                .rmse
        };
        assert!((conf_eval(&changed) - conf_eval(&series)).abs() > 1e-6);
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
    let o15 = split(&series, Horizon(15), &settings).selection;
    let o7 = split(&series, Horizon(7), &settings).selection;
    // Longest first: 15-step forecasts serve the 7-step ones at the origins both share.
    search::search(
        &search::SearchInput {
            model: &model,
            series: &series,
            horizon: Horizon(15),
            settings: &settings,
            validation: &v,
            selection: &o15,
            current: None,
        },
        &mut cache,
        &mut |_| {},
    )
    .unwrap();
    model.reset();
    let shared = search::search(
        &search::SearchInput {
            model: &model,
            series: &series,
            horizon: Horizon(7),
            settings: &settings,
            validation: &v,
            selection: &o7,
            current: None,
        },
        &mut cache,
        &mut |_| {},
    )
    .unwrap();
    let fresh = o7.iter().filter(|o| !o15.contains(o)).count();
    assert!(
        fresh > 0 && fresh < o7.len(),
        "the two horizons' origins partly coincide ({fresh} new)"
    );
    assert_eq!(model.batches(), vec![(fresh, 7); 2]);
    assert_eq!(cache.series_reused, 2 * (o7.len() - fresh));
    // Same results as a search with its own cache.
    let alone = search::search(
        &search::SearchInput {
            model: inner.as_ref(),
            series: &series,
            horizon: Horizon(7),
            settings: &settings,
            validation: &v,
            selection: &o7,
            current: None,
        },
        &mut ForwardCache::new(),
        &mut |_| {},
    )
    .unwrap();
    // The first 7 steps of a 15-step forecast batched with other contexts: equal up to float
    // rounding of the batch composition (f32 model: 1e-5 of the interval width).
    for (a, b) in shared.configs.iter().zip(&alone.configs) {
        let (x, y) = (&a.evaluation, &b.evaluation);
        assert_eq!(x.params, y.params);
        for (p, q) in x.points.iter().zip(&y.points) {
            assert_eq!((p.origin, p.step), (q.origin, q.step));
            assert!(
                (p.forecast - q.forecast).abs() <= 1e-5 * (q.ci95[1] - q.ci95[0]).max(1.0),
                "{} origin {} step {}: {} vs {}",
                x.params,
                p.origin,
                p.step,
                p.forecast,
                q.forecast
            );
        }
        assert!((x.metrics.rmse - y.metrics.rmse).abs() <= 1e-5 * y.metrics.rmse);
    }
}

#[test]
fn one_batch_per_context_length_serves_search_and_validation_on_the_confirmation_origins() {
    let inner = inner_model();
    let model = Counting::new(inner.as_ref());
    let series = synthetic_series();
    let settings = SearchSettings::default();
    let v = ValidationSettings::default();
    let h = Horizon(7);
    let parts = split(&series, h, &settings);
    let all = parts.all();
    let mut cache = ForwardCache::new();
    for length in [90, 180, 270] {
        cache
            .forward(&model, &series, &all, length, h.steps(), &mut |_| {})
            .unwrap();
    }
    assert_eq!(model.batches(), vec![(78, 7); 3]);
    model.reset();
    let report = search::search(
        &search::SearchInput {
            model: &model,
            series: &series,
            horizon: h,
            settings: &settings,
            validation: &v,
            selection: &parts.selection,
            current: None,
        },
        &mut cache,
        &mut |_| {},
    )
    .unwrap();
    let now = chrono::DateTime::parse_from_rfc3339("2026-01-05T06:00:00Z")
        .unwrap()
        .to_utc();
    let current_params = ForecasterConfig::initial(h, "m", now).params();
    assert_eq!(current_params.context_length, 180, "in the 7d grid");
    let eval = |p: &InferenceParams, cache: &mut ForwardCache| {
        search::evaluate_params(&model, &series, h, p, &parts.confirmation, cache, &mut |_| {}).unwrap()
    };
    let current = eval(&current_params, &mut cache);
    let candidate = eval(&report.best().params, &mut cache);
    assert!(
        model.batches().is_empty(),
        "every forward came from the one batch per length"
    );
    // The validated figures are the confirmation origins' only.
    assert!(candidate
        .points
        .iter()
        .all(|p| parts.confirmation.contains(&p.origin)));
    assert_eq!(candidate.metrics.origins, 26);
    let used = validate::OriginsUsed {
        spacing: parts.spacing,
        selection: parts.selection_span(&series, h.steps()),
        selection_used: true,
        confirmation: parts.confirmation_span(&series, h.steps()),
        test_horizon: 2,
    };
    let micro = model_optimizer::model::ChronosBolt::load_dir(&crate::util::micro_model()).unwrap();
    let dims = model_optimizer::policy::cost::ModelDims::of(micro.config());
    let cost = model_optimizer::policy::cost::InferenceCost::of(
        &dims,
        &report.best().params,
        &current_params,
        h.steps(),
    );
    let result = validate::validate(h, &candidate, &current, used, cost.clone(), &v).unwrap();
    assert_eq!(result.criteria.len(), 7);
    assert_eq!(result.approved, result.criteria.iter().all(|c| c.passed));
    assert_eq!((result.diebold_mariano.n, result.diebold_mariano.lags), (26, 1));
    assert_eq!(result.random_walk.clark_west.n, 26);
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(
        json["candidate"]["params"]["context_length"],
        report.best().params.context_length
    );
    assert_eq!(json["origins"]["confirmation"]["origins"], 26);
    assert_eq!(result.cost, cost);
    assert!((result.criteria[2].measures[0].value - cost.change_pct).abs() < 1e-9);
}

/// Criterion 3 on identical parameters: the same cost, so a change of exactly 0 %, in every
/// one of 20 validations; and the cost model orders what makes a forecast slower.
#[test]
fn identical_parameters_pass_criterion_3_in_20_of_20_runs() {
    let model =
        model_optimizer::model::ChronosBolt::load_dir(&crate::util::demo_model()).expect("demo checkpoint");
    let dims = model_optimizer::policy::cost::ModelDims::of(model.config());
    let series = synthetic_series();
    let settings = SearchSettings::default();
    let h = Horizon(7);
    let parts = split(&series, h, &settings);
    let p = InferenceParams {
        context_length: 180,
        num_samples: 100,
        temperature: 1.0,
    };
    let v = ValidationSettings::default();
    let mut cache = ForwardCache::new();
    let eval = search::evaluate_params(
        &model,
        &series,
        h,
        &p,
        &parts.confirmation,
        &mut cache,
        &mut |_| {},
    )
    .unwrap();
    let used = validate::OriginsUsed {
        spacing: parts.spacing,
        selection: parts.selection_span(&series, h.steps()),
        selection_used: true,
        confirmation: parts.confirmation_span(&series, h.steps()),
        test_horizon: 2,
    };
    let mut passed = 0;
    for _ in 0..20 {
        let cost = model_optimizer::policy::cost::InferenceCost::of(&dims, &p, &p, h.steps());
        let r = validate::validate(h, &eval, &eval, used.clone(), cost, &v).unwrap();
        let c3 = &r.criteria[2];
        assert_eq!(c3.id, 3);
        if c3.passed && c3.measures[0].value.abs() <= 5.0 {
            passed += 1;
        }
    }
    assert_eq!(passed, 20);
    let cost = |c: usize, n: usize, h: usize| {
        model_optimizer::policy::cost::forecast_cost_mflop(
            &dims,
            &InferenceParams {
                context_length: c,
                num_samples: n,
                temperature: 1.0,
            },
            h,
        )
    };
    assert!(cost(365, 100, 7) > cost(180, 100, 7));
    assert!(cost(180, 200, 7) > cost(180, 50, 7));
    // Past the 64 steps of one pass the expansion loop runs 9 paths per further pass.
    assert!(cost(365, 100, 90) > 9.0 * cost(365, 100, 7));
}
