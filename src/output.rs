//! Everything written to stdout: one result type per command, rendered either as human
//! tables (comfy-table) or as JSON, chosen once. Also the terminal-only progress bar.

use std::io::{IsTerminal, Write};

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde::Serialize;

/// A command's result: serializable for `--json`, renderable as text for people.
pub trait Render: Serialize {
    fn render(&self) -> String;
}

/// Prints a result on stdout in the chosen format.
pub fn emit<R: Render>(json: bool, result: &R) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, result)?;
        writeln!(out)?;
    } else {
        let text = result.render();
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A table with a header row.
pub fn table<S: AsRef<str>>(header: &[&str], rows: impl IntoIterator<Item = Vec<S>>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        t.add_row(row.iter().map(AsRef::as_ref));
    }
    t.to_string()
}

/// The width text output fits: `COLUMNS` when set to a number, else the terminal's width
/// when stdout is one, else 100.
pub fn width() -> usize {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok());
    columns
        .filter(|c| *c >= 20)
        .or_else(|| Table::new().width().map(usize::from))
        .unwrap_or(DEFAULT_WIDTH)
}

/// The width when neither `COLUMNS` nor a terminal says otherwise.
pub const DEFAULT_WIDTH: usize = 100;

/// A table with a header row; when it is wider than `width`, its cells are wrapped so that
/// no line is.
pub fn table_fitted<S: AsRef<str>>(
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<S>>,
    width: usize,
) -> String {
    let rows: Vec<Vec<S>> = rows.into_iter().collect();
    let natural = table(
        header,
        rows.iter()
            .map(|r| r.iter().map(AsRef::as_ref).collect::<Vec<&str>>()),
    );
    if natural.lines().all(|l| l.chars().count() <= width) {
        return natural;
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(u16::try_from(width).unwrap_or(u16::MAX))
        .set_header(header.iter().copied());
    for row in &rows {
        t.add_row(row.iter().map(AsRef::as_ref));
    }
    t.to_string()
}

/// `text` wrapped at spaces into lines of at most `width` characters; lines after the first
/// start with `indent`. A word longer than a line is cut.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let lead: String = text.chars().take_while(|c| *c == ' ').collect();
    let room = width.saturating_sub(indent.chars().count()).max(1);
    let words = text.split(' ').filter(|w| !w.is_empty()).flat_map(|w| {
        let chars: Vec<char> = w.chars().collect();
        chars
            .chunks(room)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
    });
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in words {
        let limit = if lines.is_empty() {
            width.saturating_sub(lead.len())
        } else {
            room
        };
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > limit {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    lines.push(line);
    // Leading spaces (an indented line) stay.
    format!("{lead}{}", lines.join(&format!("\n{indent}")))
}

/// Each of `lines` wrapped as [`wrap`] does, each ending in a newline.
pub fn wrap_lines(lines: &[String], width: usize, indent: &str) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&wrap(l, width, indent));
        out.push('\n');
    }
    out
}

/// A two-column key/value table.
pub fn kv<S: AsRef<str>>(rows: impl IntoIterator<Item = (String, S)>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    for (k, v) in rows {
        t.add_row([k.as_str(), v.as_ref()]);
    }
    t.to_string()
}

/// An optional number with `prec` decimals, or `-`.
pub fn num(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

/// An optional value, or `-`.
pub fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |x| x.to_string())
}

/// A progress bar drawn on stderr only when stderr is a terminal; silent otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn new(len: u64, label: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(len);
            b.set_style(
                indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
            b
        });
        Progress { bar }
    }

    pub fn set_message(&self, msg: String) {
        if let Some(b) = &self.bar {
            b.set_message(msg);
        }
    }

    pub fn inc(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    pub fn set_length(&self, len: u64) {
        if let Some(b) = &self.bar {
            b.set_length(len);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_fit_and_keep_every_word() {
        let text =
            "rejected: RMSE improvement -0.4 % (needs >= 5 %) and MAPE improvement 0.1 % (needs >= 3 %)";
        let w = wrap(text, 30, "    ");
        assert!(w.lines().all(|l| l.chars().count() <= 30), "{w}");
        assert!(w.lines().skip(1).all(|l| l.starts_with("    ")), "{w}");
        assert_eq!(
            w.split_whitespace().collect::<Vec<_>>(),
            text.split(' ').collect::<Vec<_>>()
        );
        let long = wrap(&"x".repeat(25), 10, "  ");
        assert!(long.lines().all(|l| l.chars().count() <= 10), "{long}");
        assert_eq!(long.replace(['\n', ' '], ""), "x".repeat(25));
        assert_eq!(wrap("", 10, ""), "");
    }

    #[test]
    fn fitted_tables_wrap_their_cells() {
        let long = "a verdict that is far too long for one narrow column of a table ".repeat(3);
        let t = table_fitted(&["horizon", "verdict"], [vec!["7d", long.as_str()]], 40);
        assert!(t.lines().all(|l| l.chars().count() <= 40), "{t}");
    }
}
