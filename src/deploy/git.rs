//! Versioning of config changes with git2 (the only module that knows git2): find the
//! repository, commit exactly one file without disturbing anything a person staged or
//! modified, revert such a commit, and look up the last commit that touched a file.
//!
//! The commit is built from HEAD's tree plus the new blob at that one path, and the index gets
//! that one entry updated; every other index entry (a person's staged work) and every working
//! tree file stays exactly as it was. The signature is explicit (containers have no git
//! identity). libgit2 writes objects and refs via temp file + rename, so an abort at any point
//! leaves the repository consistent (`git fsck` clean, HEAD valid).

use std::fs;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use git2::{ErrorCode, IndexEntry, IndexTime, ObjectType, Oid, Repository, Signature, Sort, Tree};

use crate::config::GitMode;
use crate::exit;

/// A commit id (full hex).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct CommitId(String);

impl CommitId {
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// The 7-character abbreviation git shows by default.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(7)]
    }
}

impl std::fmt::Display for CommitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Oid> for CommitId {
    fn from(o: Oid) -> Self {
        CommitId(o.to_string())
    }
}

/// The last commit that changed a file, for `status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CommitInfo {
    /// The abbreviated id, as `git log --oneline` shows it.
    pub id: String,
    pub full_id: CommitId,
    pub summary: String,
    pub time: DateTime<Utc>,
}

/// The repository that versions a configs directory (see [`find_repository`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigRepo {
    root: PathBuf,
}

impl ConfigRepo {
    /// The repository containing `configs_dir` per `git.mode` (None: off, or auto without one).
    pub fn discover(configs_dir: &Path, mode: GitMode) -> anyhow::Result<Option<ConfigRepo>> {
        Ok(find_repository(configs_dir, mode)?.map(|root| ConfigRepo { root }))
    }

    /// Its working directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// See [`last_commit_touching`].
    pub fn last_commit_touching(&self, file: &Path) -> anyhow::Result<Option<CommitInfo>> {
        last_commit_touching(&self.root, file)
    }

    /// See [`committed_bytes`].
    pub fn committed_bytes(&self, file: &Path) -> anyhow::Result<Option<Vec<u8>>> {
        committed_bytes(&self.root, file)
    }
}

/// git2's own message, without the `; class=...; code=...` tail its Display adds.
fn msg(e: &git2::Error) -> String {
    e.message().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// libgit2 names the offending directory in quotes; fall back to the path we asked about.
fn owner_error(what: &Path, e: &git2::Error) -> anyhow::Error {
    let message = e.message();
    let named = message
        .split_once('\'')
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(p, _)| p.trim_end_matches('/'));
    let path = named.map_or_else(|| what.to_path_buf(), PathBuf::from);
    crate::exit::invalid(format!(
        "{}: git repository is owned by another user; run model-optimizer as its owner (in the \
         container: that user's UID and GID in the checkout's .env), chown it to the user running \
         model-optimizer, or on a host run `git config --global --add safe.directory {}`",
        path.display(),
        path.display()
    ))
}

fn lock_error(lock: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: git index is locked (a git command is running, or one crashed and left the lock); if no git process is running, remove it: rm {}",
        lock.display(),
        lock.display()
    )
}

/// Maps a git2 error at `what` (a path) to one line, with the fix for the two known traps.
fn git_error(repo: Option<&Repository>, what: &Path, action: &str, e: &git2::Error) -> anyhow::Error {
    match e.code() {
        ErrorCode::Owner => owner_error(what, e),
        ErrorCode::Locked => match repo {
            Some(r) if r.path().join("index.lock").exists() => lock_error(&r.path().join("index.lock")),
            _ => anyhow::anyhow!(
                "{}: {action}: {} (a git command holds a lock; if none is running, remove the stale *.lock file it names)",
                what.display(),
                msg(e)
            ),
        },
        _ => anyhow::anyhow!("{}: {action}: {}", what.display(), msg(e)),
    }
}

/// The working directory of the repository containing `configs_dir`, per `git.mode`:
/// `off` -> None; `auto` -> None with a warning when there is no repository; `require` -> an
/// error (exit 78) when there is none. A repository owned by another user is an error in
/// both `auto` and `require`: silently not versioning would hide a real problem.
pub fn find_repository(configs_dir: &Path, mode: GitMode) -> anyhow::Result<Option<PathBuf>> {
    if mode == GitMode::Off {
        return Ok(None);
    }
    match Repository::discover(configs_dir) {
        Ok(repo) => match repo.workdir() {
            Some(w) => Ok(Some(w.to_path_buf())),
            None => Err(anyhow::anyhow!(
                "{}: the repository at {} is bare, so there is no working tree to commit configs in; set git.mode = \"off\" or keep configs in a normal checkout",
                configs_dir.display(),
                repo.path().display()
            )),
        },
        Err(e) if e.code() == ErrorCode::NotFound => {
            if mode == GitMode::Require {
                Err(exit::invalid(format!(
                    "{}: git.mode = \"require\" but no git repository contains it; run `git init` there or set git.mode = \"auto\" or \"off\"",
                    configs_dir.display()
                )))
            } else {
                tracing::warn!(
                    configs = %configs_dir.display(),
                    "no git repository contains the configs directory; config changes are not versioned (git.mode = auto)"
                );
                Ok(None)
            }
        }
        Err(e) => Err(git_error(None, configs_dir, "cannot open the git repository", &e)),
    }
}

/// The working directory of the repository containing `dir`, if any, without warnings or
/// errors: for reports, where a missing repository is just "unknown".
pub(crate) fn discover_quiet(dir: &Path) -> Option<PathBuf> {
    Repository::discover(dir)
        .ok()
        .and_then(|r| r.workdir().map(Path::to_path_buf))
}

/// Removes the lock files a git write killed mid-way leaves behind (`index.lock`, and the
/// `.lock` of HEAD and of the branch HEAD names), when they were created at or after `since`:
/// the start of an interrupted operation of ours whose process is gone (recovery holds the
/// run lock). A lock older than that belongs to someone else and is left for a person (the
/// commit then fails with the `rm` command to run). Returns the files removed.
pub fn clear_stale_locks(repo_root: &Path, since: DateTime<Utc>) -> anyhow::Result<Vec<PathBuf>> {
    let repo = open(repo_root)?;
    let git_dir = repo.path().to_path_buf();
    let mut candidates = vec![git_dir.join("index.lock"), git_dir.join("HEAD.lock")];
    let branch = repo
        .find_reference("HEAD")
        .ok()
        .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_string));
    if let Some(target) = branch {
        candidates.push(git_dir.join(format!("{target}.lock")));
    }
    // File times can trail the clock by a timestamp tick: one second of slack.
    let since = std::time::SystemTime::from(since) - std::time::Duration::from_secs(1);
    let mut removed = Vec::new();
    for lock in candidates {
        let Ok(modified) = fs::metadata(&lock).and_then(|m| m.modified()) else {
            continue;
        };
        if modified >= since {
            fs::remove_file(&lock).map_err(|e| {
                anyhow::anyhow!(
                    "{}: cannot remove the stale git lock: {e}; remove it by hand",
                    lock.display()
                )
            })?;
            removed.push(lock);
        }
    }
    Ok(removed)
}

fn open(repo_root: &Path) -> anyhow::Result<Repository> {
    Repository::open(repo_root).map_err(|e| git_error(None, repo_root, "cannot open the git repository", &e))
}

/// Checks, before anything changes, that a commit can be made: the repository opens (owner
/// check), no `index.lock` is present, and it is in a state a person would commit in (see
/// [`check_state`]).
pub fn check_ready(repo_root: &Path) -> anyhow::Result<()> {
    let repo = open(repo_root)?;
    let lock = repo.path().join("index.lock");
    if lock.exists() {
        return Err(lock_error(&lock));
    }
    check_state(&repo, repo_root)
}

/// Refuses (exit 78, one line with the fix) a repository a person would not commit into: HEAD
/// detached, a merge, rebase, cherry-pick, revert, bisect or `git am` under way, or unresolved
/// conflicts in the index. Committing there would put the config on no branch, or fold it
/// into (and silently conclude) someone else's unfinished operation.
fn check_state(repo: &Repository, repo_root: &Path) -> anyhow::Result<()> {
    use git2::RepositoryState as S;
    let root = repo_root.display();
    let unfinished = match repo.state() {
        S::Clean => None,
        S::Merge => Some((
            "a merge",
            "finish it with `git commit` or abandon it with `git merge --abort`",
        )),
        S::Rebase | S::RebaseInteractive | S::RebaseMerge => Some((
            "a rebase",
            "finish it with `git rebase --continue` or abandon it with `git rebase --abort`",
        )),
        S::ApplyMailbox | S::ApplyMailboxOrRebase => Some((
            "a `git am`",
            "finish it with `git am --continue` or abandon it with `git am --abort`",
        )),
        S::CherryPick | S::CherryPickSequence => Some((
            "a cherry-pick",
            "finish it with `git cherry-pick --continue` or abandon it with `git cherry-pick --abort`",
        )),
        S::Revert | S::RevertSequence => Some((
            "a revert",
            "finish it with `git revert --continue` or abandon it with `git revert --abort`",
        )),
        S::Bisect => Some(("a bisect", "end it with `git bisect reset`")),
    };
    if let Some((what, fix)) = unfinished {
        return Err(exit::invalid(format!(
            "{root}: {what} is in progress in the git repository; {fix} (in {root}), then run model-optimizer again"
        )));
    }
    if repo.head_detached().unwrap_or(false) {
        let at = repo
            .head()
            .ok()
            .and_then(|h| h.target())
            .map_or_else(String::new, |o| format!(" at {}", &o.to_string()[..7]));
        return Err(exit::invalid(format!(
            "{root}: HEAD is detached{at}, so a commit would be on no branch; switch to the branch the configs live on (`git -C {root} switch <branch>`), then run model-optimizer again"
        )));
    }
    let index = repo
        .index()
        .map_err(|e| git_error(Some(repo), repo_root, "cannot read the git index", &e))?;
    if index.has_conflicts() {
        let mut paths: Vec<String> = index
            .conflicts()
            .map(|it| {
                it.filter_map(Result::ok)
                    .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                    .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        paths.dedup();
        return Err(exit::invalid(format!(
            "{root}: the git index has unresolved conflicts ({}); resolve them and commit (or abort the operation that left them), then run model-optimizer again",
            paths.join(", ")
        )));
    }
    Ok(())
}

/// The command a person runs to commit `file` alone with `summary` as the message (for
/// reports when a commit could not be made): `git commit -- <path>` commits only that path
/// and leaves everything else staged as it is.
pub fn commit_command(repo_root: &Path, file: &Path, summary: &str) -> String {
    let rel = open(repo_root)
        .ok()
        .and_then(|r| relative_path(&r, file).ok())
        .unwrap_or_else(|| file.display().to_string());
    format!(
        "git -C {} commit -m {} -- {}",
        shell_quote(&repo_root.display().to_string()),
        shell_quote(summary),
        shell_quote(&rel)
    )
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:@=+,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What [`settle_file`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// HEAD lacked the file's bytes: committed.
    Committed(CommitId),
    /// HEAD had them, but the index held another version (an interrupted commit's): reset.
    ClearedStaged,
    /// HEAD and the index already agreed with the file.
    InSync,
}

/// Makes HEAD and the index agree with `file` as it is on disk (absent included), touching
/// only that path: commits it with `message` when HEAD differs, and otherwise just resets its
/// index entry (clearing a change left staged by an interrupted commit).
pub fn settle_file(
    repo_root: &Path,
    file: &Path,
    message: &str,
    author_name: &str,
    author_email: &str,
) -> anyhow::Result<Settled> {
    let content = match fs::read(file) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => anyhow::bail!("{}: cannot read the file to commit: {e}", file.display()),
    };
    let staged_differs = {
        let repo = open(repo_root)?;
        let rel = relative_path(&repo, file)?;
        let in_index = repo
            .index()
            .ok()
            .and_then(|i| i.get_path(Path::new(&rel), 0).map(|e| e.id));
        let in_head = head_commit(&repo)
            .ok()
            .flatten()
            .and_then(|c| c.tree().ok())
            .and_then(|t| entry_id(&t, &rel));
        in_index != in_head
    };
    match commit_content(
        repo_root,
        file,
        content.as_deref(),
        message,
        author_name,
        author_email,
    )? {
        Some(id) => Ok(Settled::Committed(id)),
        None if staged_differs => Ok(Settled::ClearedStaged),
        None => Ok(Settled::InSync),
    }
}

/// `file` relative to the repository's working directory, as the `/`-separated path git uses.
fn relative_path(repo: &Repository, file: &Path) -> anyhow::Result<String> {
    let workdir = repo
        .workdir()
        .ok_or_else(|| anyhow::anyhow!("{}: bare repository has no working tree", repo.path().display()))?;
    let workdir = fs::canonicalize(workdir)
        .map_err(|e| anyhow::anyhow!("{}: cannot resolve the working tree: {e}", workdir.display()))?;
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = file
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{}: not a file path", file.display()))?;
    let parent = fs::canonicalize(parent)
        .map_err(|e| anyhow::anyhow!("{}: cannot resolve the directory: {e}", parent.display()))?;
    let rel = parent.join(name);
    let rel = rel.strip_prefix(&workdir).map_err(|_| {
        anyhow::anyhow!(
            "{}: is outside the repository working tree {}",
            file.display(),
            workdir.display()
        )
    })?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(
                s.to_str()
                    .ok_or_else(|| anyhow::anyhow!("{}: path is not UTF-8", file.display()))?
                    .to_string(),
            ),
            _ => anyhow::bail!(
                "{}: unexpected path component in {}",
                file.display(),
                rel.display()
            ),
        }
    }
    if parts.is_empty() || parts[0] == ".git" {
        anyhow::bail!("{}: not a file of the working tree", file.display());
    }
    Ok(parts.join("/"))
}

fn head_commit(repo: &Repository) -> Result<Option<git2::Commit<'_>>, git2::Error> {
    match repo.head() {
        Ok(r) => Ok(Some(r.peel_to_commit()?)),
        Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

const MODE_BLOB: i32 = 0o100_644;
const MODE_EXEC: i32 = 0o100_755;
const MODE_TREE: i32 = 0o040_000;

/// `base` with the entry at `path` replaced by `new` (None removes it). Returns None when the
/// resulting tree is empty, so an emptied subdirectory disappears as it would in git.
fn edit_tree(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    path: &[&str],
    new: Option<Oid>,
) -> Result<Option<Oid>, git2::Error> {
    let mut tb = repo.treebuilder(base)?;
    let (name, rest) = path.split_first().expect("paths have at least one component");
    let existing = tb.get(name)?.map(|e| (e.id(), e.kind(), e.filemode()));
    if rest.is_empty() {
        match new {
            Some(oid) => {
                // Keep an executable bit a person set; anything else becomes a plain blob.
                let mode = match existing {
                    Some((_, Some(ObjectType::Blob), m)) if m == MODE_EXEC => MODE_EXEC,
                    _ => MODE_BLOB,
                };
                tb.insert(name, oid, mode)?;
            }
            None => {
                if existing.is_some() {
                    tb.remove(name)?;
                }
            }
        }
    } else {
        let sub = match existing {
            Some((id, Some(ObjectType::Tree), _)) => Some(repo.find_tree(id)?),
            _ => None,
        };
        match edit_tree(repo, sub.as_ref(), rest, new)? {
            Some(oid) => {
                tb.insert(name, oid, MODE_TREE)?;
            }
            None => {
                if existing.is_some() {
                    tb.remove(name)?;
                }
            }
        }
    }
    if tb.is_empty() {
        Ok(None)
    } else {
        tb.write().map(Some)
    }
}

fn entry_id(tree: &Tree<'_>, rel: &str) -> Option<Oid> {
    tree.get_path(Path::new(rel)).ok().map(|e| e.id())
}

/// Commits the current bytes of `file` (inside the working tree of `repo_root`) as the only
/// change on top of HEAD (or as the root commit on an unborn branch). Returns None when HEAD
/// already has exactly these bytes at that path (nothing to commit).
pub fn commit_file(
    repo_root: &Path,
    file: &Path,
    message: &str,
    author_name: &str,
    author_email: &str,
) -> anyhow::Result<Option<CommitId>> {
    let bytes = fs::read(file)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the file to commit: {e}", file.display()))?;
    commit_content(repo_root, file, Some(&bytes), message, author_name, author_email)
}

/// Adds a commit that sets `file` to `content` (None: removes it from the tree), touching only
/// that path, like `commit_file`. Used when a deploy fails after its commit landed: the caller
/// restores the file on disk first, then records the restoration.
pub fn revert_file_commit(
    repo_root: &Path,
    file: &Path,
    content: Option<&[u8]>,
    message: &str,
    author_name: &str,
    author_email: &str,
) -> anyhow::Result<Option<CommitId>> {
    commit_content(repo_root, file, content, message, author_name, author_email)
}

fn commit_content(
    repo_root: &Path,
    file: &Path,
    content: Option<&[u8]>,
    message: &str,
    author_name: &str,
    author_email: &str,
) -> anyhow::Result<Option<CommitId>> {
    let repo = open(repo_root)?;
    let lock = repo.path().join("index.lock");
    if lock.exists() {
        return Err(lock_error(&lock));
    }
    check_state(&repo, repo_root)?;
    let rel = relative_path(&repo, file)?;
    let err = |action: &str, e: &git2::Error| git_error(Some(&repo), file, action, e);
    let sig = Signature::now(author_name, author_email).map_err(|e| {
        anyhow::anyhow!("git.author_name / git.author_email ({author_name} <{author_email}>) are not a valid signature: {}; fix them in configs/optimizer.toml", msg(&e))
    })?;

    let head = head_commit(&repo).map_err(|e| err("cannot read HEAD", &e))?;
    let head_tree = match &head {
        Some(c) => Some(c.tree().map_err(|e| err("cannot read HEAD's tree", &e))?),
        None => None,
    };
    let blob = match content {
        Some(b) => Some(repo.blob(b).map_err(|e| err("cannot write the blob", &e))?),
        None => None,
    };
    let components: Vec<&str> = rel.split('/').collect();
    let tree_id = match edit_tree(&repo, head_tree.as_ref(), &components, blob)
        .map_err(|e| err("cannot build the tree", &e))?
    {
        Some(id) => id,
        None => repo
            .treebuilder(None)
            .and_then(|tb| tb.write())
            .map_err(|e| err("cannot build the tree", &e))?,
    };

    // Index first, commit second: a crash in between leaves the change staged (as after
    // `git add`), which `git status` explains; the reverse order would show the committed
    // change as a staged reversal.
    // The index entry gets the mode the commit records (HEAD's executable bit is kept, see
    // `edit_tree`): a mode a person changed on disk stays their unstaged change.
    let mode = match head_tree.as_ref().and_then(|t| t.get_path(Path::new(&rel)).ok()) {
        Some(e) if e.kind() == Some(ObjectType::Blob) && e.filemode() == MODE_EXEC => MODE_EXEC,
        _ => MODE_BLOB,
    };
    let mut index = repo.index().map_err(|e| err("cannot read the git index", &e))?;
    let prior = index.get_path(Path::new(&rel), 0);
    set_index_entry(&repo, &mut index, &rel, content, blob, mode)
        .map_err(|e| err("cannot update the git index", &e))?;
    index.write().map_err(|e| err("cannot write the git index", &e))?;
    crate::failpoint::hit("after_index_write");

    if head_tree.as_ref().is_some_and(|t| t.id() == tree_id) {
        return Ok(None);
    }
    let tree = repo
        .find_tree(tree_id)
        .map_err(|e| err("cannot read the new tree", &e))?;
    let parents: Vec<&git2::Commit<'_>> = head.iter().collect();
    let mut text = message.trim_end().to_string();
    text.push('\n');
    match repo.commit(Some("HEAD"), &sig, &sig, &text, &tree, &parents) {
        Ok(oid) => Ok(Some(oid.into())),
        Err(e) => {
            // Put the index entry back so the failed commit leaves nothing staged.
            let _ = restore_index_entry(&repo, &rel, prior);
            Err(err("cannot create the commit", &e))
        }
    }
}

fn set_index_entry(
    repo: &Repository,
    index: &mut git2::Index,
    rel: &str,
    content: Option<&[u8]>,
    blob: Option<Oid>,
    mode: i32,
) -> Result<(), git2::Error> {
    let (Some(bytes), Some(blob)) = (content, blob) else {
        if index.get_path(Path::new(rel), 0).is_some() {
            index.remove_path(Path::new(rel))?;
        }
        return Ok(());
    };
    // When the working file has these bytes, `add_path` records its stat data too, so `git
    // status` sees the file as clean without re-hashing it.
    let on_disk = repo.workdir().and_then(|w| fs::read(w.join(rel)).ok());
    if on_disk.as_deref() == Some(bytes) {
        index.add_path(Path::new(rel))?;
        if let Some(mut e) = index.get_path(Path::new(rel), 0).filter(|e| e.id == blob) {
            if e.mode != mode as u32 {
                e.mode = mode as u32;
                index.add(&e)?;
            }
            return Ok(());
        }
        // A content filter (autocrlf, attributes) changed the bytes: record ours exactly.
    }
    // Zero stat data: git compares the content next time instead of trusting timestamps.
    let entry = IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: mode as u32,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        id: blob,
        flags: u16::try_from(rel.len()).unwrap_or(0xfff).min(0xfff),
        flags_extended: 0,
        path: rel.as_bytes().to_vec(),
    };
    index.add_frombuffer(&entry, bytes)
}

fn restore_index_entry(repo: &Repository, rel: &str, prior: Option<IndexEntry>) -> Result<(), git2::Error> {
    let mut index = repo.index()?;
    match prior {
        Some(e) => index.add(&e)?,
        None => {
            if index.get_path(Path::new(rel), 0).is_some() {
                index.remove_path(Path::new(rel))?;
            }
        }
    }
    index.write()
}

/// The bytes of `file` in HEAD's tree (None: unborn HEAD or not in the tree).
pub fn committed_bytes(repo_root: &Path, file: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let repo = open(repo_root)?;
    let rel = relative_path(&repo, file)?;
    let err = |action: &str, e: &git2::Error| git_error(Some(&repo), file, action, e);
    let Some(head) = head_commit(&repo).map_err(|e| err("cannot read HEAD", &e))? else {
        return Ok(None);
    };
    let tree = head.tree().map_err(|e| err("cannot read HEAD's tree", &e))?;
    let Some(id) = entry_id(&tree, &rel) else {
        return Ok(None);
    };
    let blob = repo
        .find_blob(id)
        .map_err(|e| err("cannot read the committed file", &e))?;
    Ok(Some(blob.content().to_vec()))
}

/// The newest commit on HEAD's first-parent line that changed `file`, for `status`.
pub fn last_commit_touching(repo_root: &Path, file: &Path) -> anyhow::Result<Option<CommitInfo>> {
    let repo = open(repo_root)?;
    let rel = relative_path(&repo, file)?;
    let err = |action: &str, e: &git2::Error| git_error(Some(&repo), file, action, e);
    let Some(head) = head_commit(&repo).map_err(|e| err("cannot read HEAD", &e))? else {
        return Ok(None);
    };
    let mut walk = repo.revwalk().map_err(|e| err("cannot walk history", &e))?;
    walk.set_sorting(Sort::TOPOLOGICAL)
        .map_err(|e| err("cannot walk history", &e))?;
    walk.push(head.id()).map_err(|e| err("cannot walk history", &e))?;
    walk.simplify_first_parent()
        .map_err(|e| err("cannot walk history", &e))?;
    for oid in walk {
        let oid = oid.map_err(|e| err("cannot walk history", &e))?;
        let c = repo
            .find_commit(oid)
            .map_err(|e| err("cannot read a commit", &e))?;
        let here = entry_id(&c.tree().map_err(|e| err("cannot read a tree", &e))?, &rel);
        let before = match c.parents().next() {
            Some(p) => entry_id(&p.tree().map_err(|e| err("cannot read a tree", &e))?, &rel),
            None => None,
        };
        if here != before {
            let id = CommitId::from(c.id());
            return Ok(Some(CommitInfo {
                id: id.short().to_string(),
                full_id: id,
                summary: String::from_utf8_lossy(c.summary_bytes().unwrap_or_default()).into_owned(),
                time: DateTime::from_timestamp(c.time().seconds(), 0).unwrap_or_default(),
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    /// Runs the git CLI in `dir` with a fixed identity (CI has none) and returns stdout.
    pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=Person",
                "-c",
                "user.email=person@example.com",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the git CLI is installed");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A repository with a committed config, a person's staged change and an unstaged one.
    pub(crate) fn person_repo() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        fs::create_dir_all(root.join("configs")).unwrap();
        git(&root, &["init", "-q"]);
        fs::write(root.join("configs/chronos_7d.json"), b"{\"v\": 1}\n").unwrap();
        fs::write(root.join("README.md"), b"readme\n").unwrap();
        fs::write(root.join("notes.txt"), b"notes\n").unwrap();
        git(&root, &["add", "."]);
        git(&root, &["commit", "-q", "-m", "initial"]);
        fs::write(root.join("README.md"), b"readme, staged edit\n").unwrap();
        fs::write(root.join("new_staged.txt"), b"brand new\n").unwrap();
        git(&root, &["add", "README.md", "new_staged.txt"]);
        fs::write(root.join("notes.txt"), b"notes, unstaged edit\n").unwrap();
        (dir, root)
    }

    #[test]
    fn commit_touches_only_the_file_and_keeps_a_persons_staged_work() {
        let (_d, root) = person_repo();
        let cfg = root.join("configs/chronos_7d.json");
        fs::write(&cfg, b"{\"v\": 2}\n").unwrap();
        let id = commit_file(
            &root,
            &cfg,
            "model-optimizer: deploy 7d\n\nbody line",
            "Bot",
            "bot@example.com",
        )
        .unwrap()
        .expect("a commit");
        assert_eq!(git(&root, &["rev-parse", "HEAD"]).trim(), id.hex());
        assert_eq!(
            git(&root, &["show", "--name-only", "--format=", "HEAD"]).trim(),
            "configs/chronos_7d.json"
        );
        assert_eq!(
            git(&root, &["log", "-1", "--format=%an <%ae>|%s|%b"]).trim(),
            "Bot <bot@example.com>|model-optimizer: deploy 7d|body line"
        );
        assert_eq!(
            git(&root, &["show", "HEAD:configs/chronos_7d.json"]),
            "{\"v\": 2}\n"
        );
        // The person's staged changes are still staged (and not committed), the unstaged
        // one still unstaged, and the config is clean.
        let mut staged: Vec<String> = git(&root, &["diff", "--cached", "--name-only"])
            .lines()
            .map(String::from)
            .collect();
        staged.sort();
        assert_eq!(staged, ["README.md", "new_staged.txt"]);
        assert_eq!(git(&root, &["diff", "--name-only"]).trim(), "notes.txt");
        assert_eq!(git(&root, &["show", ":README.md"]), "readme, staged edit\n");
        assert_eq!(
            fs::read(root.join("notes.txt")).unwrap(),
            b"notes, unstaged edit\n"
        );
        assert!(git(&root, &["status", "--porcelain", "configs"])
            .trim()
            .is_empty());
        git(&root, &["fsck", "--strict", "--no-progress"]);
        // Same bytes again: nothing to commit.
        assert_eq!(
            commit_file(&root, &cfg, "again", "Bot", "bot@example.com").unwrap(),
            None
        );
        assert_eq!(git(&root, &["rev-parse", "HEAD"]).trim(), id.hex());
    }

    #[test]
    fn works_on_an_unborn_head_and_nested_new_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        fs::write(root.join("other.txt"), b"staged before the first commit\n").unwrap();
        git(root, &["add", "other.txt"]);
        fs::create_dir_all(root.join("deep/configs")).unwrap();
        let cfg = root.join("deep/configs/chronos_7d.json");
        fs::write(&cfg, b"first\n").unwrap();
        let id = commit_file(root, &cfg, "first deploy", "Bot", "bot@example.com")
            .unwrap()
            .unwrap();
        assert_eq!(git(root, &["rev-list", "--count", "HEAD"]).trim(), "1");
        assert_eq!(
            git(root, &["ls-tree", "-r", "--name-only", "HEAD"]).trim(),
            "deep/configs/chronos_7d.json"
        );
        assert_eq!(
            git(root, &["diff", "--cached", "--name-only"]).trim(),
            "other.txt"
        );
        git(root, &["fsck", "--strict", "--no-progress"]);
        let info = last_commit_touching(root, &cfg).unwrap().unwrap();
        assert_eq!(info.full_id, id);
        assert_eq!(info.summary, "first deploy");
        assert_eq!(info.id, git(root, &["rev-parse", "--short=7", "HEAD"]).trim());
    }

    #[test]
    fn revert_restores_bytes_and_last_commit_touching_follows_the_file() {
        let (_d, root) = person_repo();
        let cfg = root.join("configs/chronos_7d.json");
        let old = fs::read(&cfg).unwrap();
        fs::write(&cfg, b"{\"v\": 2}\n").unwrap();
        commit_file(&root, &cfg, "deploy", "Bot", "bot@example.com")
            .unwrap()
            .unwrap();
        // A person commits something unrelated afterwards.
        fs::write(root.join("unrelated.txt"), b"u\n").unwrap();
        fs::write(&cfg, &old).unwrap();
        let rev = revert_file_commit(&root, &cfg, Some(&old), "revert deploy", "Bot", "bot@example.com")
            .unwrap()
            .unwrap();
        assert_eq!(
            git(&root, &["show", "HEAD:configs/chronos_7d.json"]).as_bytes(),
            old.as_slice()
        );
        assert_eq!(committed_bytes(&root, &cfg).unwrap().unwrap(), old);
        let info = last_commit_touching(&root, &cfg).unwrap().unwrap();
        assert_eq!((info.full_id, info.summary.as_str()), (rev, "revert deploy"));
        assert_eq!(
            last_commit_touching(&root, &root.join("notes.txt"))
                .unwrap()
                .unwrap()
                .summary,
            "initial"
        );
        assert_eq!(
            last_commit_touching(&root, &root.join("never.txt")).unwrap(),
            None
        );
        // Removing the file from the tree (a config that did not exist before a deploy).
        fs::remove_file(&cfg).unwrap();
        revert_file_commit(&root, &cfg, None, "remove", "Bot", "bot@example.com")
            .unwrap()
            .unwrap();
        assert_eq!(committed_bytes(&root, &cfg).unwrap(), None);
        assert!(!git(&root, &["ls-tree", "-r", "--name-only", "HEAD"]).contains("configs/"));
        let mut staged: Vec<String> = git(&root, &["diff", "--cached", "--name-only"])
            .lines()
            .map(String::from)
            .collect();
        staged.sort();
        assert_eq!(staged, ["README.md", "new_staged.txt"]);
        git(&root, &["fsck", "--strict", "--no-progress"]);
    }

    #[test]
    fn stale_index_lock_is_a_one_line_error_naming_it_and_changes_nothing() {
        let (_d, root) = person_repo();
        let cfg = root.join("configs/chronos_7d.json");
        let head = git(&root, &["rev-parse", "HEAD"]);
        fs::write(root.join(".git/index.lock"), b"").unwrap();
        fs::write(&cfg, b"{\"v\": 3}\n").unwrap();
        for e in [
            check_ready(&root).unwrap_err(),
            commit_file(&root, &cfg, "deploy", "Bot", "bot@example.com").unwrap_err(),
        ] {
            let e = format!("{e:#}");
            assert!(
                e.contains(".git/index.lock") && e.contains("rm ") && !e.contains('\n'),
                "{e}"
            );
        }
        assert_eq!(git(&root, &["rev-parse", "HEAD"]), head);
        fs::remove_file(root.join(".git/index.lock")).unwrap();
        check_ready(&root).unwrap();
    }

    #[test]
    fn find_repository_follows_the_mode() {
        let (_d, root) = person_repo();
        let found = find_repository(&root.join("configs"), GitMode::Auto)
            .unwrap()
            .unwrap();
        assert_eq!(fs::canonicalize(found).unwrap(), fs::canonicalize(&root).unwrap());
        assert_eq!(
            find_repository(&root.join("configs"), GitMode::Off).unwrap(),
            None
        );
        let plain = tempfile::tempdir().unwrap();
        assert_eq!(find_repository(plain.path(), GitMode::Auto).unwrap(), None);
        let e = find_repository(plain.path(), GitMode::Require).unwrap_err();
        assert_eq!(exit::code_of(&e), exit::ExitCode::Invalid);
        assert!(format!("{e:#}").contains("git init"), "{e:#}");
    }

    #[test]
    fn repository_owned_by_another_user_is_a_clear_error() {
        let (_d, root) = person_repo();
        // Only root can give files away; elsewhere this check cannot be staged.
        let nobody = 65_534;
        let chown = |p: &Path| std::os::unix::fs::chown(p, Some(nobody), Some(nobody));
        if chown(&root).is_err() {
            eprintln!("skipping: cannot chown (not root), so another user's repository cannot be staged");
            return;
        }
        chown(&root.join(".git")).unwrap();
        let e = format!(
            "{:#}",
            commit_file(
                &root,
                &root.join("configs/chronos_7d.json"),
                "x",
                "Bot",
                "bot@example.com"
            )
            .unwrap_err()
        );
        assert!(
            e.contains("owned by another user")
                && e.contains("safe.directory")
                && e.contains(&root.display().to_string()),
            "{e}"
        );
        let e = format!(
            "{:#}",
            find_repository(&root.join("configs"), GitMode::Auto).unwrap_err()
        );
        assert!(e.contains("owned by another user"), "{e}");
        let e = find_repository(&root.join("configs"), GitMode::Auto).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), crate::exit::ExitCode::Invalid);
    }
}
