//! Kernel benchmark (`cargo bench --bench kernels`): our few-row product
//! (`bolt_kernels::matmul_nt`) beside candle's gemm on the linear layers' shapes of
//! chronos-bolt-tiny and -small, for row counts around the switch between them
//! (`bolt_kernels::prefers_nt`), on every instruction set the CPU has. It prints GFLOP/s and
//! which side the switch picks, so the switch can be checked on each machine; speed is
//! printed, never asserted.
//!
//! `KERNELS_BENCH_ROWS=13,129` limits the row counts.

use std::time::{Duration, Instant};

use bolt_kernels::{self as kernels, Isa};
use candle_core::{Device, Tensor};

const ROWS: [usize; 10] = [1, 13, 32, 64, 96, 129, 160, 200, 257, 416];
/// `(name, k, n)`: the linear layers of one block, fused q/k/v, attention output, feed-forward.
const SHAPES: [(&str, usize, usize); 8] = [
    ("tiny qkv", 256, 768),
    ("tiny o", 256, 256),
    ("tiny wi", 256, 1024),
    ("tiny wo", 1024, 256),
    ("small qkv", 512, 1536),
    ("small o", 512, 512),
    ("small wi", 512, 2048),
    ("small wo", 2048, 512),
];

/// Median time of `f` over rounds of about `budget` (at least 5 runs, after one warm-up).
fn median(budget: Duration, mut f: impl FnMut()) -> Duration {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || (start.elapsed() < budget && times.len() < 200) {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

fn main() {
    // As the CLI's main does: the pool, this thread included.
    model_optimizer::model::init_threads();
    let rows: Vec<usize> = match std::env::var("KERNELS_BENCH_ROWS") {
        Ok(list) => list.split(',').filter_map(|r| r.trim().parse().ok()).collect(),
        Err(_) => ROWS.to_vec(),
    };
    let detected = Isa::detect();
    let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2]
        .into_iter()
        .filter(|&i| i <= detected)
        .collect();
    println!(
        "kernels benchmark: RAYON_NUM_THREADS={}, CPU kernels up to {}; GFLOP/s, median of repeated runs, the sides one after another per shape",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
        detected.name()
    );
    print!("{:<10} {:>5}  {:>7}", "shape", "rows", "gemm");
    for isa in &isas {
        print!("  {:>11}", format!("nt {}", isa.name()));
    }
    println!("  switch picks");
    let dev = Device::Cpu;
    for (name, k, n) in SHAPES {
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        // Stored as the model stores linear weights: on a 64-byte boundary.
        let w_data = kernels::Aligned::copy_of(&w.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        for &m in &rows {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
            let x_data: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            let flops = 2.0 * (m * k * n) as f64;
            let rate = |d: Duration| flops / d.as_secs_f64() / 1e9;
            let budget = Duration::from_millis(300);
            let gemm = rate(median(budget, || {
                std::hint::black_box(x.matmul(&w.t().unwrap()).unwrap());
            }));
            print!("{name:<10} {m:>5}  {gemm:>7.1}");
            for &isa in &isas {
                let nt = rate(median(budget, || {
                    std::hint::black_box(kernels::matmul_nt(isa, &x_data, &w_data, m, k, n));
                }));
                print!("  {nt:>11.1}");
            }
            let pick = if kernels::prefers_nt(detected, m, k, n) {
                "nt"
            } else {
                "gemm"
            };
            println!("  {pick}");
        }
    }
}
