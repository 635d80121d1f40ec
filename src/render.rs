//! Text renderings shared by commands and mail: the search table, the criteria table, the
//! verdict line of a rejection, and what git did. Pure: strings from report values.

use crate::deploy::GitRecord;
use crate::output;
use crate::search::SearchReport;
use crate::validate::{Criterion, Measure, ValidationReport};

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
    s.push_str(&format!("verdict: {}\n", verdict(v)));
    s
}

/// One failing measure, with its value, threshold and direction:
/// `RMSE improvement 0.1 % (needs >= 5 %)`.
fn measure_text(m: &Measure) -> String {
    let unit = if m.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", m.unit)
    };
    let num = |x: f64| {
        if m.unit == "%" {
            format!("{x:.1}")
        } else {
            trim_num(x)
        }
    };
    format!(
        "{} {}{unit} (needs {} {}{unit})",
        m.name,
        num(m.value),
        m.comparison.symbol(),
        m.threshold
    )
}

/// A number with at most 3 decimals and no trailing zeros.
fn trim_num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// One failing criterion: its failing measures joined with "and".
fn criterion_text(c: &Criterion) -> String {
    c.measures
        .iter()
        .filter(|m| !m.passed)
        .map(measure_text)
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Every failing criterion, one text each (empty when approved).
pub fn failing(v: &ValidationReport) -> Vec<String> {
    v.criteria
        .iter()
        .filter(|c| !c.passed)
        .map(criterion_text)
        .collect()
}

/// The verdict a person reads once: `approved`, or `rejected: ` and every failing criterion
/// with value, threshold and direction, separated by `; `.
pub fn verdict(v: &ValidationReport) -> String {
    if v.approved {
        "approved".into()
    } else {
        format!("rejected: {}", failing(v).join("; "))
    }
}

/// One line about what git did.
pub fn git_summary(g: &GitRecord) -> String {
    match g {
        GitRecord::Off => "off (git.mode = off)".into(),
        GitRecord::NoRepository => "no repository holds the configs (git.mode = auto): not committed".into(),
        GitRecord::Unchanged => "HEAD already had these bytes: nothing to commit".into(),
        GitRecord::NotCommitted => "not committed".into(),
        GitRecord::Committed(id) => format!("committed {id}"),
    }
}
