//! Torn-read proof: a reader process (Python, as a forecaster would be) parses every
//! `configs/chronos_<h>.json` in a tight loop while `run --all --force` deploys, `rollback`
//! restores and both are SIGKILLed at random moments (the crash test's machinery), each
//! followed by the recovery of `status`. Every read must parse, no file may ever be missing,
//! and every distinct config read must be one that was committed or backed up.
//!
//! `TORN_READ_ROUNDS` sets the number of SIGKILLs (default 10, CI-sized);
//! `TORN_READ_SEED` another random sequence. The figures are printed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use model_optimizer::forecaster_config::ForecasterConfig;
use serde::Deserialize;

use crate::crash::{Rng, Root, HORIZONS};
use crate::util::git_cli;

/// Reads the configs named on the command line until the stop file exists; keeps one copy of
/// every distinct content it read; prints its counts as JSON.
const READER: &str = r#"
import hashlib, json, os, sys
stop, seen_dir, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
required = {"schema_version", "horizon", "model", "context_length", "num_samples", "temperature", "timestamp"}
reads = errors = missing = 0
first_error = None
seen = set()
print("ready", flush=True)
while not os.path.exists(stop):
    for p in paths:
        try:
            with open(p, "rb") as f:
                b = f.read()
        except FileNotFoundError:
            missing += 1
            continue
        reads += 1
        try:
            v = json.loads(b)
            if not isinstance(v, dict) or not required <= v.keys():
                raise ValueError("not a config object")
        except Exception as e:
            errors += 1
            if first_error is None:
                first_error = "%s: %s: %r" % (p, e, b[:120])
            continue
        h = hashlib.sha256(b).hexdigest()
        if h not in seen:
            seen.add(h)
            with open(os.path.join(seen_dir, h), "wb") as f:
                f.write(b)
print(json.dumps({"reads": reads, "parse_errors": errors, "missing": missing, "first_error": first_error}))
"#;

#[derive(Debug, Deserialize)]
struct ReaderOut {
    reads: u64,
    parse_errors: u64,
    missing: u64,
    first_error: Option<String>,
}

/// Every config content a commit holds or a backup file has.
fn committed_or_backed_up(r: &Root) -> BTreeSet<Vec<u8>> {
    let root = r.env.root();
    let mut known = BTreeSet::new();
    for commit in git_cli(root, &["rev-list", "--all"]).lines() {
        for h in HORIZONS {
            let out = Command::new("git")
                .args(["show", &format!("{commit}:configs/chronos_{h}.json")])
                .current_dir(root)
                .output()
                .unwrap();
            if out.status.success() {
                known.insert(out.stdout);
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(r.env.path("configs/backups")) {
        for e in dir.flatten() {
            known.insert(std::fs::read(e.path()).unwrap());
        }
    }
    known
}

/// Starts the reader process on every config of `r`; it saves each distinct content it reads
/// in `seen_dir` and stops when `stop` exists.
fn start_reader(r: &Root, stop: &std::path::Path, seen_dir: &std::path::Path) -> std::process::Child {
    use std::io::BufRead;
    let mut reader = Command::new("python3");
    reader.args(["-c", READER]).arg(stop).arg(seen_dir);
    for h in HORIZONS {
        reader.arg(r.env.path(&format!("configs/chronos_{h}.json")));
    }
    let mut reader = reader
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    std::io::BufReader::new(reader.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    reader
}

/// The distinct contents the reader saw, and those that are not a valid config committed or
/// backed up.
fn unknown_contents(r: &Root, seen_dir: &std::path::Path) -> (usize, Vec<String>) {
    let known = committed_or_backed_up(r);
    let mut distinct = 0;
    let mut unknown = Vec::new();
    for e in std::fs::read_dir(seen_dir).unwrap().flatten() {
        distinct += 1;
        let bytes = std::fs::read(e.path()).unwrap();
        if let Err(err) = ForecasterConfig::parse(&bytes, &e.path()) {
            unknown.push(format!("not a valid config: {err:#}"));
        } else if !known.contains(&bytes) {
            unknown.push(format!(
                "neither committed nor backed up: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
    }
    (distinct, unknown)
}

#[test]
fn a_reader_never_sees_a_partial_missing_or_unknown_config() {
    let rounds: usize = std::env::var("TORN_READ_ROUNDS")
        .ok()
        .map_or(10, |v| v.parse().expect("TORN_READ_ROUNDS is a number"));
    let seed: u64 = std::env::var("TORN_READ_SEED")
        .ok()
        .map_or(20_261_206, |v| v.parse().expect("TORN_READ_SEED is a number"));
    let mut rng = Rng(seed);
    let r = Root::new(PathBuf::from(env!("CARGO_BIN_EXE_model-optimizer")));
    let scratch = tempfile::tempdir().unwrap();
    let seen_dir = scratch.path().join("seen");
    std::fs::create_dir(&seen_dir).unwrap();
    let stop = scratch.path().join("stop");
    let reader = start_reader(&r, &stop, &seen_dir);

    // Uncut operations first: they work, and they time the kills.
    let run_args = r.run_args();
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let (code, err) = r.run(&run_args, None);
    let mut run_time = started.elapsed();
    assert_eq!(code, Some(0), "the first run works: {err}");
    let started = Instant::now();
    let (code, err) = r.run(&["rollback", "7d"], None);
    let mut rollback_time = started.elapsed();
    assert_eq!(code, Some(0), "a rollback works: {err}");

    // Until `rounds` kills landed: every fourth operation runs to its end, the others are
    // killed, half anywhere and half in their last 40 % where the deploys are (an operation
    // may end before its kill: it is aimed by the last one that completed).
    let (mut kills, mut completed, mut attempts, mut recovery_failures) = (0, 2, 0, Vec::new());
    while kills < rounds && attempts < 3 * rounds + 5 {
        attempts += 1;
        let (rollback, args, time) = r.pick(&mut rng, 3, (run_time, rollback_time));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let frac = match rng.below(4) {
            0 => 3.0,
            1 => rng.unit(),
            _ => 0.6 + 0.4 * rng.unit(),
        };
        match r.kill_after(&args, time.mul_f64(frac)) {
            Some(took) => {
                completed += 1;
                if rollback {
                    rollback_time = took;
                } else {
                    run_time = took;
                }
            }
            None => kills += 1,
        }
        let (code, err) = r.run(&["status"], None);
        if code != Some(0) {
            recovery_failures.push(format!("attempt {attempts}: status exited {code:?}: {err}"));
        }
    }

    std::fs::write(&stop, "").unwrap();
    let out = reader.wait_with_output().unwrap();
    assert!(out.status.success(), "the reader failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: ReaderOut = serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("reader output {text:?}: {e}"));

    let (distinct, unknown) = unknown_contents(&r, &seen_dir);
    eprintln!(
        "torn reads: {} reads of the {} configs ({distinct} distinct contents) during {} operations \
         ({kills} SIGKILLed, {completed} completed, seed {seed}); {} parse errors, {} missing, {} unknown",
        summary.reads,
        HORIZONS.len(),
        attempts + 2,
        summary.parse_errors,
        summary.missing,
        unknown.len()
    );
    assert!(summary.reads > 0);
    assert_eq!(summary.parse_errors, 0, "{:?}", summary.first_error);
    assert_eq!(summary.missing, 0);
    assert!(unknown.is_empty(), "{unknown:#?}");
    assert!(recovery_failures.is_empty(), "{recovery_failures:#?}");
    assert!(distinct > HORIZONS.len(), "the reader saw configs change");
    assert_eq!(kills, rounds, "kills that landed");
}
