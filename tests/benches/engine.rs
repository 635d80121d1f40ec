//! Engine benchmark (`cargo bench --bench engine`): forward time per series beside the official
//! PyTorch pipeline's on the same checkpoint, threads and machine (measured alternately in one
//! run), achieved GFLOP/s and its ratio to candle's own f32 gemm rate on the same matrix
//! shapes, and peak RSS.
//!
//! The PyTorch figure comes from `tests/benches/torch_forward.py`, run with
//! `ENGINE_BENCH_PYTHON` (default `python3`); without torch and chronos-forecasting there it is
//! skipped with a note. `ENGINE_BENCH_TORCH=0` skips it on purpose.
//!
//! Random weights with the exact tensor shapes of chronos-bolt-tiny and chronos-bolt-small are
//! written as a real checkpoint (config.json + model.safetensors) to a temp dir and loaded
//! through the real loader. Speed goals are printed, never asserted. The gemm reference calls
//! candle directly (the one place outside `src/model/` that does): it is what the engine is
//! measured against.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use model_optimizer::forecast::QuantileModel;
use model_optimizer::model::{ChronosBolt, Config};

#[path = "checkpoint.rs"]
mod checkpoint;
use checkpoint::{write_checkpoint, Rng, SMALL, TINY};

const CONTEXTS: [usize; 4] = [180, 365, 730, 2048];
const BATCHES: [usize; 2] = [1, 32];
/// The goal: >= 60% of the gemm rate at batch 32, context 512, small dimensions.
const GOAL_RATIO: f64 = 0.60;
const GOAL_RSS_MB: f64 = 500.0;
const RSS_PROBE_ENV: &str = "ENGINE_BENCH_RSS_PROBE";
/// `ENGINE_BENCH_CASE=small/32/512` runs that one case only (for profiling).
const CASE_ENV: &str = "ENGINE_BENCH_CASE";
/// `ENGINE_BENCH_PROFILE=SECS` (with a case) runs only the engine's forward, again and again
/// for SECS seconds, so a profiler sees the forward and nothing else of the benchmark.
const PROFILE_ENV: &str = "ENGINE_BENCH_PROFILE";

/// Random-walk contexts around 900 (USD/CLP-like levels).
fn contexts(batch: usize, length: usize) -> Vec<Vec<f64>> {
    let mut rng = Rng(batch as u64 * 7919 + length as u64);
    (0..batch)
        .map(|_| {
            let mut level = 900.0;
            (0..length)
                .map(|_| {
                    level += 3.0 * f64::from(rng.next_f32());
                    level
                })
                .collect()
        })
        .collect()
}

/// One matmul family of the forward pass: `count` products of `batch` x (m, k) @ (k, n).
#[derive(Clone, Copy, Debug)]
struct Gemm {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    count: usize,
}

impl Gemm {
    fn flops(&self) -> f64 {
        2.0 * (self.batch * self.m * self.k * self.n * self.count) as f64
    }
}

/// Every matmul one forward pass performs (analytic; elementwise work is not counted).
fn forward_gemms(cfg: &Config, batch: usize, context: usize) -> Vec<Gemm> {
    let (d, ff, h, dk) = (cfg.d_model, cfg.d_ff, cfg.num_heads, cfg.d_kv);
    let inner = h * dk;
    let patches = context.min(cfg.chronos_config.context_length).div_ceil(16);
    let s = patches + 1;
    let out = 9 * cfg.chronos_config.prediction_length;
    let (enc, dec) = (cfg.num_layers, cfg.decoder_layers());
    let g = |batch, m, k, n, count| Gemm {
        batch,
        m,
        k,
        n,
        count,
    };
    let rows = batch * s;
    vec![
        // Input residual block on batch x patches rows.
        g(1, batch * patches, 32, ff, 1),
        g(1, batch * patches, ff, d, 1),
        g(1, batch * patches, 32, d, 1),
        // Encoder: fused qkv, scores, attention x values, o, feed-forward.
        g(1, rows, d, 3 * inner, enc),
        g(batch * h, s, dk, s, enc),
        g(batch * h, s, s, dk, enc),
        g(1, rows, inner, d, enc),
        g(1, rows, d, ff, enc),
        g(1, rows, ff, d, enc),
        // Decoder, one position: self v and o, cross q, each head's query taken to model
        // space through k, scores and the weighted mix on the encoder output itself, the
        // head outputs through v, cross o, feed-forward.
        g(1, batch, d, inner, dec),
        g(1, batch, inner, d, dec),
        g(1, batch, d, inner, dec),
        g(h, batch, dk, d, dec),
        g(batch, h, d, s, dec),
        g(batch, h, s, d, dec),
        g(h, batch, d, dk, dec),
        g(1, batch, inner, d, dec),
        g(1, batch, d, ff, dec),
        g(1, batch, ff, d, dec),
        // Output residual block.
        g(1, batch, d, ff, 1),
        g(1, batch, ff, out, 1),
        g(1, batch, d, out, 1),
    ]
}

/// Median times of each task, run in turn (after one warm-up each) for about `budget`, at
/// least 3 rounds: all see the same machine load, which on a shared machine matters more than
/// the number of repetitions. A task returns the time it measured itself.
fn time_rounds(budget: Duration, tasks: &mut [&mut dyn FnMut() -> Duration]) -> Vec<Duration> {
    for t in tasks.iter_mut() {
        t();
    }
    let mut times = vec![Vec::new(); tasks.len()];
    let start = Instant::now();
    while times[0].len() < 3 || (start.elapsed() < budget && times[0].len() < 50) {
        for (t, out) in tasks.iter_mut().zip(&mut times) {
            out.push(t());
        }
    }
    times
        .into_iter()
        .map(|mut v| {
            v.sort();
            v[v.len() / 2]
        })
        .collect()
}

/// Median wall times of `a` and `b`, run alternately.
fn time_pair(budget: Duration, mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    let mut ta = || timed(&mut a);
    let mut tb = || timed(&mut b);
    let t = time_rounds(budget, &mut [&mut ta, &mut tb]);
    (t[0], t[1])
}

fn timed(f: &mut impl FnMut()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// The official PyTorch pipeline in a child process (`tests/benches/torch_forward.py`).
struct Torch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    version: String,
}

impl Torch {
    /// Starts the helper; Err says why there is no PyTorch figure.
    fn start() -> Result<Torch, String> {
        if std::env::var("ENGINE_BENCH_TORCH").is_ok_and(|v| v == "0") {
            return Err("ENGINE_BENCH_TORCH=0".into());
        }
        if std::env::var_os(PROFILE_ENV).is_some() {
            return Err(format!("{PROFILE_ENV} (profile mode)"));
        }
        let python = std::env::var("ENGINE_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/benches/torch_forward.py");
        let mut child = Command::new(&python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {python}: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut t = Torch {
            child,
            stdin,
            stdout,
            version: String::new(),
        };
        let hello = t.read_line();
        match hello.split_whitespace().collect::<Vec<_>>()[..] {
            ["ready", _, version] => {
                t.version = version.to_string();
                Ok(t)
            }
            _ => Err(format!("{python} {script}: {hello}")),
        }
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the torch helper answers");
        line.trim().to_string()
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("the torch helper reads its commands");
        self.stdin.flush().expect("flush to the torch helper");
        self.read_line()
    }

    fn load(&mut self, dir: &std::path::Path) {
        let answer = self.ask(&format!("load {}", dir.display()));
        assert_eq!(answer, "ok", "torch helper could not load {}", dir.display());
    }

    /// One predict call (64 steps) on `batch` series of `context` points, as the helper timed it.
    fn run(&mut self, batch: usize, context: usize) -> Duration {
        let answer = self.ask(&format!("run {batch} {context}"));
        let ms: f64 = answer
            .parse()
            .unwrap_or_else(|_| panic!("torch helper answered {answer:?}"));
        Duration::from_secs_f64(ms / 1e3)
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

/// Operands for candle's f32 gemm on exactly these products, laid out as the engine lays them
/// out (activations contiguous, weights `[out, in]` used through a transposed view).
fn gemm_operands(gemms: &[Gemm]) -> Vec<(Tensor, Tensor, usize)> {
    let dev = Device::Cpu;
    gemms
        .iter()
        .map(|g| {
            let a = Tensor::rand(-1f32, 1f32, (g.batch, g.m, g.k), &dev).unwrap();
            let w = Tensor::rand(-1f32, 1f32, (g.batch, g.n, g.k), &dev).unwrap();
            let (a, w) = if g.batch == 1 {
                (a.squeeze(0).unwrap(), w.squeeze(0).unwrap())
            } else {
                (a, w)
            };
            (a, w, g.count)
        })
        .collect()
}

fn run_gemms(operands: &[(Tensor, Tensor, usize)]) {
    for (a, w, count) in operands {
        for _ in 0..*count {
            std::hint::black_box(a.matmul(&w.t().unwrap()).unwrap());
        }
    }
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The child process: load the small checkpoint, forecast as the product does (a batch of
/// full contexts for 64 steps, one series for 130 steps), report peak RSS.
fn rss_probe(dir: &str) {
    let model = ChronosBolt::load(dir).unwrap();
    let loaded = peak_rss_mb().unwrap_or(f64::NAN);
    let batch = contexts(32, 2048);
    let refs: Vec<&[f64]> = batch.iter().map(Vec::as_slice).collect();
    std::hint::black_box(model.predict(&refs, 64).unwrap());
    std::hint::black_box(model.predict(&refs[..1], 130).unwrap());
    println!("{loaded:.1} {:.1}", peak_rss_mb().unwrap_or(f64::NAN));
}

/// The goal case's figures: achieved GFLOP/s, the gemm rate on the same shapes, their ratio.
type Goal = (f64, f64, f64);

fn main() {
    // As the CLI's main does, before any thread exists (the RSS probe's child too).
    model_optimizer::model::init_threads();
    if let Ok(dir) = std::env::var(RSS_PROBE_ENV) {
        rss_probe(&dir);
        return;
    }
    println!(
        "engine benchmark: RAYON_NUM_THREADS={}, {}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
        model_optimizer::model::instruction_sets()
    );
    let mut torch = start_torch();
    let mut goal = None;
    let mut small_dir = None;
    for dims in [TINY, SMALL] {
        let dir = bench_dims(&dims, &mut torch, &mut goal);
        if dims.name == "small" {
            small_dir = Some(dir);
        }
    }

    if std::env::var_os(CASE_ENV).is_some() {
        return;
    }
    print_big_gemm();
    if let Some(goal) = goal {
        print_goal(goal);
    }
    if let Some(dir) = small_dir {
        print_rss(dir.path());
    }
}

/// The PyTorch helper, or a line saying why its figures are skipped.
fn start_torch() -> Option<Torch> {
    match Torch::start() {
        Ok(t) => {
            println!("PyTorch {} (chronos-forecasting ChronosBoltPipeline), same threads, timed alternately with the engine", t.version);
            Some(t)
        }
        Err(why) => {
            println!("PyTorch figures skipped: {why}");
            None
        }
    }
}

/// Writes and loads one checkpoint size, times its cases and returns the checkpoint's dir
/// (kept alive for the RSS probe); the goal case's figures go to `goal`.
fn bench_dims(
    dims: &checkpoint::Dims,
    torch: &mut Option<Torch>,
    goal: &mut Option<Goal>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_checkpoint(dir.path(), dims);
    let load_start = Instant::now();
    let model = ChronosBolt::load_dir(dir.path()).unwrap();
    println!(
        "\n{} (d_model {}, d_ff {}, {} heads x {}, {}+{} layers): {:.1} M params, loaded in {:.2} s",
        dims.name,
        dims.d_model,
        dims.d_ff,
        dims.heads,
        dims.d_kv,
        dims.layers,
        dims.layers,
        model.num_params() as f64 / 1e6,
        load_start.elapsed().as_secs_f64()
    );
    if let Some(t) = torch.as_mut() {
        t.load(dir.path());
    }
    println!(
        "{:>6} {:>8} {:>14} {:>14} {:>10} {:>10} {:>12} {:>8}",
        "batch", "context", "ms/series", "torch ms/ser", "vs torch", "GFLOP/s", "gemm GFLOP/s", "ratio"
    );
    let mut cases: Vec<(usize, usize)> = BATCHES
        .iter()
        .flat_map(|&b| CONTEXTS.iter().map(move |&c| (b, c)))
        .collect();
    if dims.name == "small" {
        cases.push((32, 512));
    }
    if let Ok(only) = std::env::var(CASE_ENV) {
        cases.retain(|(b, c)| only == format!("{}/{b}/{c}", dims.name));
    }
    for (batch, context) in cases {
        let figures = bench_case(&model, &cfg, (batch, context), torch);
        if dims.name == "small" && batch == 32 && context == 512 {
            if let Some(figures) = figures {
                *goal = Some(figures);
            }
        }
    }
    dir
}

/// Times one (batch, context) case and prints its row; None in profile mode.
fn bench_case(
    model: &ChronosBolt,
    cfg: &Config,
    (batch, context): (usize, usize),
    torch: &mut Option<Torch>,
) -> Option<Goal> {
    let series = contexts(batch, context);
    let refs: Vec<&[f64]> = series.iter().map(Vec::as_slice).collect();
    let gemms = forward_gemms(cfg, batch, context);
    let flops: f64 = gemms.iter().map(Gemm::flops).sum();
    let operands = gemm_operands(&gemms);
    let mut engine = || {
        timed(&mut || {
            std::hint::black_box(model.predict(&refs, 64).unwrap());
        })
    };
    if let Some(secs) = std::env::var(PROFILE_ENV)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        let start = Instant::now();
        let mut runs = 0;
        while start.elapsed().as_secs_f64() < secs {
            engine();
            runs += 1;
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / (runs * batch) as f64;
        println!("{batch:>6} {context:>8} {ms:>14.3}  ({runs} forwards, profile mode)");
        return None;
    }
    let mut reference = || timed(&mut || run_gemms(&operands));
    let mut pytorch = || torch.as_mut().map_or(Duration::ZERO, |t| t.run(batch, context));
    let times = time_rounds(
        Duration::from_secs(5),
        &mut [&mut engine, &mut reference, &mut pytorch],
    );
    let (forward, gemm, py) = (times[0], times[1], times[2]);
    let rate = flops / forward.as_secs_f64() / 1e9;
    let gemm_rate = flops / gemm.as_secs_f64() / 1e9;
    let ratio = rate / gemm_rate;
    let per_series = |d: Duration| d.as_secs_f64() * 1e3 / batch as f64;
    let (py_ms, vs) = if py.is_zero() {
        ("-".to_string(), "-".to_string())
    } else {
        (
            format!("{:.3}", per_series(py)),
            format!("{:.2}x", py.as_secs_f64() / forward.as_secs_f64()),
        )
    };
    println!(
        "{batch:>6} {context:>8} {:>14.3} {py_ms:>14} {vs:>10} {rate:>10.1} {gemm_rate:>12.1} {:>7.0}%",
        per_series(forward),
        ratio * 100.0
    );
    Some((rate, gemm_rate, ratio))
}

/// A reference point for the machine: one large square-ish gemm.
fn print_big_gemm() {
    let big = [Gemm {
        batch: 1,
        m: 2048,
        k: 2048,
        n: 512,
        count: 4,
    }];
    let operands = gemm_operands(&big);
    let (big_time, _) = time_pair(Duration::from_secs(2), || run_gemms(&operands), || ());
    let big_rate = big[0].flops() / big_time.as_secs_f64() / 1e9;
    println!("\ncandle f32 gemm 2048x2048 @ 2048x512: {big_rate:.1} GFLOP/s");
}

fn print_goal((rate, gemm_rate, ratio): Goal) {
    println!(
        "goal (small, batch 32, context 512): {rate:.1} GFLOP/s = {:.0}% of the {gemm_rate:.1} GFLOP/s gemm rate on the same shapes (goal >= {:.0}%): {}",
        ratio * 100.0,
        GOAL_RATIO * 100.0,
        if ratio >= GOAL_RATIO { "met" } else { "NOT met" }
    );
}

/// Peak RSS of a separate process that loads the small checkpoint in `dir` and forecasts.
fn print_rss(dir: &std::path::Path) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env(RSS_PROBE_ENV, dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let figures: Vec<f64> = text.split_whitespace().filter_map(|t| t.parse().ok()).collect();
    if let [loaded, peak] = figures[..] {
        println!(
            "peak RSS, separate process, small weights: {loaded:.0} MB after loading, {peak:.0} MB after forecasting 32 x 2048 for 64 steps and 1 series for 130 steps (goal <= {GOAL_RSS_MB:.0} MB): {}",
            if peak <= GOAL_RSS_MB { "met" } else { "NOT met" }
        );
    } else {
        println!(
            "peak RSS probe failed: {} {}",
            text.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
}
