//! One run at a time: an exclusive OS lock (`File::try_lock`, flock on Unix) on the root
//! directory itself. Every process using the same root opens the same directory, so they
//! share the lock; and since no file carries it, deleting files under the root (`git clean
//! -fdx` in a checkout, a tidy-up script) cannot let a second run start beside the first. The
//! OS releases the lock when the holder exits or dies, so a crashed run never leaves a stale
//! lock behind.
//!
//! `<root>/.model-optimizer.lock` only says who holds the lock (pid and start time), so that a
//! second run can name the holder; it is rewritten by each holder and may be deleted freely.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::exit::{self, ExitCode};

/// The name of the file naming the holder, under the root.
pub const LOCK_FILE: &str = ".model-optimizer.lock";

/// Who holds the lock, as written into the lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holder's host name: in a container, the container's (its id, by default), so a
    /// pid seen from the host is not taken for a host process.
    #[serde(default)]
    pub host: Option<String>,
    pub pid: u32,
    pub started: DateTime<Utc>,
}

/// This machine's (or container's) host name, when the kernel tells it.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The effective uid of this process (Linux: `/proc/self/status`); None elsewhere.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Refuses (exit 78, before anything changes) a run whose user does not own the root: what it
/// wrote (the lock file, configs, history, git objects) would belong to another user, and the
/// owner's next run, or git itself, would fail on it.
pub fn require_owner(root: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(root)
        .with_context(|| format!("{}: cannot read the root directory", root.display()))?;
    match effective_uid() {
        Some(me) if me != meta.uid() => Err(exit::invalid(format!(
            "{}: owned by uid {}, but this run is uid {me}: files it wrote would belong to another user. \
             Run as the owner: in the container, set UID={} and GID={} in the checkout's .env \
             (as the owner: printf 'UID=%s\\nGID=%s\\n' \"$(id -u)\" \"$(id -g)\" > .env); on the host, \
             run as that user; or give the checkout to this user (chown -R {me} <checkout>)",
            root.display(),
            meta.uid(),
            meta.uid(),
            meta.gid()
        ))),
        _ => Ok(()),
    }
}

/// The held lock; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct RunLock {
    /// The root directory, open and locked.
    _dir: File,
    /// The holder file (None when it could not be written: the lock holds all the same).
    file: Option<File>,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock or fails at once with exit 75 naming the holder. The holder file is
    /// written only once the lock is ours: the holder's details must survive a failed attempt.
    pub fn acquire(root: &Path) -> anyhow::Result<RunLock> {
        let path = root.join(LOCK_FILE);
        let dir = File::open(root).with_context(|| {
            format!(
                "{}: cannot open the root directory to take the run lock; check it exists and is readable",
                root.display()
            )
        })?;
        match dir.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = File::open(&path)
                    .ok()
                    .and_then(|mut f| read_holder(&mut f))
                    .map_or_else(
                        || "holder unknown (it is starting up, or its holder file was deleted)".to_string(),
                        |h| {
                            format!(
                                "pid {} on host {}, started {}",
                                h.pid,
                                h.host.as_deref().unwrap_or("unknown"),
                                h.started.to_rfc3339_opts(SecondsFormat::Secs, true)
                            )
                        },
                    );
                return Err(exit::failure(
                    ExitCode::Locked,
                    format!(
                        "{}: another model-optimizer run holds the lock on this root ({holder}); wait for it to finish and try again",
                        path.display()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("{}: cannot lock the root directory", root.display()));
            }
        }
        let holder = Holder {
            host: host_name(),
            pid: std::process::id(),
            started: Utc::now(),
        };
        let mut text = serde_json::to_string(&holder).expect("holder serializes");
        text.push('\n');
        let file = (|| -> std::io::Result<File> {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            file.write_all(text.as_bytes())?;
            file.sync_data()?;
            Ok(file)
        })()
        .map_err(|e| {
            use std::os::unix::fs::MetadataExt;
            let owner = std::fs::metadata(&path).map_or_else(
                |_| String::new(),
                |m| format!(", the file is owned by uid {}", m.uid()),
            );
            exit::invalid(format!(
                "{}: cannot record the lock holder ({e}{owner}); this file and the root directory \
                 must be writable by this user: remove the file (it only names the holder) or chown \
                 it to the checkout's owner",
                path.display()
            ))
        })?;
        Ok(RunLock {
            _dir: dir,
            file: Some(file),
            path,
        })
    }

    /// The holder file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The details this lock wrote.
    pub fn holder(&self) -> Option<Holder> {
        let mut f = self.file.as_ref()?;
        read_holder(&mut f)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Clear the holder before the lock goes (closing the directory releases it), so an
        // idle root's holder file names nobody.
        if let Some(f) = &self.file {
            let _ = f.set_len(0);
        }
    }
}

fn read_holder<R: Read + Seek>(r: &mut R) -> Option<Holder> {
    r.seek(SeekFrom::Start(0)).ok()?;
    let mut text = String::new();
    r.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_fails_with_75_naming_the_holder_and_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let holder = first.holder().unwrap();
        assert_eq!(holder.pid, std::process::id());
        // flock locks belong to the open file description, so a second open in this same
        // process conflicts exactly like another process would.
        let e = RunLock::acquire(dir.path()).unwrap_err();
        assert_eq!(exit::code_of(&e), ExitCode::Locked);
        let msg = format!("{e:#}");
        assert!(
            msg.contains(LOCK_FILE) && msg.contains(&format!("pid {} on host ", std::process::id())),
            "{msg}"
        );
        // The failed attempt did not wipe the holder's details.
        assert_eq!(first.holder().unwrap(), holder);
        drop(first);
        assert_eq!(std::fs::read(dir.path().join(LOCK_FILE)).unwrap(), b"");
        let again = acquire_once_released(dir.path());
        assert_eq!(again.path(), dir.path().join(LOCK_FILE));
    }

    /// The lock of `root` once its holder has dropped it. A child forked by a test running in
    /// parallel holds a copy of every descriptor until it execs (they are close-on-exec), so
    /// a released lock may take a moment to free.
    fn acquire_once_released(root: &std::path::Path) -> RunLock {
        (0..100)
            .find_map(|_| {
                RunLock::acquire(root).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                })
            })
            .expect("the lock is free once its holder dropped it")
    }

    #[test]
    fn deleting_the_holder_file_does_not_release_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        // What `git clean -fdx` or `rm` does to an untracked file.
        std::fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
        let e = RunLock::acquire(dir.path()).unwrap_err();
        assert_eq!(exit::code_of(&e), ExitCode::Locked);
        assert!(format!("{e:#}").contains("holder unknown"), "{e:#}");
        // The same root reached by another path shares the lock.
        let other = dir.path().join(".").join("");
        assert_eq!(
            exit::code_of(&RunLock::acquire(&other).unwrap_err()),
            ExitCode::Locked
        );
        drop(first);
        acquire_once_released(dir.path());
    }

    #[test]
    fn a_holder_file_that_cannot_be_written_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: unwritable for any user, root included.
        std::fs::create_dir(dir.path().join(LOCK_FILE)).unwrap();
        let e = RunLock::acquire(dir.path()).unwrap_err();
        assert_eq!(exit::code_of(&e), ExitCode::Invalid);
        let msg = format!("{e:#}");
        assert!(
            msg.contains(&dir.path().join(LOCK_FILE).display().to_string())
                && msg.contains("cannot record the lock holder")
                && msg.contains("remove the file"),
            "{msg}"
        );
    }

    #[test]
    fn unwritable_root_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = format!("{:#}", RunLock::acquire(&dir.path().join("missing")).unwrap_err());
        assert!(e.contains("missing") && e.contains("cannot open"), "{e}");
    }
}
