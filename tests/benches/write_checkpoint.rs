//! Writes the benchmarks' random Chronos-Bolt checkpoint (tests/benches/checkpoint.rs: the
//! exact tensor shapes of chronos-bolt-tiny or -small) into a directory, so the real binary can
//! be run at that model size, e.g. for the container's peak memory in
//! tests/packaging/container-check.sh.
//!
//! `cargo run --example write-checkpoint -- DIR [tiny|small]` (default small).

#[path = "checkpoint.rs"]
#[allow(dead_code)]
mod checkpoint;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), size) = (args.next().map(PathBuf::from), args.next()) else {
        eprintln!("usage: write-checkpoint DIR [tiny|small]");
        return ExitCode::from(2);
    };
    let dims = match size.as_ref().and_then(|s| s.to_str()).unwrap_or("small") {
        "tiny" => &checkpoint::TINY,
        "small" => &checkpoint::SMALL,
        other => {
            eprintln!("unknown size {other:?}: tiny or small");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("{}: {e}", dir.display());
        return ExitCode::from(1);
    }
    checkpoint::write_checkpoint(&dir, dims);
    println!(
        "{}: random weights, chronos-bolt-{} dimensions",
        dir.display(),
        dims.name
    );
    ExitCode::SUCCESS
}
