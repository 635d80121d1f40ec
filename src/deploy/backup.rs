//! Config backups: `configs/backups/chronos_<h>_<UTC %Y%m%d_%H%M%S>.json`, exact copies of the
//! config they replace, written atomically; listing (newest first), pruning and resolving a
//! `--to` argument.
//!
//! Two backups of one horizon in the same second (a deploy and an immediate rollback) do not
//! clobber each other: the second gets a sequence suffix, `chronos_7d_20260104_050000_2.json`,
//! and sorts after the first. We add a suffix rather than wait because `now` is an argument
//! (tests and replays pass fixed times) and sleeping would not change it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};

use super::atomic;
use crate::domain::Horizon;
use crate::exit::{self, ExitCode};

/// The timestamp format in backup names (UTC).
pub const TIMESTAMP_FORMAT: &str = "%Y%m%d_%H%M%S";

/// One backup file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    /// When the backup was taken (UTC), from its name.
    pub taken: NaiveDateTime,
    /// 1 for the first backup in that second, 2, 3, ... for later ones.
    pub seq: u32,
}

impl Backup {
    /// `YYYYmmdd_HHMMSS`, plus `_N` for a same-second sequel: what `--to` accepts.
    pub fn label(&self) -> String {
        label_of(self.taken, self.seq)
    }
}

/// The label of the backup taken at `taken`, `seq`-th in that second.
pub fn label_of(taken: NaiveDateTime, seq: u32) -> String {
    let ts = taken.format(TIMESTAMP_FORMAT).to_string();
    if seq > 1 {
        format!("{ts}_{seq}")
    } else {
        ts
    }
}

/// The time a backup taken at `now` is named by: whole seconds.
pub fn taken_at(now: DateTime<Utc>) -> NaiveDateTime {
    now.naive_utc()
        .with_nanosecond(0)
        .unwrap_or_else(|| now.naive_utc())
}

/// The path of the backup of `h` taken at `taken`, `seq`-th in that second.
pub fn path(configs_dir: &Path, h: Horizon, taken: NaiveDateTime, seq: u32) -> PathBuf {
    backups_dir(configs_dir).join(file_name(h, taken, seq))
}

/// The rule of a default rollback: the first of `newest_first` (backups with their bytes)
/// whose bytes differ from the `current` config's. A failed deploy leaves a backup identical
/// to the restored config, and restoring that would change nothing.
pub fn first_differing<T>(
    current: Option<&[u8]>,
    newest_first: impl IntoIterator<Item = anyhow::Result<(T, Vec<u8>)>>,
) -> anyhow::Result<Option<T>> {
    for b in newest_first {
        let (item, bytes) = b?;
        if current != Some(bytes.as_slice()) {
            return Ok(Some(item));
        }
    }
    Ok(None)
}

/// `<configs>/backups`.
pub fn backups_dir(configs_dir: &Path) -> PathBuf {
    configs_dir.join("backups")
}

fn prefix(h: Horizon) -> String {
    format!("chronos_{}_", h.label())
}

fn file_name(h: Horizon, taken: NaiveDateTime, seq: u32) -> String {
    let ts = taken.format(TIMESTAMP_FORMAT);
    if seq > 1 {
        format!("{}{ts}_{seq}.json", prefix(h))
    } else {
        format!("{}{ts}.json", prefix(h))
    }
}

/// Parses `YYYYmmdd_HHMMSS` or `YYYYmmdd_HHMMSS_N` (N >= 2).
fn parse_label(label: &str) -> Option<(NaiveDateTime, u32)> {
    if label.len() < 15 || !label.is_char_boundary(15) {
        return None;
    }
    let (ts, rest) = label.split_at(15);
    let taken = NaiveDateTime::parse_from_str(ts, TIMESTAMP_FORMAT).ok()?;
    let seq = if rest.is_empty() {
        1
    } else {
        let n = rest.strip_prefix('_')?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = n.parse().ok()?;
        if n < 2 {
            return None;
        }
        n
    };
    Some((taken, seq))
}

/// Parses a backup file name of horizon `h`.
fn parse_name(h: Horizon, name: &str) -> Option<(NaiveDateTime, u32)> {
    parse_label(name.strip_prefix(&prefix(h))?.strip_suffix(".json")?)
}

/// Copies the current config of `h` byte for byte into a new backup taken at `now` and returns
/// its path. The config must exist.
pub fn create(configs_dir: &Path, h: Horizon, now: DateTime<Utc>) -> anyhow::Result<PathBuf> {
    let config = h.config_path(configs_dir);
    let bytes = fs::read(&config).with_context(|| {
        format!(
            "{}: cannot read the config to back it up; check it exists and is readable",
            config.display()
        )
    })?;
    let dir = backups_dir(configs_dir);
    fs::create_dir_all(&dir)
        .with_context(|| format!("{}: cannot create the backups directory", dir.display()))?;
    // Names have whole seconds; keep `taken` equal to what `list` parses back.
    let taken = taken_at(now);
    let mut seq = 1;
    let path = loop {
        let p = dir.join(file_name(h, taken, seq));
        if !p.exists() {
            break p;
        }
        seq += 1;
    };
    atomic::write_atomic_quiet(&path, &bytes)?;
    Ok(path)
}

/// Backups of `h`, newest first (by the time in the name, then the sequence number). Files
/// that do not follow the naming scheme are ignored. A missing directory means no backups.
pub fn list(configs_dir: &Path, h: Horizon) -> anyhow::Result<Vec<Backup>> {
    let dir = backups_dir(configs_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot list backups", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot list backups", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((taken, seq)) = parse_name(h, name) {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                out.push(Backup {
                    path: entry.path(),
                    taken,
                    seq,
                });
            }
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse((b.taken, b.seq)));
    Ok(out)
}

/// Removes all but the newest `keep` backups of `h` and returns the removed paths.
pub fn prune(configs_dir: &Path, h: Horizon, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for b in list(configs_dir, h)?.into_iter().skip(keep) {
        fs::remove_file(&b.path)
            .with_context(|| format!("{}: cannot remove old backup", b.path.display()))?;
        removed.push(b.path);
    }
    if !removed.is_empty() {
        let dir = backups_dir(configs_dir);
        atomic::fsync_dir(&dir).with_context(|| format!("{}: cannot fsync the directory", dir.display()))?;
    }
    Ok(removed)
}

/// The backup a `--to` argument names: a file path (absolute, relative to the working
/// directory, or a file name inside the backups directory), or a timestamp `YYYYmmdd_HHMMSS`
/// (`_N` for a same-second sequel; without it the newest of that second). Errors name what
/// was looked for and the backups that exist (exit 2).
pub fn resolve(configs_dir: &Path, h: Horizon, spec: &str) -> anyhow::Result<PathBuf> {
    let spec = spec.trim();
    let available = list(configs_dir, h)?;
    let known = || {
        if available.is_empty() {
            format!(
                "there are no backups of {h} in {}",
                backups_dir(configs_dir).display()
            )
        } else {
            let labels: Vec<String> = available.iter().take(5).map(Backup::label).collect();
            format!("newest backups of {h}: {}", labels.join(", "))
        }
    };
    if let Some((taken, seq)) = parse_label(spec) {
        let exact = spec.len() > 15;
        let found = available
            .iter()
            .find(|b| b.taken == taken && (!exact || b.seq == seq));
        return found.map(|b| b.path.clone()).ok_or_else(|| {
            exit::failure(
                ExitCode::Usage,
                format!("--to {spec}: no backup of {h} with that timestamp; {}", known()),
            )
        });
    }
    let as_path = Path::new(spec);
    let candidates = [as_path.to_path_buf(), backups_dir(configs_dir).join(as_path)];
    let Some(path) = candidates.into_iter().find(|p| p.is_file()) else {
        return Err(exit::failure(
            ExitCode::Usage,
            format!(
                "--to {spec}: neither a backup file nor a timestamp YYYYmmdd_HHMMSS; {}",
                known()
            ),
        ));
    };
    // A backup of another horizon is almost certainly a slip of the finger.
    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
        let other = name
            .strip_prefix("chronos_")
            .and_then(|r| r.split_once('_'))
            .and_then(|(label, _)| label.parse::<Horizon>().ok());
        if let Some(other) = other {
            if other != h && parse_name(other, name).is_some() {
                return Err(exit::failure(
                    ExitCode::Usage,
                    format!("--to {spec}: that is a backup of {other}, not {h}; pick a chronos_{h}_* backup"),
                ));
            }
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        Utc.from_utc_datetime(&NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap())
    }

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let configs = dir.path().join("configs");
        fs::create_dir_all(&configs).unwrap();
        (dir, configs)
    }

    #[test]
    fn create_copies_exact_bytes_with_utc_name_and_never_clobbers() {
        let (_d, configs) = setup();
        let h = Horizon(7);
        let bytes = b"{\n  \"exact\": \"bytes \xc3\xa9\"\n}\n".to_vec();
        fs::write(h.config_path(&configs), &bytes).unwrap();
        let now = at("2026-01-04 05:06:07.891");
        let b1 = create(&configs, h, now).unwrap();
        assert_eq!(b1, configs.join("backups/chronos_7d_20260104_050607.json"));
        assert_eq!(fs::read(&b1).unwrap(), bytes);
        fs::write(h.config_path(&configs), b"second").unwrap();
        let b2 = create(&configs, h, now).unwrap();
        assert_eq!(b2, configs.join("backups/chronos_7d_20260104_050607_2.json"));
        assert_eq!(fs::read(&b1).unwrap(), bytes, "first backup untouched");
        assert_eq!(fs::read(&b2).unwrap(), b"second");
        let b3 = create(&configs, h, now).unwrap();
        assert!(b3.ends_with("chronos_7d_20260104_050607_3.json"));
        let e = format!("{:#}", create(&configs, Horizon(15), now).unwrap_err());
        assert!(e.contains("chronos_15d.json"), "{e}");
    }

    #[test]
    fn list_is_newest_first_per_horizon_and_prune_keeps_the_newest() {
        let (_d, configs) = setup();
        let h = Horizon(7);
        fs::write(h.config_path(&configs), b"a").unwrap();
        fs::write(Horizon(70).config_path(&configs), b"other").unwrap();
        for t in [
            "2026-01-04 05:00:00",
            "2025-12-28 05:00:00",
            "2026-01-11 05:00:00",
            "2026-01-04 05:00:00",
        ] {
            create(&configs, h, at(t)).unwrap();
        }
        create(&configs, Horizon(70), at("2027-01-01 00:00:00")).unwrap();
        fs::write(backups_dir(&configs).join("chronos_7d_notes.json"), b"x").unwrap();
        let labels: Vec<String> = list(&configs, h).unwrap().iter().map(Backup::label).collect();
        assert_eq!(
            labels,
            [
                "20260111_050000",
                "20260104_050000_2",
                "20260104_050000",
                "20251228_050000"
            ]
        );
        let removed = prune(&configs, h, 2).unwrap();
        assert_eq!(removed.len(), 2);
        let labels: Vec<String> = list(&configs, h).unwrap().iter().map(Backup::label).collect();
        assert_eq!(labels, ["20260111_050000", "20260104_050000_2"]);
        assert_eq!(
            list(&configs, Horizon(70)).unwrap().len(),
            1,
            "other horizon untouched"
        );
        assert!(backups_dir(&configs).join("chronos_7d_notes.json").exists());
        assert!(prune(&configs, h, 5).unwrap().is_empty());
        assert!(list(&configs, Horizon(30)).unwrap().is_empty());
    }

    #[test]
    fn resolve_accepts_timestamps_names_and_paths() {
        let (_d, configs) = setup();
        let h = Horizon(7);
        fs::write(h.config_path(&configs), b"a").unwrap();
        fs::write(Horizon(15).config_path(&configs), b"b").unwrap();
        let first = create(&configs, h, at("2026-01-04 05:00:00")).unwrap();
        let second = create(&configs, h, at("2026-01-04 05:00:00")).unwrap();
        let other = create(&configs, Horizon(15), at("2026-01-04 05:00:00")).unwrap();
        assert_eq!(
            resolve(&configs, h, "20260104_050000").unwrap(),
            second,
            "newest of that second"
        );
        assert_eq!(resolve(&configs, h, "20260104_050000_2").unwrap(), second);
        assert_eq!(resolve(&configs, h, first.to_str().unwrap()).unwrap(), first);
        assert_eq!(
            resolve(&configs, h, "chronos_7d_20260104_050000.json").unwrap(),
            backups_dir(&configs).join("chronos_7d_20260104_050000.json")
        );
        let e = exit::code_of(&resolve(&configs, h, "20250101_000000").unwrap_err());
        assert_eq!(e, ExitCode::Usage);
        let e = format!("{:#}", resolve(&configs, h, "20250101_000000").unwrap_err());
        assert!(e.contains("20260104_050000_2"), "lists what exists: {e}");
        let e = format!("{:#}", resolve(&configs, h, "no-such-file.json").unwrap_err());
        assert!(e.contains("no-such-file.json"), "{e}");
        let e = format!("{:#}", resolve(&configs, h, other.to_str().unwrap()).unwrap_err());
        assert!(e.contains("backup of 15d"), "{e}");
    }
}
