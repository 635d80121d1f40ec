//! Crash-safe file replacement, the one implementation for configs, backups, the journal and
//! every parquet file: temp file in the same directory, write, fsync, rename over the target,
//! fsync the directory. A reader (or a process that starts after a crash) sees either the
//! complete old file or the complete new one, never a mix; recovery sweeps stray temp files
//! by their one name pattern.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::failpoint;

/// Suffix of every temp file this module creates; `sweep_temp_files` removes only names of
/// the form `.<target name>.<pid>.tmp` so nothing a person put there is touched.
const TEMP_SUFFIX: &str = ".tmp";

/// The temp file `write_atomic` uses for `target`: `.chronos_7d.json.<pid>.tmp` next to it.
/// Same directory, because `rename` is only atomic within one filesystem.
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "unnamed".into(), |n| n.to_string_lossy().into_owned());
    target.with_file_name(format!(".{name}.{}{TEMP_SUFFIX}", std::process::id()))
}

/// Replaces `path` with `bytes` atomically, with the crash-test failpoints `after_temp_write`
/// and `after_rename`. Use it for the forecaster configs.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_hooked(path, bytes, Some("after_temp_write"), Some("after_rename"))
}

/// The same replacement for data files (creating the directory), with an optional failpoint
/// between the fsync of the temp file and the rename.
pub fn write_atomic_file(path: &Path, bytes: &[u8], before_rename: Option<&str>) -> anyhow::Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create the directory", dir.display()))?;
    write_atomic_hooked(path, bytes, before_rename, None)
}

/// The same replacement without failpoints: for backups and the journal, so that a failpoint
/// named after a config write fires at the config write and not at an earlier backup copy.
pub(crate) fn write_atomic_quiet(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_hooked(path, bytes, None, None)
}

fn write_atomic_hooked(
    path: &Path,
    bytes: &[u8],
    before_rename: Option<&str>,
    after_rename: Option<&str>,
) -> anyhow::Result<()> {
    let dir = parent_dir(path);
    let tmp = temp_path(path);
    // The replacement keeps the permission bits of the file it replaces (a config a person made
    // group-readable only stays so); a new file gets the default ones.
    let keep_mode = fs::symlink_metadata(path)
        .ok()
        .filter(fs::Metadata::is_file)
        .map(|m| m.permissions());
    let result = (|| -> io::Result<()> {
        let mut f = create_temp(&tmp)?;
        if let Some(p) = keep_mode {
            f.set_permissions(p)?;
        }
        f.write_all(bytes)?;
        // The data must be on disk before the rename makes it visible under the real name;
        // otherwise a power cut can leave a renamed but empty file.
        f.sync_all()?;
        drop(f);
        if let Some(name) = before_rename {
            failpoint::hit(name);
        }
        fs::rename(&tmp, path)?;
        Ok(())
    })();
    if let Err(e) = result {
        // Best effort: the temp file is ours and useless now; recovery would sweep it anyway.
        let _ = fs::remove_file(&tmp);
        let fix = io_fix(&e);
        return Err(e).with_context(|| {
            format!(
                "{}: cannot write atomically (via {}); {fix}",
                path.display(),
                tmp.display()
            )
        });
    }
    if let Some(name) = after_rename {
        failpoint::hit(name);
    }
    // The rename is a change to the directory: sync it so the new name survives a power cut.
    fsync_dir(&dir).with_context(|| {
        format!(
            "{}: cannot fsync the directory after replacing {}",
            dir.display(),
            path.display()
        )
    })?;
    Ok(())
}

/// What to do about a failed write, by its cause.
pub(crate) fn io_fix(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(28) => "the disk is full: free space on it and run again",
        Some(1) => "the file or its directory refuses changes (immutable or append-only? see `lsattr`)",
        Some(13) => "check the permissions of the file and its directory",
        Some(30) => "the filesystem is mounted read-only",
        _ => "check the directory is writable and the disk not full",
    }
}

/// Opens a fresh temp file. A leftover with our pid can only come from an earlier process that
/// had the same pid and crashed (we hold the run lock), so it is replaced.
fn create_temp(tmp: &Path) -> io::Result<File> {
    match OpenOptions::new().write(true).create_new(true).open(tmp) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(tmp)?;
            OpenOptions::new().write(true).create_new(true).open(tmp)
        }
        other => other,
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// fsync on a directory handle (POSIX); other systems have no equivalent and skip it.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Whether `name` is one of our temp files: `.<something>.<digits>.tmp`.
pub fn is_temp_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(TEMP_SUFFIX) else {
        return false;
    };
    let Some(rest) = stem.strip_prefix('.') else {
        return false;
    };
    match rest.rsplit_once('.') {
        Some((target, pid)) => {
            !target.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Whether `dir` holds a temp file [`sweep_temp_files`] would remove (read-only; a missing
/// directory holds none).
pub fn has_temp_files(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            is_temp_name(&e.file_name().to_string_lossy()) && e.file_type().is_ok_and(|t| t.is_file())
        })
    })
}

/// Removes temp files a crashed write left in `dir` and returns them (sorted). Call it while
/// holding the run lock: then no write of ours is in flight, so every temp file is stray.
/// A missing directory has nothing to sweep.
pub fn sweep_temp_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "{}: cannot list the directory to remove stray temp files",
                    dir.display()
                )
            });
        }
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot list the directory", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_temp_name(name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        fs::remove_file(&path).with_context(|| {
            format!(
                "{}: cannot remove stray temp file; remove it by hand",
                path.display()
            )
        })?;
        removed.push(path);
    }
    if !removed.is_empty() {
        fsync_dir(dir).with_context(|| format!("{}: cannot fsync the directory", dir.display()))?;
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("chronos_7d.json");
        fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new contents\n").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new contents\n");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("chronos_7d.json")]);
        // Creating a new file works too.
        let q = dir.path().join("fresh.json");
        write_atomic(&q, b"x").unwrap();
        assert_eq!(fs::read(&q).unwrap(), b"x");
    }

    #[test]
    fn temp_name_is_recognizable_and_stale_same_pid_temp_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("chronos_7d.json");
        let tmp = temp_path(&p);
        let name = tmp.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(name, format!(".chronos_7d.json.{}.tmp", std::process::id()));
        assert!(is_temp_name(&name));
        fs::write(&tmp, b"garbage from a crash").unwrap();
        write_atomic(&p, b"ok").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"ok");
        assert!(!tmp.exists());
    }

    #[test]
    fn write_into_missing_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope").join("chronos_7d.json");
        let e = format!("{:#}", write_atomic(&p, b"x").unwrap_err());
        assert!(
            e.contains("chronos_7d.json") && e.contains("cannot write atomically"),
            "{e}"
        );
    }

    #[test]
    fn sweep_removes_only_our_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join(".chronos_7d.json.4242.tmp"), b"half").unwrap();
        fs::write(d.join(".chronos_7d_20260104_050000.json.17.tmp"), b"half").unwrap();
        for keep in [
            "chronos_7d.json",
            "notes.tmp",
            ".hidden.tmp",
            ".x.12a.tmp",
            ".x.1.tmp.bak",
        ] {
            fs::write(d.join(keep), b"keep").unwrap();
        }
        let removed = sweep_temp_files(d).unwrap();
        let names: Vec<_> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            vec![
                ".chronos_7d.json.4242.tmp",
                ".chronos_7d_20260104_050000.json.17.tmp"
            ]
        );
        let mut left: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                ".hidden.tmp",
                ".x.1.tmp.bak",
                ".x.12a.tmp",
                "chronos_7d.json",
                "notes.tmp"
            ]
        );
        assert!(sweep_temp_files(&d.join("missing")).unwrap().is_empty());
    }
}
