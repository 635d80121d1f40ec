//! `history`: optimization history, newest first, as a table or JSON.

use serde::Serialize;

use crate::domain::Horizon;
use crate::exit::ExitCode;
use crate::hiargs::Context;
use crate::history::HistoryRecord;
use crate::output::{self, num, opt, Render};

#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub file: String,
    pub total: usize,
    pub records: Vec<HistoryRecord>,
}

impl Render for HistoryReport {
    fn render(&self) -> String {
        if self.records.is_empty() {
            return format!("No optimization history in {} (never optimized).\n", self.file);
        }
        let width = output::width();
        let rows = self.records.iter().map(|r| {
            vec![
                r.optimization_date.format("%Y-%m-%d %H:%M").to_string(),
                r.horizon.label(),
                r.action.as_str().to_string(),
                if r.triggered_by.is_empty() {
                    "-".to_string()
                } else {
                    crate::domain::TriggerKind::join(&r.triggered_by)
                },
                num(r.current.rmse, 3),
                num(r.candidate.rmse, 3),
                match r.attention.as_deref() {
                    None => "-",
                    Some("") => "ok",
                    Some(_) => "attention",
                }
                .to_string(),
            ]
        });
        let mut s = output::table_fitted(
            &[
                "date (UTC)",
                "horizon",
                "action",
                "triggered by",
                "RMSE cur",
                "RMSE cand",
                "health",
            ],
            rows,
            width,
        );
        s.push('\n');
        // Below the table, one wrapped line a record: parameters old -> new, then the message.
        let lines: Vec<String> = self
            .records
            .iter()
            .map(|r| {
                let change = match (params(&r.old), params(&r.new)) {
                    (old, new) if new == "-" || new == old => old,
                    (old, new) => format!("{old} -> {new}"),
                };
                format!(
                    "{} {}: {change}; {:.1} s; {}",
                    r.optimization_date.format("%Y-%m-%d %H:%M"),
                    r.horizon,
                    r.duration_seconds,
                    r.message
                )
            })
            .collect();
        s.push_str(&output::wrap_lines(&lines, width, "    "));
        s.push_str(&format!("\n{} of {} records\n", self.records.len(), self.total));
        s
    }
}

fn params(p: &crate::history::RecordParams) -> String {
    match (p.context_length, p.num_samples, p.temperature) {
        (None, None, None) => "-".into(),
        (c, n, t) => format!("{}/{}/{}", opt(c), opt(n), num(t, 2)),
    }
}

pub fn run(ctx: &Context, horizon: Option<Horizon>, limit: usize) -> anyhow::Result<ExitCode> {
    let path = ctx.history_path();
    let mut records = crate::data::history::read(&path)?;
    if let Some(h) = horizon {
        records.retain(|r| r.horizon == h);
    }
    records.sort_by_key(|r| std::cmp::Reverse(r.optimization_date));
    let total = records.len();
    records.truncate(limit);
    output::emit(
        ctx.json,
        &HistoryReport {
            file: path.display().to_string(),
            total,
            records,
        },
    )?;
    Ok(ExitCode::Success)
}
