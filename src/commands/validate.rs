//! `validate`: search a horizon on the selection origins (or take `--candidate`), then judge
//! the candidate against the current config on the later confirmation origins. Writes
//! nothing (but the optional picture); exit 0 approved, 3 rejected.

use std::path::PathBuf;

use serde::Serialize;

use crate::backtest;
use crate::cli::ValidateArgs;
use crate::domain::Horizon;
use crate::exit::{invalid, ExitCode};
use crate::forecaster_config::ForecasterConfig;
use crate::hiargs::Context;
use crate::model::ChronosBolt;
use crate::output::{self, Render};
use crate::search::{self, ForwardCache, SearchReport};
use crate::series::Series;
use crate::validate::{self, ValidationReport};

#[derive(Debug, Serialize)]
pub struct ValidateOutput {
    pub run_id: String,
    pub horizon: String,
    pub model: String,
    /// None with `--candidate`.
    pub search: Option<SearchReport>,
    pub validation: ValidationReport,
    pub plot: Option<String>,
}

impl Render for ValidateOutput {
    fn render(&self) -> String {
        let mut s = format!(
            "validate {}   model {}   run {}\n",
            self.horizon, self.model, self.run_id
        );
        if let Some(r) = &self.search {
            s.push_str(&render_search(r));
        }
        s.push_str(&render_validation(&self.validation));
        if let Some(p) = &self.plot {
            s.push_str(&format!("backtest picture: {p}\n"));
        }
        s
    }
}

/// The search's configs as a table with every score, the chosen one marked, and the rule
/// that picked each parameter.
pub fn render_search(r: &SearchReport) -> String {
    let rows = r.configs.iter().enumerate().map(|(i, c)| {
        let m = &c.evaluation.metrics;
        let p = &c.evaluation.params;
        vec![
            if i == r.best {
                "*".to_string()
            } else {
                String::new()
            },
            p.context_length.to_string(),
            p.num_samples.to_string(),
            format!("{:.2}", p.temperature),
            format!("{:.3}", m.rmse),
            format!("{:.3}", m.interval_score_95),
            format!("{:.4}", m.wql),
            format!("{:.2}", c.mc_deviation_pct),
            format!("{:.3}", m.coverage_95),
            format!("{:+.3}", m.bias),
            format!("{:.3}", m.mape),
            format!("{:.2}", m.inference_ms),
            if c.meets_criteria { "yes" } else { "no" }.to_string(),
        ]
    });
    let mut s = format!(
        "search {}: {} configs on the {} selection origins {} to {} (targets to {}), {} forward batches (naive {}), {:.1} s\n",
        r.horizon,
        r.configs.len(),
        r.origins,
        r.first_origin,
        r.last_origin,
        r.last_target,
        r.forward_batches,
        r.naive_forward_batches,
        r.seconds
    );
    s.push_str(&output::table(
        &[
            "pick",
            "context",
            "samples",
            "temp",
            "RMSE",
            "IS95",
            "WQL",
            "MC dev %",
            "cov95",
            "bias",
            "MAPE %",
            "ms",
            "meets abs.",
        ],
        rows,
    ));
    s.push('\n');
    let rules = &r.rules;
    let c = &rules.context_length;
    let list = |xs: Vec<String>| xs.join(", ");
    s.push_str(&format!(
        "context_length {} by the lowest RMSE of the point forecast (at samples {}, temp {:.2}): {}\n",
        c.chosen,
        c.at_num_samples,
        c.at_temperature,
        list(c.rmse.iter().map(|(l, v)| format!("{l} {v:.3}")).collect())
    ));
    let t = &rules.temperature;
    s.push_str(&format!(
        "temperature {:.2} by the lowest CI95 interval score (at context {}, samples {}): {}\n",
        t.chosen,
        t.at_context_length,
        t.at_num_samples,
        list(
            t.interval_score_95
                .iter()
                .map(|(x, v)| format!("{x:.2} {v:.3}"))
                .collect()
        )
    ));
    let n = &rules.num_samples;
    s.push_str(&format!(
        "num_samples {} as the smallest whose mean and CI95 stay within {} % of the CI95 width of samples {}: {}\n",
        n.chosen,
        n.tolerance_pct,
        n.reference,
        list(
            n.deviation_pct
                .iter()
                .map(|(x, v)| format!("{x} {v:.2} %"))
                .collect()
        )
    ));
    s.push_str("(IS95: interval score of the CI95; MC dev: largest deviation from the most samples; meets abs.: coverage and bias limits on these origins, shown only)\n");
    s
}

/// The origins line, the criteria table, Diebold-Mariano, the random walk and Clark-West.
pub fn render_validation(v: &ValidationReport) -> String {
    let mut rows = Vec::new();
    for c in &v.criteria {
        for m in &c.measures {
            rows.push(vec![
                format!("{}. {}", c.id, c.name),
                m.name.clone(),
                format!("{:.4}", m.candidate),
                output::num(m.current, 4),
                format!("{:.3} {}", m.value, m.unit),
                format!("{} {} {}", m.comparison.symbol(), m.threshold, m.unit),
                if m.passed { "pass" } else { "fail" }.to_string(),
            ]);
        }
    }
    let o = &v.origins;
    let mut s = format!(
        "origins every {} rows: {} selection origins {} to {} (targets to {}) {}; \
         {} confirmation origins {} to {} (targets to {}) judge it, and their metrics are what a deploy promises\n",
        o.spacing,
        o.selection.origins,
        o.selection.first_origin,
        o.selection.last_origin,
        o.selection.last_target,
        if o.selection_used {
            "chose the candidate"
        } else {
            "not used (the candidate was given)"
        },
        o.confirmation.origins,
        o.confirmation.first_origin,
        o.confirmation.last_origin,
        o.confirmation.last_target,
    );
    s.push_str(&format!(
        "candidate {}  vs  current {}\n",
        v.candidate.params, v.current.params
    ));
    s.push_str(&output::table(
        &[
            "criterion",
            "measure",
            "candidate",
            "current",
            "value",
            "threshold",
            "result",
        ],
        rows,
    ));
    s.push('\n');
    let dm = &v.diebold_mariano;
    s.push_str(&format!(
        "Diebold-Mariano (squared error, HAC, HLN; {} origins, horizon {} origins): statistic {:.3}, one-sided p {:.4} (two-sided {:.4}){}\n",
        dm.n,
        dm.horizon_used,
        dm.statistic,
        dm.p_value_lower,
        dm.p_value,
        if dm.horizon_capped { "; horizon capped: too few origins, indicative only" } else { "" }
    ));
    let rw = &v.random_walk;
    s.push_str(&format!(
        "random walk: RMSE {:.3}, MAPE {:.3} %; RMSE ratio candidate {:.3}, current {:.3}; Clark-West candidate vs random walk: statistic {:.3}, one-sided p {:.4}\n",
        rw.rmse,
        rw.mape,
        rw.candidate_rmse_ratio,
        rw.current_rmse_ratio,
        rw.clark_west.statistic,
        rw.clark_west.p_value
    ));
    s.push_str(&format!(
        "inference cost (deterministic model of the forward and the draws): candidate {:.1} MFLOP, current {:.1} MFLOP, {:+.1} %\n",
        v.cost.candidate_mflop, v.cost.current_mflop, v.cost.change_pct
    ));
    s.push_str(if v.approved {
        "verdict: APPROVED\n"
    } else {
        "verdict: REJECTED\n"
    });
    s
}

/// Names of the failing criteria.
pub fn failing(v: &ValidationReport) -> Vec<String> {
    v.criteria
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.to_string())
        .collect()
}

/// Everything `validate` and `run` compute for one horizon.
pub struct Outcome {
    pub search: Option<SearchReport>,
    pub validation: ValidationReport,
}

/// Splits the origins, runs one batched forward per context length over all of them,
/// searches `h` on the selection origins (or takes `candidate`), and validates against
/// `current` on the confirmation origins, with criterion 3 from the deterministic cost model.
pub fn search_and_validate(
    ctx: &Context,
    model: &ChronosBolt,
    series: &Series,
    current: &ForecasterConfig,
    candidate: Option<&ForecasterConfig>,
    cache: &mut ForwardCache,
) -> anyhow::Result<Outcome> {
    let h = current.horizon;
    let s = &ctx.settings;
    let split = backtest::split_origins(series, h.steps(), &s.search)?;
    let grid = match candidate {
        Some(_) => Vec::new(),
        None => search::grid(&s.search, h)?,
    };
    let distinct = |xs: &mut dyn Iterator<Item = usize>| {
        let mut out: Vec<usize> = Vec::new();
        for x in xs {
            if !out.contains(&x) {
                out.push(x);
            }
        }
        out
    };
    let grid_lengths = distinct(&mut grid.iter().map(|p| p.context_length)).len();
    let unique = distinct(
        &mut grid
            .iter()
            .map(|p| p.context_length)
            .chain([current.context_length])
            .chain(candidate.map(|c| c.context_length)),
    );
    let bar = output::Progress::new(0, &format!("search {h}"));
    // The bar counts every forward request (the prefetch, the search's, candidate and current)
    // and every searched config.
    let started = search::Progress::Started {
        horizon: h,
        forwards: unique.len() + grid_lengths + 2,
        configs: grid.len(),
    };
    super::progress_event(&bar, &started);
    let mut progress = |p: search::Progress| {
        if !matches!(p, search::Progress::Started { .. }) {
            super::progress_event(&bar, &p);
        }
    };
    let all = split.all();
    let batches_before = cache.batches_run;
    for &length in &unique {
        cache.forward(model, series, &all, length, h.steps(), &mut progress)?;
    }
    let search = if candidate.is_some() {
        None
    } else {
        {
            let mut r = search::search(
                model,
                series,
                h,
                &s.search,
                &s.validation,
                &split.selection,
                cache,
                &mut progress,
            )?;
            // The search's forwards were batched with the confirmation origins above.
            r.forward_batches = cache.batches_run - batches_before;
            Some(r)
        }
    };
    let cand_params = match (candidate, &search) {
        (Some(c), _) => c.params(),
        (None, Some(r)) => r.best().params,
        (None, None) => unreachable!("search runs when there is no candidate"),
    };
    let cur_params = current.params();
    let mut cand = search::evaluate_params(
        model,
        series,
        h,
        &cand_params,
        &split.confirmation,
        cache,
        &mut progress,
    )?;
    let mut cur = search::evaluate_params(
        model,
        series,
        h,
        &cur_params,
        &split.confirmation,
        cache,
        &mut progress,
    )?;
    let dims = backtest::ModelDims::of(model.config());
    let cost = backtest::InferenceCost::of(&dims, &cand_params, &cur_params, h.steps());
    // Not measured here: criterion 3 compares `cost`.
    cand.metrics.inference_ms = f64::NAN;
    cur.metrics.inference_ms = f64::NAN;
    bar.finish();
    let origins = validate::OriginsUsed {
        spacing: split.spacing,
        selection: split.selection_span(series, h.steps()),
        selection_used: candidate.is_none(),
        confirmation: split.confirmation_span(series, h.steps()),
        test_horizon: h.steps().div_ceil(split.spacing),
    };
    let validation = validate::validate(h, &cand, &cur, origins, cost, &s.validation)?;
    Ok(Outcome { search, validation })
}

pub fn run(ctx: &Context, args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let h: Horizon = args.horizon;
    let current = super::read_configs(ctx, &[h])?.remove(0);
    let candidate = match &args.candidate {
        Some(p) => {
            let c = ForecasterConfig::read(p)?;
            if c.horizon != h {
                return Err(invalid(format!(
                    "{}: candidate is for horizon {} but --horizon is {h}; pass a {h} config",
                    p.display(),
                    c.horizon
                )));
            }
            Some(c)
        }
        None => None,
    };
    let series = super::load_series(ctx, std::slice::from_ref(&current))?;
    let model = ChronosBolt::open(&ctx.settings.model.id)?;
    let mut cache = ForwardCache::new();
    let outcome = search_and_validate(ctx, &model, &series, &current, candidate.as_ref(), &mut cache)?;
    let run_id = super::run_id(ctx);
    let plot: Option<PathBuf> = match &args.plot {
        Some(dir) => Some(super::write_plot(dir, &run_id, h, &series, &outcome.validation)?),
        None => None,
    };
    let approved = outcome.validation.approved;
    output::emit(
        ctx.json,
        &ValidateOutput {
            run_id,
            horizon: h.label(),
            model: ctx.settings.model.id.clone(),
            search: outcome.search,
            validation: outcome.validation,
            plot: plot.map(|p| p.display().to_string()),
        },
    )?;
    Ok(if approved {
        ExitCode::Success
    } else {
        ExitCode::Rejected
    })
}
