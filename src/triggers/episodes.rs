//! Alarm episodes, their confirmation, and the labeled-shock benchmark of the drift alarm.
//!
//! An *episode* is a run of consecutive checks on which an alarm fired (suppressed or not):
//! the weekly job firing three Sundays in a row is one episode, not three alarms. An episode is
//! *confirmed* when what it announced is still there over the following 4 weeks:
//! - drift: over the [`CONFIRM_DAYS`] log-returns after the episode's first check, the
//!   realized volatility (root mean square about the baseline median) is at least
//!   [`CONFIRM_VOLATILITY_RATIO`] times the baseline's (`scale * sqrt(q)`, see `shock`), or
//!   the net move is at least [`CONFIRM_MOVE_SD`] baseline standard deviations of a 20-day sum
//!   (`scale * sqrt(q) * sqrt(20)`). 1.5x is the volatility rule of thumb's warning level; on
//!   2000..2024-06 about one quiet week in six meets this by chance;
//! - performance: over the targets of the 28 calendar days after the episode's first check
//!   (at least `min_tracked_recent` of them), RMSE(model) / RMSE(random walk) is still at
//!   least the alarm's baseline ratio times `1 + performance_threshold_pct / 100`. The errors
//!   are those of the config in effect, so an alarm whose optimization deployed a fix counts
//!   as unconfirmed. For long horizons the confirming targets were forecast before the alarm
//!   (a 90d forecast of a target 28 days on was made two months earlier), so their errors
//!   overlap the alarm's own evidence and confirm it more easily than a 7d alarm.
//!
//! Confirmation reads data after the alarm: it is a measurement for `replay` and the
//! benchmark, never an input to a decision. An episode too close to the end of the data is
//! *undecided*.
//!
//! The benchmark ([`shock_benchmark`]) runs the detector as `status --check --as-of D` would
//! on every business day after each labeled event (delay in business days from the event's
//! first trading day to the first firing check) and on every 5th business day of a span (the
//! weekly job): the share of those checks that fire and the episodes per year.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::drift::LogReturn;
use super::performance::ErrorPoint;
use super::shock;
use crate::config::TriggerSettings;
use crate::domain::TriggerKind;

/// Log-returns (business days) after an alarm over which it is confirmed.
pub const CONFIRM_DAYS: usize = 20;
/// Realized volatility over the baseline's that confirms a drift alarm.
pub const CONFIRM_VOLATILITY_RATIO: f64 = 1.5;
/// Net move, in baseline standard deviations of a 20-day sum, that confirms a drift alarm.
pub const CONFIRM_MOVE_SD: f64 = 2.0;
/// Calendar days of targets after a performance alarm over which it is confirmed.
pub const CONFIRM_PERFORMANCE_DAYS: i64 = 28;

/// What the alarms of one horizon said at one check.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AlarmCheck {
    pub date: NaiveDate,
    pub drift: bool,
    pub performance: bool,
    /// The performance alarm's baseline RMSE ratio (model / random walk) at this check.
    pub performance_baseline_ratio: Option<f64>,
}

impl AlarmCheck {
    /// What `report` (evaluated on `date`) says; fired alarms count whether the cooldown held
    /// them back or not.
    pub fn of(date: NaiveDate, report: &super::TriggerReport) -> AlarmCheck {
        AlarmCheck {
            date,
            drift: report.drift.fired,
            performance: report.performance.fired,
            performance_baseline_ratio: report.performance.baseline_ratio,
        }
    }
}

/// One run of consecutive firing checks of one alarm.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Episode {
    pub kind: TriggerKind,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub checks: usize,
    /// None: too close to the end of the data to tell.
    pub confirmed: Option<bool>,
}

/// One alarm's counts over a span of checks.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AlarmTally {
    pub checks: usize,
    pub firing_checks: usize,
    pub episodes: usize,
    pub confirmed: usize,
    pub unconfirmed: usize,
    pub undecided: usize,
}

/// Both alarms' counts and their episodes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AlarmSummary {
    pub drift: AlarmTally,
    pub performance: AlarmTally,
    pub episodes: Vec<Episode>,
}

/// Runs of consecutive `true`s: (first date, last date, length).
pub fn episode_spans(fired: &[(NaiveDate, bool)]) -> Vec<(NaiveDate, NaiveDate, usize)> {
    let mut out: Vec<(NaiveDate, NaiveDate, usize)> = Vec::new();
    let mut previous = false;
    for &(date, f) in fired {
        if f {
            match out.last_mut() {
                Some(last) if previous => {
                    last.1 = date;
                    last.2 += 1;
                }
                _ => out.push((date, date, 1)),
            }
        }
        previous = f;
    }
    out
}

/// What followed a drift alarm raised at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DriftFollowUp {
    /// Realized volatility of the next [`CONFIRM_DAYS`] returns over the baseline's.
    pub volatility_ratio: f64,
    /// |net move| over them in baseline standard deviations of a 20-day sum.
    pub move_sd: f64,
    pub confirmed: bool,
}

/// The follow-up of a drift alarm raised at `at` (baseline as the detector saw it then);
/// None when fewer than [`CONFIRM_DAYS`] returns follow or the detector could not run.
pub fn confirm_drift(
    returns: &[LogReturn],
    at: NaiveDate,
    settings: &TriggerSettings,
) -> Option<DriftFollowUp> {
    let n = returns.partition_point(|r| r.date <= at);
    let next = returns.get(n..n + CONFIRM_DAYS)?;
    let d = shock::detect(&returns[..n], settings).ok()?;
    let sd = d.baseline_scale * d.baseline_mean_square.sqrt();
    let k = CONFIRM_DAYS as f64;
    let ms = next
        .iter()
        .map(|r| (r.value - d.baseline_location).powi(2))
        .sum::<f64>()
        / k;
    let volatility_ratio = ms.sqrt() / sd;
    let move_sd = next.iter().map(|r| r.value).sum::<f64>().abs() / (sd * k.sqrt());
    Some(DriftFollowUp {
        volatility_ratio,
        move_sd,
        confirmed: volatility_ratio >= CONFIRM_VOLATILITY_RATIO || move_sd >= CONFIRM_MOVE_SD,
    })
}

/// Whether a performance alarm raised at `at` with baseline ratio `baseline_ratio` was
/// confirmed by the errors whose targets fall in the next [`CONFIRM_PERFORMANCE_DAYS`]; None
/// with fewer than `min_tracked_recent` of them or a random walk without error.
pub fn confirm_performance(
    errors: &[ErrorPoint],
    at: NaiveDate,
    baseline_ratio: f64,
    settings: &TriggerSettings,
) -> Option<bool> {
    let until = at + Duration::days(CONFIRM_PERFORMANCE_DAYS);
    let window: Vec<&ErrorPoint> = errors
        .iter()
        .filter(|e| e.target_date > at && e.target_date <= until)
        .collect();
    if window.len() < settings.min_tracked_recent.max(1) {
        return None;
    }
    let model: f64 = window.iter().map(|e| e.error * e.error).sum();
    let rw: f64 = window
        .iter()
        .map(|e| e.random_walk_error * e.random_walk_error)
        .sum();
    if rw <= 0.0 {
        return None;
    }
    Some((model / rw).sqrt() >= baseline_ratio * (1.0 + settings.performance_threshold_pct / 100.0))
}

/// Episodes of both alarms over `checks` (oldest first), each confirmed from what followed:
/// `returns` (all log-returns known, also after the checks) and `errors` (forecast errors of
/// the configs in effect).
pub fn summarize(
    checks: &[AlarmCheck],
    returns: &[LogReturn],
    errors: &[ErrorPoint],
    settings: &TriggerSettings,
) -> AlarmSummary {
    let mut summary = AlarmSummary::default();
    for kind in [TriggerKind::Drift, TriggerKind::Performance] {
        let is_drift = kind == TriggerKind::Drift;
        let fired: Vec<(NaiveDate, bool)> = checks
            .iter()
            .map(|c| (c.date, if is_drift { c.drift } else { c.performance }))
            .collect();
        let tally = if is_drift {
            &mut summary.drift
        } else {
            &mut summary.performance
        };
        tally.checks = checks.len();
        tally.firing_checks = fired.iter().filter(|f| f.1).count();
        for (start, end, n) in episode_spans(&fired) {
            let confirmed = if is_drift {
                confirm_drift(returns, start, settings).map(|f| f.confirmed)
            } else {
                checks
                    .iter()
                    .find(|c| c.date == start)
                    .and_then(|c| c.performance_baseline_ratio)
                    .and_then(|b| confirm_performance(errors, start, b, settings))
            };
            tally.episodes += 1;
            match confirmed {
                Some(true) => tally.confirmed += 1,
                Some(false) => tally.unconfirmed += 1,
                None => tally.undecided += 1,
            }
            summary.episodes.push(Episode {
                kind,
                start,
                end,
                checks: n,
                confirmed,
            });
        }
    }
    summary
}

/// A labeled market event (`tests/fixtures/usdclp_shock_events.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShockEvent {
    /// The event's first day (for an announcement after the close, the next trading day).
    pub date: NaiveDate,
    pub name: String,
    pub description: String,
    pub source: String,
}

/// How the detector met one labeled event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventDetection {
    pub event: ShockEvent,
    /// The event's first trading day in the series.
    pub first_day: Option<NaiveDate>,
    /// Business days from `first_day` to the first firing check (0: that day), within
    /// `max_delay`; None if it did not fire.
    pub delay: Option<usize>,
    pub detected_on: Option<NaiveDate>,
    /// The alarm was already on the business day before `first_day`.
    pub already_on: bool,
}

/// The benchmark's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShockBenchmark {
    pub events: Vec<EventDetection>,
    /// Every 5th business day from `from` to `to`: checks, firing checks, episodes, years.
    pub weekly_checks: usize,
    pub weekly_firing: usize,
    pub weekly_share: f64,
    pub episodes: usize,
    pub years: f64,
    pub episodes_per_year: f64,
    /// Drift episodes of the weekly checks, confirmed or not (see the module docs).
    pub confirmed: usize,
    pub unconfirmed: usize,
    /// The chance rate: the share of quiet (not firing) weekly checks whose next 4 weeks
    /// would confirm an alarm raised there.
    pub quiet_confirmation_rate: f64,
}

impl ShockBenchmark {
    /// Per event: its first day, when the alarm first fired and the delay in business days
    /// (`>max_delay` when it did not fire within that), one line each under a header.
    pub fn events_table(&self, max_delay: usize) -> String {
        let mut s = format!(
            "{:32} {:10} {:10} {:>5}  note\n",
            "event", "date", "detected", "delay"
        );
        for e in &self.events {
            s.push_str(&format!(
                "{:32} {:10} {:10} {:>5}  {}\n",
                e.event.name,
                e.event.date.to_string(),
                e.detected_on.map_or_else(|| "-".to_string(), |d| d.to_string()),
                e.delay.map_or_else(|| format!(">{max_delay}"), |d| d.to_string()),
                if e.already_on {
                    "alarm already on the day before"
                } else {
                    ""
                }
            ));
        }
        s
    }

    /// The weekly checks of the period `label`: how many fire, the episodes a year and how
    /// many were confirmed, beside the chance rate.
    pub fn weekly_line(&self, label: &str) -> String {
        format!(
            "{label}: {} of {} weekly checks fire ({:.1} %); {} alarm episodes in {:.1} years ({:.2} a year): {} confirmed, {} not, {} undecided; {:.0} % of quiet weeks would confirm by chance",
            self.weekly_firing,
            self.weekly_checks,
            100.0 * self.weekly_share,
            self.episodes,
            self.years,
            self.episodes_per_year,
            self.confirmed,
            self.unconfirmed,
            self.episodes - self.confirmed - self.unconfirmed,
            100.0 * self.quiet_confirmation_rate
        )
    }
}

/// The labeled events of a fixture file's text: `{"events": [...]}`.
pub fn parse_events(json: &str) -> anyhow::Result<Vec<ShockEvent>> {
    #[derive(serde::Deserialize)]
    struct Fixture {
        events: Vec<ShockEvent>,
    }
    Ok(serde_json::from_str::<Fixture>(json)?.events)
}

/// Whether the detector fires on the first `n` log-returns.
fn fires(returns: &[LogReturn], n: usize, settings: &TriggerSettings) -> bool {
    shock::detect(&returns[..n], settings).is_ok_and(|d| d.fired)
}

/// The detector against each event (looking up to `max_delay` business days past its first
/// day) and on the weekly checks from `from` to `to`.
pub fn shock_benchmark(
    returns: &[LogReturn],
    events: &[ShockEvent],
    span: (NaiveDate, NaiveDate),
    max_delay: usize,
    settings: &TriggerSettings,
) -> ShockBenchmark {
    let detections = events
        .iter()
        .map(|event| {
            let first = returns.partition_point(|r| r.date < event.date);
            let delay = (0..=max_delay)
                .take_while(|j| first + j < returns.len())
                .find(|j| fires(returns, first + j + 1, settings));
            EventDetection {
                event: event.clone(),
                first_day: returns.get(first).map(|r| r.date),
                delay,
                detected_on: delay.map(|j| returns[first + j].date),
                already_on: first > 0 && fires(returns, first, settings),
            }
        })
        .collect();
    let (from, to) = span;
    let lo = returns.partition_point(|r| r.date < from);
    let hi = returns.partition_point(|r| r.date <= to);
    let fired: Vec<(NaiveDate, bool)> = (lo..hi)
        .step_by(5)
        .map(|i| (returns[i].date, fires(returns, i + 1, settings)))
        .collect();
    let checks: Vec<AlarmCheck> = fired
        .iter()
        .map(|&(date, drift)| AlarmCheck {
            date,
            drift,
            performance: false,
            performance_baseline_ratio: None,
        })
        .collect();
    let tally = summarize(&checks, returns, &[], settings).drift;
    let quiet: Vec<bool> = fired
        .iter()
        .filter(|f| !f.1)
        .filter_map(|f| confirm_drift(returns, f.0, settings).map(|c| c.confirmed))
        .collect();
    let quiet_confirmation_rate = quiet.iter().filter(|c| **c).count() as f64 / quiet.len().max(1) as f64;
    let years = fired
        .last()
        .map_or(0.0, |l| (l.0 - fired[0].0).num_days() as f64 / 365.25);
    ShockBenchmark {
        events: detections,
        weekly_checks: tally.checks,
        weekly_firing: tally.firing_checks,
        weekly_share: tally.firing_checks as f64 / tally.checks.max(1) as f64,
        episodes: tally.episodes,
        years,
        episodes_per_year: tally.episodes as f64 / years,
        confirmed: tally.confirmed,
        unconfirmed: tally.unconfirmed,
        quiet_confirmation_rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(i: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + Duration::days(i)
    }

    #[test]
    fn episodes_are_runs_of_firing_checks() {
        let f = |v: &[bool]| -> Vec<(NaiveDate, bool)> {
            v.iter().enumerate().map(|(i, b)| (day(i as i64), *b)).collect()
        };
        assert!(episode_spans(&f(&[false, false])).is_empty());
        assert_eq!(
            episode_spans(&f(&[true, true, false, true, false, false, true])),
            [(day(0), day(1), 2), (day(3), day(3), 1), (day(6), day(6), 1)]
        );
    }

    #[test]
    fn drift_confirmation_reads_the_four_weeks_after_the_alarm() {
        let settings = TriggerSettings::default();
        // Alternating +-0.005: baseline median 0 (even count), scale 1.4826 * 0.005, q = 1 /
        // 1.4826^2; the baseline standard deviation is 0.005.
        let returns = |after: f64, n_after: usize| -> Vec<LogReturn> {
            (0..270 + n_after)
                .map(|i| LogReturn {
                    date: day(i as i64),
                    value: if i < 270 { 0.005 } else { after } * if i % 2 == 0 { 1.0 } else { -1.0 },
                })
                .collect()
        };
        let at = day(269);
        let f = confirm_drift(&returns(0.01, 20), at, &settings).unwrap();
        assert!((f.volatility_ratio - 2.0).abs() < 1e-9, "{f:?}");
        assert!(f.confirmed && f.move_sd.abs() < 1e-9);
        let f = confirm_drift(&returns(0.005, 20), at, &settings).unwrap();
        assert!((f.volatility_ratio - 1.0).abs() < 1e-9 && !f.confirmed, "{f:?}");
        assert_eq!(confirm_drift(&returns(0.01, 19), at, &settings), None);
    }

    #[test]
    fn performance_confirmation_needs_the_ratio_to_stay_up() {
        let settings = TriggerSettings {
            min_tracked_recent: 3,
            ..TriggerSettings::default()
        };
        let errors = |model: f64| -> Vec<ErrorPoint> {
            (1..=5)
                .map(|i| ErrorPoint {
                    target_date: day(i),
                    error: model,
                    random_walk_error: 10.0,
                })
                .collect()
        };
        // Baseline ratio 1.0, threshold 15 %: a ratio of 1.2 confirms, 1.1 does not.
        assert_eq!(
            confirm_performance(&errors(12.0), day(0), 1.0, &settings),
            Some(true)
        );
        assert_eq!(
            confirm_performance(&errors(11.0), day(0), 1.0, &settings),
            Some(false)
        );
        // Too few targets after the alarm: undecided.
        assert_eq!(confirm_performance(&errors(12.0), day(3), 1.0, &settings), None);
    }
}
