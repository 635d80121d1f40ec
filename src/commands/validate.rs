//! `validate`: search a horizon on the selection origins (or take `--candidate`), then judge
//! the candidate against the current config on the later confirmation origins. Writes
//! nothing (but the optional picture); reports the current config's health; exit 0 approved or
//! kept, 3 rejected.

use std::path::PathBuf;

use serde::Serialize;

use crate::domain::Horizon;
use crate::exit::{invalid, ExitCode};
use crate::forecaster_config::ForecasterConfig;
use crate::hiargs::{Context, ValidateRequest};
use crate::output::{self, Render};
use crate::policy::decide::{self, Judged};
use crate::policy::health::{self, Health};
use crate::policy::render;
use crate::policy::search::{ForwardCache, SearchReport};
use crate::policy::validate::ValidationReport;

#[derive(Debug, Serialize)]
pub struct ValidateOutput {
    pub run_id: String,
    pub horizon: Horizon,
    pub model: String,
    /// `approved`, or `rejected: ` with every failing criterion (the verdict `run` prints).
    pub verdict: String,
    /// None with `--candidate`.
    pub search: Option<SearchReport>,
    /// None when the search kept the current config (nothing to validate).
    pub validation: Option<ValidationReport>,
    /// The health of the current config on the confirmation origins (what `run` reports).
    pub health: Option<Health>,
    pub plot: Option<String>,
}

impl Render for ValidateOutput {
    fn render(&self) -> String {
        let mut s = format!(
            "validate {}   model {}   run {}\n",
            self.horizon, self.model, self.run_id
        );
        if let Some(r) = &self.search {
            s.push_str(&render::render_search(r));
        }
        match &self.validation {
            Some(v) => s.push_str(&render::render_validation(v)),
            None => s.push_str(&format!("{}\n", self.verdict)),
        }
        if let Some(x) = &self.health {
            let state = x
                .attention()
                .map_or_else(|| "ok".to_string(), |a| format!("attention: {a}"));
            s.push_str(&format!("current config's health: {state}\n  {}\n", x.figures()));
        }
        if let Some(p) = &self.plot {
            s.push_str(&format!("backtest picture: {p}\n"));
        }
        s
    }
}

pub fn run(ctx: &Context, req: &ValidateRequest) -> anyhow::Result<ExitCode> {
    let h: Horizon = req.horizon;
    let current = super::read_config(ctx, h)?;
    let candidate = match &req.candidate {
        Some(p) => {
            let c = ForecasterConfig::read(p)?;
            if c.horizon != h {
                return Err(invalid(format!(
                    "{}: candidate is for horizon {} but --horizon is {h}; pass a {h} config",
                    p.display(),
                    c.horizon
                )));
            }
            Some(c.params())
        }
        None => None,
    };
    // The same inputs `run` decides from: history's lost live checks count (criterion 8).
    let loaded = super::Loaded::load(ctx)?;
    let world = loaded.world(ctx);
    let model = world.model.expect("validate loads the model");
    decide::check_series(&world, &current)?;
    let mut cache = ForwardCache::new();
    let bar = output::Progress::new(0, &format!("search {h}"));
    let mut progress = |p: crate::policy::search::Progress| super::progress_event(&bar, &p);
    let outcome = decide::search_and_validate(
        &world,
        model,
        &current,
        candidate.as_ref(),
        &mut cache,
        &mut progress,
    )?;
    let health = health::assess(&world, &current, &mut cache, &mut progress)?;
    bar.finish();
    let run_id = super::run_id(ctx);
    let (search, validation) = match outcome {
        Judged::Kept(search) => (Some(*search), None),
        Judged::Validated(v) => (v.search, Some(v.validation)),
    };
    let plot: Option<PathBuf> = match (&req.plot, &validation) {
        (Some(dir), Some(v)) => Some(super::write_plot(dir, &run_id, h, &loaded.series, v)?),
        _ => None,
    };
    let verdict = match (&validation, &search) {
        (Some(v), _) => render::verdict(v),
        (None, Some(s)) => render::kept(s),
        (None, None) => unreachable!("a kept config comes from a search"),
    };
    // Kept is not a rejection: nothing differed from the current config.
    let code = match &validation {
        Some(v) if !v.approved => ExitCode::Rejected,
        _ => ExitCode::Success,
    };
    output::emit(
        ctx.json,
        &ValidateOutput {
            run_id,
            horizon: h,
            model: ctx.settings.model.id.clone(),
            verdict,
            search,
            validation,
            health,
            plot: plot.map(|p| p.display().to_string()),
        },
    )?;
    Ok(code)
}
