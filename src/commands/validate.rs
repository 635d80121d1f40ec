//! `validate`: search a horizon (or take `--candidate`), backtest the current config on the
//! same origins, and judge the candidate. Writes nothing (but the optional picture); exit 0
//! approved, 3 rejected.

use std::path::PathBuf;

use serde::Serialize;

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

/// The search's configs as a table, the chosen one marked.
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
            format!("{:.3}", m.mape),
            format!("{:+.3}", m.bias),
            format!("{:.3}", m.coverage_95),
            format!("{:.3}", m.wql),
            format!("{:.2}", m.inference_ms),
            if c.meets_criteria { "yes" } else { "no" }.to_string(),
        ]
    });
    let mut s = format!(
        "search {}: {} configs on {} origins ({} to {}), {} forward batches (naive {}), {:.1} s\n",
        r.horizon,
        r.configs.len(),
        r.origins,
        r.first_origin,
        r.last_origin,
        r.forward_batches,
        r.naive_forward_batches,
        r.seconds
    );
    s.push_str(&output::table(
        &[
            "best",
            "context",
            "samples",
            "temp",
            "RMSE",
            "MAPE %",
            "bias",
            "cov95",
            "WQL",
            "ms",
            "meets abs.",
        ],
        rows,
    ));
    s.push('\n');
    if !r.best_meets_criteria {
        s.push_str(
            "note: no config met the absolute criteria (CI95 coverage, |bias|); the lowest RMSE was taken\n",
        );
    }
    s
}

/// The criteria table, Diebold-Mariano and the random walk.
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
    let mut s = format!(
        "candidate {}  vs  current {}\n",
        v.candidate.params, v.current.params
    );
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
    s.push_str(&format!(
        "Diebold-Mariano (squared error, HLN): statistic {:.3}, p-value {:.4}\n",
        v.diebold_mariano.statistic, v.diebold_mariano.p_value
    ));
    s.push_str(&format!(
        "random walk: RMSE {:.3}, MAPE {:.3} %; RMSE ratio candidate {:.3}, current {:.3}\n",
        v.random_walk.rmse,
        v.random_walk.mape,
        v.random_walk.candidate_rmse_ratio,
        v.random_walk.current_rmse_ratio
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

/// Searches `h` (or evaluates `candidate`) and validates against `current`.
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
    let bar = output::Progress::new(0, &format!("search {h}"));
    let mut progress = |p: search::Progress| super::progress_event(&bar, &p);
    let search = match candidate {
        Some(_) => None,
        None => Some(search::search(
            model,
            series,
            h,
            &s.search,
            &s.validation,
            cache,
            &mut progress,
        )?),
    };
    let cand_params = match (candidate, &search) {
        (Some(c), _) => c.params(),
        (None, Some(r)) => r.best().params,
        (None, None) => unreachable!("search runs when there is no candidate"),
    };
    // Candidate and current are timed one right after the other, for a fair criterion 3.
    let cand = search::evaluate_params(model, series, h, &s.search, &cand_params, cache, &mut progress)?;
    let cur = search::evaluate_params(
        model,
        series,
        h,
        &s.search,
        &current.params(),
        cache,
        &mut progress,
    )?;
    bar.finish();
    let validation = validate::validate(h, &cand, &cur, &s.validation)?;
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
