//! `replay`: the weekly job simulated on history. Reads the root's settings, configs (the
//! configs in effect at `--from`), series and model; changes nothing under `--root`; prints a
//! table (or JSON) and, with `--out`, writes `replay.json`, `replay.txt` and `replay.png`.

use serde::Serialize;

use crate::exit::ExitCode;
use crate::hiargs::{Context, ReplayRequest};
use crate::model::ChronosBolt;
use crate::output::{self, Render};
use crate::plot::Curve;
use crate::policy::replay::{
    self, HorizonReplay, ReplayInput, ReplayProgress, ReplayReport, ReplaySpec, Scores,
};

#[derive(Debug, Serialize)]
struct ReplayOutput {
    model: String,
    series: String,
    report: ReplayReport,
    /// The files written with `--out`.
    files: Vec<String>,
}

fn pct(x: Option<f64>) -> String {
    output::num(x.map(|v| v * 100.0), 1)
}

fn arm_row(h: &str, name: &str, s: &Scores) -> Vec<String> {
    vec![
        h.to_string(),
        name.to_string(),
        s.forecasts.to_string(),
        format!("{:.3}", s.rmse),
        format!("{:.3}", s.mae),
        format!("{:.3}", s.mape),
        output::num(s.wql, 4),
        output::num(s.coverage_80, 3),
        output::num(s.coverage_95, 3),
        output::num(s.mean_ci95_width, 2),
    ]
}

impl Render for ReplayOutput {
    fn render(&self) -> String {
        let r = &self.report;
        let width = output::width();
        let head = format!(
            "replay {} to {}, every {} days ({} runs)   model {}   series {}",
            r.from, r.to, r.every_days, r.run_dates, self.model, self.series
        );
        let mut s = output::wrap_lines(&[head], width, "    ");
        let rows = r.horizons.iter().flat_map(|h| {
            let l = h.horizon.label();
            [
                arm_row(&l, "policy", &h.policy),
                arm_row(&l, "static", &h.static_configs),
                arm_row(&l, "random walk", &h.random_walk),
            ]
        });
        s.push_str(&output::table_fitted(
            &[
                "horizon",
                "forecasts by",
                "n",
                "RMSE",
                "MAE",
                "MAPE %",
                "WQL",
                "cov80",
                "cov95",
                "CI95 width",
            ],
            rows,
            output::width(),
        ));
        s.push('\n');
        s.push_str(&decisions_table(r));
        s.push_str(&alarm_lines(r));
        s.push_str(&fixed_table(r));
        s.push_str(&deploys_table(r));
        let k = &r.kpis;
        let mut lines = vec![
            format!(
                "automation rate {} %, validation success rate {} %, mean realized improvement {} %, false-positive trigger rate {} %",
                pct(Some(k.automation_rate)),
                pct(k.validation_success_rate),
                output::num(k.mean_realized_improvement_pct, 2),
                pct(k.false_positive_trigger_rate),
            ),
            format!("digest mails: {} of {} runs (smtp.events)", r.digest_mails, r.run_dates),
            format!(
                "forward passes: {} computed of {} requested (one per context length and origin)",
                r.forwards_computed, r.forwards_requested
            ),
        ];
        lines.extend(self.files.iter().map(|f| format!("wrote {f}")));
        s.push_str(&output::wrap_lines(&lines, width, "    "));
        s
    }
}

/// Per horizon (a column each): the policy against the static configs, and what its runs
/// decided, one measure a row.
fn decisions_table(r: &ReplayReport) -> String {
    type Measure = (&'static str, fn(&HorizonReplay) -> String);
    let measures: [Measure; 12] = [
        ("policy vs static", |h| {
            format!("{:+.2} %", h.improvement_vs_static_pct)
        }),
        ("runs", |h| h.runs.to_string()),
        ("optimized", |h| h.optimizations.to_string()),
        ("kept", |h| h.kept.to_string()),
        ("rejected", |h| h.rejections.to_string()),
        ("approved", |h| h.approvals.to_string()),
        ("deployed", |h| h.deploys.to_string()),
        ("trials started / failed", |h| {
            format!("{} / {}", h.trials_started, h.trials_failed)
        }),
        ("rolled back", |h| h.rollbacks.to_string()),
        ("failed", |h| h.failures.to_string()),
        ("attention weeks / changes", |h| {
            format!("{} / {}", h.attention_weeks, h.attention_changes)
        }),
        ("triggers", |h| {
            let t: Vec<String> = h
                .trigger_firings
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            if t.is_empty() {
                "-".into()
            } else {
                t.join(", ")
            }
        }),
    ];
    let labels: Vec<String> = r.horizons.iter().map(|h| h.horizon.label()).collect();
    let header: Vec<&str> = std::iter::once("")
        .chain(labels.iter().map(String::as_str))
        .collect();
    let rows = measures.iter().map(|(name, value)| {
        std::iter::once((*name).to_string())
            .chain(r.horizons.iter().map(value))
            .collect::<Vec<String>>()
    });
    let mut s = output::table_fitted(&header, rows, output::width());
    s.push('\n');
    s
}

/// Per horizon and alarm: episodes and how many the next 4 weeks confirmed.
fn alarm_lines(r: &ReplayReport) -> String {
    let mut s = String::new();
    for h in &r.horizons {
        for (name, t) in [("drift", &h.alarms.drift), ("performance", &h.alarms.performance)] {
            s.push_str(&format!(
                "{} {name} alarm: fired in {} of {} checks, {} episodes: {} confirmed, {} not, {} undecided\n",
                h.horizon, t.firing_checks, t.checks, t.episodes, t.confirmed, t.unconfirmed, t.undecided
            ));
        }
    }
    s.push('\n');
    s
}

/// Per horizon: the hindsight-best config of the grid held fixed over the period (the ceiling a
/// policy could reach with one config; its parameters as context/samples/temperature), its
/// gain and the policy's over the static configs, the share of it the policy captured (%),
/// and the worst fixed config's RMSE.
fn fixed_table(r: &ReplayReport) -> String {
    let rows = r.horizons.iter().filter_map(|h| {
        let best = h.fixed_configs.first()?;
        let worst = h.fixed_configs.last()?;
        Some(vec![
            h.horizon.label(),
            compact(&best.params),
            format!("{:.3}", best.scores.rmse),
            output::num(best.scores.wql, 4),
            output::num(best.scores.coverage_95, 3),
            format!("{:+.2} %", best.improvement_vs_static_pct),
            format!("{:+.2} %", h.improvement_vs_static_pct),
            output::num(h.capture_pct, 0),
            format!("{:.3}", worst.scores.rmse),
        ])
    });
    let mut s = output::table_fitted(
        &[
            "horizon",
            "best fixed",
            "RMSE",
            "WQL",
            "cov95",
            "best gain",
            "policy gain",
            "capture",
            "worst RMSE",
        ],
        rows,
        output::width(),
    );
    s.push('\n');
    s
}

/// Parameters as `context/samples/temperature` (`180/100/1.0`, `90/50/0.85`).
fn compact(p: &crate::domain::InferenceParams) -> String {
    let t = format!("{:.2}", p.temperature);
    let t = t.strip_suffix('0').unwrap_or(&t);
    format!("{}/{}/{t}", p.context_length, p.num_samples)
}

/// Every deploy: what it promised and what it realized.
fn deploys_table(r: &ReplayReport) -> String {
    let deploys: Vec<Vec<String>> = r
        .horizons
        .iter()
        .flat_map(|h| {
            h.deploy_checks.iter().map(move |d| {
                vec![
                    h.horizon.label(),
                    d.date.to_string(),
                    compact(&d.from),
                    compact(&d.to),
                    format!("{:+.1} %", d.promised_improvement_pct),
                    output::num(d.realized_improvement_pct, 1),
                    d.origins.to_string(),
                ]
            })
        })
        .collect();
    if deploys.is_empty() {
        return String::new();
    }
    let mut s = output::table_fitted(
        &[
            "horizon",
            "deployed",
            "from (ctx/samples/temp)",
            "to",
            "promised",
            "realized %",
            "origins",
        ],
        deploys,
        output::width(),
    );
    s.push('\n');
    s
}

/// The picture's panels: cumulative squared error per arm, deploys marked.
fn panels(r: &ReplayReport) -> Vec<(String, Vec<Curve>, Vec<chrono::NaiveDate>)> {
    r.horizons
        .iter()
        .map(|h| {
            let cumulative = |pick: fn(&(chrono::NaiveDate, f64, f64, f64)) -> f64| {
                let mut total = 0.0;
                h.squared_errors
                    .iter()
                    .map(|p| {
                        total += pick(p);
                        (p.0, total)
                    })
                    .collect()
            };
            let curves = vec![
                Curve {
                    label: "policy".into(),
                    points: cumulative(|p| p.1),
                },
                Curve {
                    label: "static configs".into(),
                    points: cumulative(|p| p.2),
                },
                Curve {
                    label: "random walk".into(),
                    points: cumulative(|p| p.3),
                },
            ];
            let marks = h.deploy_checks.iter().map(|d| d.date).collect();
            (
                format!("{}: cumulative squared error, deploys marked", h.horizon),
                curves,
                marks,
            )
        })
        .collect()
}

pub fn run(ctx: &Context, req: &ReplayRequest) -> anyhow::Result<ExitCode> {
    let initial = req
        .horizons
        .iter()
        .map(|&h| super::read_config(ctx, h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let series = super::load_series(ctx)?;
    let series_name = ctx.series_path().display().to_string();
    let model = ChronosBolt::open(&ctx.settings.model.id)?;
    let model_id = ChronosBolt::identity(&ctx.settings.model.id)?;
    let input = ReplayInput {
        settings: &ctx.settings,
        series: &series,
        series_name: &series_name,
        model: &model,
        model_id: &model_id,
        dims: crate::policy::cost::ModelDims::of(model.config()),
        initial,
    };
    let spec = ReplaySpec {
        from: req.from,
        to: req.to,
        every_days: req.every_days,
    };
    let bar = output::Progress::new(0, "replay");
    let report = replay::replay(&input, &spec, &mut |p| match p {
        ReplayProgress::Started { runs } => bar.set_length(runs as u64),
        ReplayProgress::Forwards { done, total } => {
            bar.set_message(format!("forward passes {done}/{total}"));
        }
        ReplayProgress::RunFinished { date } => {
            bar.set_message(date.to_string());
            bar.inc();
        }
    })?;
    bar.finish();
    let mut out = ReplayOutput {
        model: ctx.settings.model.id.clone(),
        series: series_name,
        report,
        files: Vec::new(),
    };
    if let Some(dir) = &req.out {
        out.files = write_files(dir, &mut out)?;
    }
    output::emit(ctx.json, &out)?;
    Ok(ExitCode::Success)
}

fn write_files(dir: &std::path::Path, out: &mut ReplayOutput) -> anyhow::Result<Vec<String>> {
    use anyhow::Context as _;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the --out directory", dir.display()))?;
    let png = dir.join("replay.png");
    let json = dir.join("replay.json");
    let txt = dir.join("replay.txt");
    crate::plot::cumulative_png(&png, &panels(&out.report))?;
    out.files = [&json, &txt, &png]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let text = serde_json::to_string_pretty(&*out)?;
    std::fs::write(&json, text + "\n").with_context(|| format!("{}: cannot write", json.display()))?;
    std::fs::write(&txt, out.render()).with_context(|| format!("{}: cannot write", txt.display()))?;
    Ok(out.files.clone())
}
