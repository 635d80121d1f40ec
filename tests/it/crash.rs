//! Crash safety under SIGKILL: `run --all --force` and `rollback` on a real git repository,
//! killed at random moments and at every deploy step (failpoints), each followed by the checks
//! a person relies on: every config and backup complete, every replaced config backed up,
//! `git fsck --strict` clean, nothing of ours left staged or uncommitted after `status`, and
//! every commit that touches a config matched by exactly one history row (and vice versa).
//!
//! The knobs are not named `MODEL_OPTIMIZER_*`, which the binary reads as settings (and
//! rejects when unknown), so they can be exported for a whole `cargo test`.
//! `CRASH_TEST_KILLS` sets the number of random kills (default 40);
//! `CRASH_TEST_BIN` runs another build of the binary (e.g. `cargo build --release
//! --features failpoints`), `CRASH_TEST_SEED` another random sequence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use model_optimizer::forecaster_config::ForecasterConfig;
use serde::Deserialize;

use crate::util::{business_day_series, git_cli, micro_model, TestEnv};

pub(crate) const HORIZONS: [&str; 4] = ["7d", "15d", "30d", "90d"];

/// splitmix64: a reproducible sequence of delays and choices.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub(crate) struct Root {
    pub(crate) env: TestEnv,
    bin: PathBuf,
    model: String,
    /// Runs started so far: each run searches a num_samples value no earlier run deployed.
    runs: std::cell::Cell<u32>,
}

impl Root {
    pub(crate) fn new(bin: PathBuf) -> Root {
        let env = TestEnv::new();
        env.write(
            "configs/optimizer.toml",
            crate::util::small_approving_settings("backups_to_keep = 1000\ntrial_min_origins = 0"),
        );
        env.write_series("data/usdclp.parquet", &business_day_series(600));
        env.git_init();
        env.write("notes.txt", "a person's unrelated staged change\n");
        env.git(&["add", "notes.txt"]);
        Root {
            env,
            bin,
            model: micro_model().display().to_string(),
            runs: std::cell::Cell::new(0),
        }
    }

    pub(crate) fn command(&self, args: &[&str], failpoint: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root")
            .arg(self.env.root())
            .args(args)
            .env_remove("MODEL_OPTIMIZER_ROOT")
            .env_remove("MODEL_OPTIMIZER_FAILPOINT")
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(fp) = failpoint {
            cmd.env("MODEL_OPTIMIZER_FAILPOINT", fp);
        }
        if args.first() == Some(&"run") {
            // A search that keeps the current config deploys nothing. Every run offers a draw
            // count above any deployed before and takes the largest (the reference), so every
            // run has a deploy to kill.
            let n = self.runs.get() + 1;
            self.runs.set(n);
            cmd.env("MODEL_OPTIMIZER_SEARCH_NUM_SAMPLES", format!("[{}]", 200 + n))
                .env("MODEL_OPTIMIZER_SEARCH_NUM_SAMPLES_TOLERANCE_PCT", "1e-9");
        }
        cmd
    }

    pub(crate) fn run_args(&self) -> Vec<String> {
        ["run", "--all", "--force", "--model", &self.model]
            .map(String::from)
            .to_vec()
    }

    /// Runs to the end; returns the exit code and stderr.
    pub(crate) fn run(&self, args: &[&str], failpoint: Option<&str>) -> (Option<i32>, String) {
        let out = self.command(args, failpoint).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts `args` and SIGKILLs it after `delay` unless it ended first. Returns None if it
    /// was killed, else how long it took.
    pub(crate) fn kill_after(&self, args: &[&str], delay: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut child = self.command(args, None).spawn().unwrap();
        let deadline = started + delay;
        loop {
            if child.try_wait().unwrap().is_some() {
                return Some(started.elapsed());
            }
            if Instant::now() >= deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn has_journal(&self) -> bool {
        self.env.path("configs/.deploy-journal.json").exists()
    }

    /// An operation to aim a kill at: a rollback of a horizon that has backups (one time in
    /// `rollback_odds`) or a run, with how long the last one of its kind took (`times`: run,
    /// rollback). Returns whether it is a rollback, its arguments and that time.
    pub(crate) fn pick(
        &self,
        rng: &mut Rng,
        rollback_odds: u64,
        times: (Duration, Duration),
    ) -> (bool, Vec<String>, Duration) {
        if rng.below(rollback_odds) == 0 {
            let hs = self.horizons_with_backups();
            let h = hs[rng.below(hs.len() as u64) as usize];
            (true, vec!["rollback".into(), h.into()], times.1)
        } else {
            (false, self.run_args(), times.0)
        }
    }

    pub(crate) fn horizons_with_backups(&self) -> Vec<&'static str> {
        HORIZONS
            .into_iter()
            .filter(|h| {
                std::fs::read_dir(self.env.path("configs/backups")).is_ok_and(|d| {
                    d.flatten().any(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("chronos_{h}_"))
                    })
                })
            })
            .collect()
    }
}

#[derive(Debug, Deserialize)]
struct HistoryOut {
    records: Vec<Row>,
}

#[derive(Debug, Deserialize)]
struct Row {
    run_id: String,
    horizon: String,
    action: String,
    message: String,
}

/// One commit that touched a config.
#[derive(Debug)]
struct ConfigCommit {
    id: String,
    kind: &'static str,
    horizon: String,
    run_id: Option<String>,
    subject: String,
}

fn config_paths() -> Vec<String> {
    HORIZONS
        .iter()
        .map(|h| format!("configs/chronos_{h}.json"))
        .collect()
}

fn config_commits(root: &Path) -> Vec<ConfigCommit> {
    let mut args = vec![
        "log".to_string(),
        "--format=%x1e%H%n%B%x1f".to_string(),
        "--".to_string(),
    ];
    args.extend(config_paths());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = git_cli(root, &args);
    let mut out = Vec::new();
    for chunk in log.split('\x1e').filter(|c| !c.trim().is_empty()) {
        let (head, _) = chunk.split_once('\x1f').unwrap();
        let mut lines = head.lines();
        let id = lines.next().unwrap().to_string();
        let subject = lines.next().unwrap_or_default().to_string();
        if subject == "initial" {
            continue;
        }
        let run_id = head
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("run "))
            .map(|r| r.trim().to_string());
        let words: Vec<&str> = subject.split_whitespace().collect();
        let (kind, horizon) = match words.as_slice() {
            ["model-optimizer:", "deploy", h, ..] => ("deploy", *h),
            ["model-optimizer:", "rollback", h, ..] => ("rollback", *h),
            ["model-optimizer:", "revert", _, h, ..] => ("revert", *h),
            _ => ("unknown", ""),
        };
        out.push(ConfigCommit {
            id,
            kind,
            horizon: horizon.to_string(),
            run_id,
            subject,
        });
    }
    out
}

/// Checks that need no recovery: every config and backup is complete, the repository is sound.
fn check_complete(r: &Root, what: &str, violations: &mut Vec<String>) {
    for h in HORIZONS {
        let p = r.env.path(&format!("configs/chronos_{h}.json"));
        match std::fs::read(&p) {
            Ok(bytes) => {
                if let Err(e) = ForecasterConfig::parse(&bytes, &p) {
                    violations.push(format!("{what}: {h} config incomplete: {e:#}"));
                }
            }
            Err(e) => violations.push(format!("{what}: {h} config unreadable: {e}")),
        }
    }
    if let Ok(dir) = std::fs::read_dir(r.env.path("configs/backups")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let bytes = std::fs::read(e.path()).unwrap();
            if let Err(err) = ForecasterConfig::parse(&bytes, &e.path()) {
                violations.push(format!("{what}: backup {name} incomplete: {err:#}"));
            }
        }
    }
    let fsck = Command::new("git")
        .args(["fsck", "--strict", "--no-progress"])
        .current_dir(r.env.root())
        .output()
        .unwrap();
    if !fsck.status.success() {
        violations.push(format!(
            "{what}: git fsck --strict: {}",
            String::from_utf8_lossy(&fsck.stderr)
        ));
    }
}

/// Checks after recovery: no leftovers, git as a person leaves it, every replaced config backed
/// up, and commits and history rows in one-to-one correspondence.
fn check_recovered(r: &Root, what: &str, violations: &mut Vec<String>) {
    check_clean_tree(r, what, violations);
    let commits = config_commits(r.env.root());
    check_backed_up(r, &commits, what, violations);
    check_history_matches_commits(r, &commits, what, violations);
}

/// No temp file or journal left behind, only the person's own change staged, every config
/// committed.
fn check_clean_tree(r: &Root, what: &str, violations: &mut Vec<String>) {
    let root = r.env.root();
    for p in r.env.snapshot().into_keys() {
        let s = p.to_string_lossy();
        if s.starts_with(".git/") {
            continue;
        }
        if s.ends_with(".tmp") || s.contains("deploy-journal") {
            violations.push(format!("{what}: left behind {s}"));
        }
    }
    let staged = git_cli(root, &["diff", "--cached", "--name-only"]);
    if staged.trim() != "notes.txt" {
        violations.push(format!("{what}: staged after recovery: {staged:?}"));
    }
    let mut status_args = vec!["status", "--porcelain", "--"];
    let paths = config_paths();
    status_args.extend(paths.iter().map(String::as_str));
    let dirty = git_cli(root, &status_args);
    if !dirty.trim().is_empty() {
        violations.push(format!("{what}: configs not committed after recovery: {dirty:?}"));
    }
}

/// Every config a deploy or rollback replaced has a byte-identical backup.
fn check_backed_up(r: &Root, commits: &[ConfigCommit], what: &str, violations: &mut Vec<String>) {
    let backups: Vec<Vec<u8>> = std::fs::read_dir(r.env.path("configs/backups"))
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| std::fs::read(e.path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    for c in commits
        .iter()
        .filter(|c| c.kind == "deploy" || c.kind == "rollback")
    {
        let prev = Command::new("git")
            .args(["show", &format!("{}~1:configs/chronos_{}.json", c.id, c.horizon)])
            .current_dir(r.env.root())
            .output()
            .unwrap();
        if prev.status.success() && !backups.contains(&prev.stdout) {
            violations.push(format!(
                "{what}: the config {} replaced ({}) has no backup",
                c.id, c.subject
            ));
        }
    }
}

/// History rows of one (run, horizon), or the commits of one (run, horizon).
type PerRun<'a, T> = BTreeMap<(String, String), Vec<&'a T>>;

/// At most one history row per run and horizon; each run's commits expect exactly one history
/// row of the matching action, and each `deployed` / `rolled_back` row exactly one commit.
fn check_history_matches_commits(
    r: &Root,
    commits: &[ConfigCommit],
    what: &str,
    violations: &mut Vec<String>,
) {
    let (code, err) = r.run(&["history", "--json"], None);
    if code != Some(0) {
        violations.push(format!("{what}: history unreadable: {err}"));
        return;
    }
    let out = r
        .command(&["history", "--json", "--limit", "1000000"], None)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let rows: Vec<Row> = serde_json::from_slice::<HistoryOut>(&out.stdout).unwrap().records;
    let mut per_run: PerRun<Row> = BTreeMap::new();
    for row in &rows {
        per_run
            .entry((row.run_id.clone(), row.horizon.clone()))
            .or_default()
            .push(row);
    }
    for ((run, h), rs) in &per_run {
        if rs.len() > 1 {
            violations.push(format!(
                "{what}: {} history rows for run {run} horizon {h}: {:?}",
                rs.len(),
                rs.iter().map(|r| &r.action).collect::<Vec<_>>()
            ));
        }
    }
    let mut groups: PerRun<ConfigCommit> = BTreeMap::new();
    for c in commits {
        match &c.run_id {
            Some(run) if c.kind != "unknown" => groups
                .entry((run.clone(), c.horizon.clone()))
                .or_default()
                .push(c),
            _ => violations.push(format!("{what}: commit {} ({}) names no run", c.id, c.subject)),
        }
    }
    check_commits_have_rows(&groups, &per_run, what, violations);
    check_rows_have_commits(&rows, &groups, what, violations);
}

/// Each run's commits expect exactly one history row of the matching action.
fn check_commits_have_rows(
    groups: &PerRun<ConfigCommit>,
    per_run: &PerRun<Row>,
    what: &str,
    violations: &mut Vec<String>,
) {
    for (key, cs) in groups {
        let mut kinds: Vec<&str> = cs.iter().map(|c| c.kind).collect();
        kinds.sort_unstable();
        let expected = match kinds.as_slice() {
            ["deploy"] => "deployed",
            ["deploy", "revert"] => "failed",
            ["rollback"] => "rolled_back",
            other => {
                violations.push(format!("{what}: run {key:?} has commits {other:?}"));
                continue;
            }
        };
        match per_run.get(key).map(Vec::as_slice) {
            Some([row]) if row.action == expected => {}
            found => violations.push(format!(
                "{what}: commits {kinds:?} of run {key:?} expect one `{expected}` history row, found {:?}",
                found.map(|rs| rs.iter().map(|r| (&r.action, &r.message)).collect::<Vec<_>>())
            )),
        }
    }
}

/// Each `deployed` / `rolled_back` history row has exactly one matching commit (unless HEAD
/// already had the bytes).
fn check_rows_have_commits(
    rows: &[Row],
    groups: &PerRun<ConfigCommit>,
    what: &str,
    violations: &mut Vec<String>,
) {
    for row in rows {
        let key = (row.run_id.clone(), row.horizon.clone());
        let needs = match row.action.as_str() {
            "deployed" => "deploy",
            "rolled_back" => "rollback",
            _ => continue,
        };
        let n = groups
            .get(&key)
            .map_or(0, |cs| cs.iter().filter(|c| c.kind == needs).count());
        if n != 1 && !row.message.contains("HEAD already had these bytes") {
            violations.push(format!(
                "{what}: history row {} {} of run {} has {n} {needs} commits",
                row.horizon, row.action, row.run_id
            ));
        }
    }
}

#[derive(Default)]
struct Figures {
    kills: usize,
    during_step: usize,
    aimed: usize,
    completed: usize,
}

/// Recovers with `status` and checks everything.
fn recover_and_check(r: &Root, what: &str, violations: &mut Vec<String>) {
    check_complete(r, what, violations);
    let (code, err) = r.run(&["status"], None);
    if code != Some(0) {
        violations.push(format!("{what}: status after the crash exited {code:?}: {err}"));
    }
    check_complete(r, &format!("{what}, after status"), violations);
    check_recovered(r, &format!("{what}, after status"), violations);
}

#[test]
fn sigkill_at_random_moments_and_at_every_deploy_step_loses_nothing() {
    let bin = std::env::var_os("CRASH_TEST_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_model-optimizer")),
        PathBuf::from,
    );
    let kills: usize = std::env::var("CRASH_TEST_KILLS")
        .ok()
        .map_or(40, |v| v.parse().expect("CRASH_TEST_KILLS is a number"));
    let seed: u64 = std::env::var("CRASH_TEST_SEED")
        .ok()
        .map_or(20_240_628, |v| v.parse().expect("CRASH_TEST_SEED is a number"));
    let r = Root::new(bin);
    let mut violations = Vec::new();
    let mut fig = Figures::default();

    // A first uncut run: it must deploy every horizon, and it times the kills.
    let run_args = r.run_args();
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let (code, err) = r.run(&run_args, None);
    let run_time = started.elapsed();
    assert_eq!(code, Some(0), "the first run works: {err}");
    check_recovered(&r, "after the first run", &mut violations);
    assert!(violations.is_empty(), "{violations:#?}");
    let started = Instant::now();
    let (code, err) = r.run(&["rollback", "7d"], None);
    let rollback_time = started.elapsed();
    assert_eq!(code, Some(0), "a rollback works: {err}");

    aimed_kills(&r, &run_args, &mut fig, &mut violations);
    let random = RandomKills {
        kills,
        seed,
        run_time,
        rollback_time,
    };
    let landed = random_kills(&r, random, &mut fig, &mut violations);

    // And the next run works from there.
    let (code, err) = r.run(&run_args, None);
    assert_eq!(code, Some(0), "the run after the crashes works: {err}");
    check_recovered(&r, "after the last run", &mut violations);
    eprintln!(
        "crash safety: {} kills ({} aimed at a step, {} random), {} of them during a deploy or rollback step; {} operations ended before their kill; {} violations",
        fig.kills,
        fig.aimed,
        fig.kills - fig.aimed,
        fig.during_step,
        fig.completed,
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(landed, kills, "random kills that landed");
}

/// Aimed kills: the binary aborts (like SIGKILL, no destructors) at each step.
fn aimed_kills(r: &Root, run_args: &[&str], fig: &mut Figures, violations: &mut Vec<String>) {
    let aimed: [(&str, &[&str]); 14] = [
        ("after_backup", run_args),
        ("after_temp_write", run_args),
        ("after_rename", run_args),
        ("after_index_write", run_args),
        ("after_commit", run_args),
        ("smoke_check,during_rollback", run_args),
        ("smoke_check,before_finish", run_args),
        ("history_append", run_args),
        ("before_finish", run_args),
        ("during_rollback", &["rollback", "30d"]),
        ("after_index_write", &["rollback", "15d"]),
        ("history_append", &["rollback", "90d"]),
        ("before_finish", &["rollback", "7d"]),
        // A kill of the recovery itself, before and after it records what it found.
        ("after_commit", run_args),
    ];
    for (i, (fp, args)) in aimed.iter().enumerate() {
        let what = format!("aimed kill {i} at {fp} during {}", args[0]);
        let (code, err) = r.run(args, Some(fp));
        if code.is_some() || !err.contains("failpoint") {
            violations.push(format!(
                "{what}: expected an abort at the failpoint (is the binary built with --features failpoints?), got {code:?}: {err}"
            ));
            continue;
        }
        fig.kills += 1;
        fig.aimed += 1;
        fig.during_step += usize::from(r.has_journal());
        check_complete(r, &what, violations);
        if i == aimed.len() - 1 {
            for fp in ["recovery_before_record", "before_finish"] {
                let (code, err) = r.run(&["status"], Some(fp));
                if code.is_some() || !err.contains("failpoint") {
                    violations.push(format!("{what}: status did not abort at {fp}: {code:?} {err}"));
                }
                fig.kills += 1;
                fig.aimed += 1;
                check_complete(r, &format!("{what}, status killed at {fp}"), violations);
            }
        }
        recover_and_check(r, &what, violations);
    }
}

/// How many random kills to land, from which seed, and the uncut operations' durations to aim
/// them by.
#[derive(Clone, Copy)]
struct RandomKills {
    kills: usize,
    seed: u64,
    run_time: Duration,
    rollback_time: Duration,
}

/// Random kills: half anywhere in the operation, half in its last 40 %, where deploys are;
/// until `kills` of them landed (an operation may end before its kill). Returns how many
/// landed.
fn random_kills(r: &Root, plan: RandomKills, fig: &mut Figures, violations: &mut Vec<String>) -> usize {
    let RandomKills {
        kills,
        seed,
        mut run_time,
        mut rollback_time,
    } = plan;
    let mut rng = Rng(seed);
    let mut landed = 0;
    let mut attempt = 0;
    while landed < kills && attempt < 2 * kills + 5 {
        attempt += 1;
        let (rollback, args, time) = r.pick(&mut rng, 4, (run_time, rollback_time));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let frac = if rng.below(2) == 0 {
            rng.unit()
        } else {
            0.6 + 0.4 * rng.unit()
        };
        let delay = time.mul_f64(frac * 1.05);
        let what = format!(
            "random kill {attempt} of {} after {delay:?} (seed {seed})",
            args[0]
        );
        if let Some(took) = r.kill_after(&args, delay) {
            // Runs get shorter once the small searched contexts are deployed: aim by the last.
            fig.completed += 1;
            if rollback {
                rollback_time = took;
            } else {
                run_time = took;
            }
        } else {
            landed += 1;
            fig.kills += 1;
            fig.during_step += usize::from(r.has_journal());
        }
        recover_and_check(r, &what, violations);
        if violations.len() > 20 {
            break;
        }
    }
    landed
}
