//! Text renderings shared by commands and mail: the search table, the criteria table, the
//! verdict line of a rejection, and what git did. Pure: strings from report values.

use crate::deploy::GitRecord;
use crate::output;
use crate::policy::search::{IncumbentChoice, SearchReport};
use crate::policy::validate::{Criterion, Measure, ValidationReport};

/// Why a parameter rule chose what it chose, for the search table's rule lines.
fn incumbent_why<T: Copy>(choice: &IncumbentChoice<T>, score: &str, show: impl Fn(T) -> String) -> String {
    match *choice {
        IncumbentChoice::Lowest => format!("by the lowest {score}"),
        IncumbentChoice::CurrentIsLowest => format!("the current one, by the lowest {score}"),
        IncumbentChoice::Significant {
            current,
            p_value,
            alpha,
        } => format!(
            "by the lowest {score}, significantly below current {}'s (DM p {p_value:.3} < {alpha})",
            show(current)
        ),
        IncumbentChoice::KeptCurrent {
            lowest,
            p_value,
            alpha,
        } => format!(
            "kept: {} scores lower but not significantly (DM p {p_value:.3} >= {alpha})",
            show(lowest)
        ),
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
            if m.inference_ms.is_nan() {
                "-".to_string()
            } else {
                format!("{:.2}", m.inference_ms)
            },
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
        "context_length {} {} (at samples {}, temp {:.2}): {}\n",
        c.chosen,
        incumbent_why(&c.choice, "RMSE of the point forecast", |l| l.to_string()),
        c.at_num_samples,
        c.at_temperature,
        list(c.rmse.iter().map(|(l, v)| format!("{l} {v:.3}")).collect())
    ));
    let t = &rules.temperature;
    let why = incumbent_why(&t.choice, "CI95 interval score", |t| format!("{t:.2}"));
    s.push_str(&format!(
        "temperature {:.2} {why} (at context {}, samples {}): {}\n",
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
pub(crate) fn trim_num(x: f64) -> String {
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

/// The verdict of a search that kept the current config: `kept: current config <params> is
/// still the search's choice among N on the selection origins (RMSE a; next b)`, or, when
/// another config scored lower without beating the current one significantly (the search's
/// rules), `...; the lowest other, b, is not a significant gain)`.
pub fn kept(search: &SearchReport) -> String {
    let best = search.best();
    let others = search
        .configs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != search.best)
        .map(|(_, c)| c.evaluation.metrics.rmse)
        .fold(f64::INFINITY, f64::min);
    let next = if others < best.metrics.rmse {
        format!("the lowest other, {others:.3}, is not a significant gain")
    } else {
        format!("next {others:.3}")
    };
    format!(
        "kept: current config {} is still the search's choice among {} on the selection origins (RMSE {:.3}; {next})",
        best.params,
        search.configs.len(),
        best.metrics.rmse,
    )
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
