//! The schedule in `cron/model-optimizer.cron`: its guard, run through `date` exactly as the
//! entry runs it, lets the job go on once a week, Sundays 02:xx Santiago time, for every hour
//! of 2026-2028 and on both sides of each daylight-saving change.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc, Weekday};

/// The guard `[ "$(TZ=<zone> date +<format>)" = <value> ]` as the shell sees it.
#[derive(Debug)]
struct Guard {
    zone: String,
    format: String,
    value: String,
}

/// Reads the guard out of the cron entry's command line. In a crontab an unescaped `%` ends
/// the command, so every `%` on the line must be written `\%`; cron passes it on as `%`.
fn cron_guard() -> Guard {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cron/model-optimizer.cron");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && l.contains(" date +"))
        .unwrap_or_else(|| panic!("{}: no entry with a `date +FORMAT` guard", path.display()));
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        assert!(
            *b != b'%' || (i > 0 && bytes[i - 1] == b'\\'),
            "unescaped % at column {i} of the cron entry: {line}"
        );
    }
    let (_, rest) = line.split_once("\"$(TZ=").expect("the guard sets TZ for date");
    let (zone, rest) = rest.split_once(" date +").unwrap();
    let (format, rest) = rest.split_once(")\"").unwrap();
    let rest = rest.trim_start().strip_prefix('=').expect("a `=` comparison");
    let value = rest.split_whitespace().next().unwrap().trim_matches('"');
    Guard {
        zone: zone.to_string(),
        format: format.replace("\\%", "%"),
        value: value.to_string(),
    }
}

/// One `date` process formats every instant: `@<epoch>` lines on its standard input.
fn date_each(zone: &str, format: &str, instants: &[DateTime<Utc>]) -> Vec<String> {
    let mut child = Command::new("date")
        .env("TZ", zone)
        .args(["-f", "-", &format!("+{format}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("GNU date is installed");
    let mut input = String::new();
    for t in instants {
        input.push_str(&format!("@{}\n", t.timestamp()));
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "date -f - failed");
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), instants.len(), "one line per instant from date");
    lines
}

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

#[test]
fn cron_guard_fires_once_a_week_on_sunday_two_am_santiago_through_2028() {
    let guard = cron_guard();
    assert_eq!(guard.zone, "America/Santiago");
    assert!(
        Path::new("/usr/share/zoneinfo").join(&guard.zone).is_file(),
        "tzdata is not installed: date would silently use UTC"
    );

    // Every hour of the Santiago days 2026-01-01..2028-12-31 (Santiago is 3 or 4 hours behind
    // UTC), tried at the top of the hour and at :59 as an hourly cron entry may run late.
    let (start, end) = (utc(2026, 1, 1, 3), utc(2029, 1, 1, 3));
    let mut instants = Vec::new();
    let mut t = start;
    while t < end {
        instants.push(t);
        instants.push(t + Duration::minutes(59));
        t += Duration::hours(1);
    }
    let out = date_each(&guard.zone, &guard.format, &instants);
    let fired: Vec<DateTime<Utc>> = instants
        .iter()
        .zip(&out)
        .filter(|(_, v)| **v == guard.value)
        .map(|(t, _)| *t)
        .collect();
    // Both tries in a firing hour agree; keep the top of each hour.
    let hours: Vec<DateTime<Utc>> = fired.iter().copied().filter(|t| t.minute() == 0).collect();
    assert_eq!(fired.len(), 2 * hours.len(), "a firing hour fires at :00 and :59");

    // Sunday 02:xx in Santiago is Sunday 05:xx UTC (UTC-3, summer) or 06:xx UTC (UTC-4).
    for t in &hours {
        assert!(
            t.weekday() == Weekday::Sun && (t.hour() == 5 || t.hour() == 6),
            "fires at {t}, not Sunday 02:xx Santiago time"
        );
    }
    // Once a week: 2026-01-04 is the first Sunday, 2028-12-31 the last.
    let sundays = (NaiveDate::from_ymd_opt(2028, 12, 31).unwrap()
        - NaiveDate::from_ymd_opt(2026, 1, 4).unwrap())
    .num_days()
        / 7
        + 1;
    assert_eq!(hours.len() as i64, sundays, "one firing per Sunday");
    for pair in hours.windows(2) {
        let gap = (pair[1] - pair[0]).num_hours();
        assert!(
            (167..=169).contains(&gap),
            "{} then {}: not one week apart",
            pair[0],
            pair[1]
        );
    }

    // Chile's 2026 changes: back to UTC-4 at the start of Sunday 5 April, forward to UTC-3 at
    // the start of Sunday 6 September. Sunday 02:00 local on each side of both.
    for (when, what) in [
        (utc(2026, 3, 29, 5), "last Sunday of summer time"),
        (utc(2026, 4, 5, 6), "first Sunday of winter time"),
        (utc(2026, 8, 30, 6), "last Sunday of winter time"),
        (utc(2026, 9, 6, 5), "first Sunday of summer time"),
    ] {
        assert!(hours.contains(&when), "no firing at {when} ({what})");
    }
    let local = date_each(
        &guard.zone,
        "%a %H:%M %z",
        &[utc(2026, 4, 5, 6), utc(2026, 9, 6, 5)],
    );
    assert_eq!(local, ["Sun 02:00 -0400", "Sun 02:00 -0300"]);
}
