//! Chronos-Bolt on candle: loading a checkpoint (local directory or Hugging Face id) and the
//! batched forecast pipeline behind [`crate::forecast::QuantileModel`].
//!
//! # Layout
//! - `config`: serde mirror of config.json and the checks that decide what the engine runs.
//! - `load`: config.json / model.safetensors reading, shape checks, hub and cache resolution.
//! - `t5`: our T5 encoder and one-step decoder (candle's own T5 cannot take embeddings, a
//!   padding mask or cross-attention masks).
//! - `bolt`: one forward pass of `ChronosBoltModelForForecasting`.
//! - here: [`ChronosBolt`], the pipeline (`ChronosBoltPipeline.predict` of
//!   chronos-forecasting 2.3.2: truncation, and the quantile-expansion loop past the model's
//!   own horizon) and [`ModelError`].
//!
//! candle is used only inside this module; the rest of the crate sees f64 slices in and
//! [`QuantileForecast`]s out.

mod bolt;
pub mod config;
mod load;
mod t5;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::exit::ExitCode;
use crate::forecast::{QuantileForecast, QuantileModel};

pub use config::{ChronosConfig, Config, ARCHITECTURE};
pub use load::{CONFIG_FILE, WEIGHTS_FILE};

/// Sets up the forward pass's threads; call once, first thing, from the program's main thread
/// (the one that runs the forecasts). `RAYON_NUM_THREADS` is set to the CPU count when unset:
/// candle asks rayon for its thread count on every op, and without the variable that re-reads
/// /proc/cpuinfo each time (31 ms instead of 19 ms per small forecast). The calling thread then
/// joins the pool ([`bolt_kernels::pool_on_this_thread`]).
pub fn init_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    bolt_kernels::pool_on_this_thread();
}

/// The instruction sets the forward pass runs on in this process, for benchmarks and logs:
/// our kernels' (`bolt_kernels::isa`, which `MODEL_OPTIMIZER_SIMD` caps) and candle's gemm's.
/// The gemm picks its own at run time: AVX-512 where the CPU has avx512f and the build has the
/// `avx512-gemm` feature, else AVX2 with FMA, else scalar code.
pub fn instruction_sets() -> String {
    #[cfg(target_arch = "x86_64")]
    let gemm = if cfg!(feature = "avx512-gemm") && std::arch::is_x86_feature_detected!("avx512f") {
        "avx512"
    } else if std::arch::is_x86_feature_detected!("fma") {
        "avx2"
    } else {
        "scalar"
    };
    #[cfg(not(target_arch = "x86_64"))]
    let gemm = "native";
    format!("kernels {}, gemm {gemm}", bolt_kernels::isa().name())
}

/// The default model when settings name none.
pub const DEFAULT_MODEL: &str = "amazon/chronos-bolt-small";

/// Typed model errors; the caller maps them to exit codes with [`ModelError::exit_code`].
/// Every message is one line naming the file (or model id) and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "model directory {} does not exist or is not a directory; pass a directory holding config.json and model.safetensors, or a Hugging Face id such as {DEFAULT_MODEL}",
        path.display()
    )]
    MissingDirectory { path: PathBuf },
    #[error(
        "model file {} not found; a Chronos-Bolt checkpoint directory needs config.json and model.safetensors (re-download or re-export it)",
        path.display()
    )]
    MissingFile { path: PathBuf },
    #[error("invalid model config {}: {}; fix the file or re-download the checkpoint", path.display(), one_line(reason))]
    Config { path: PathBuf, reason: String },
    #[error(
        "model config {} declares architectures {found:?}, expected [\"{ARCHITECTURE}\"]; point the model setting at a Chronos-Bolt checkpoint",
        path.display()
    )]
    Architecture { path: PathBuf, found: Vec<String> },
    #[error(
        "model weights {} lack tensor {name}, which config.json requires; re-download or re-export the checkpoint",
        path.display()
    )]
    MissingTensor { path: PathBuf, name: String },
    #[error(
        "model weights {}: tensor {name} has shape {found:?} but config.json implies {expected:?}; the weights do not match the config, re-download or re-export the checkpoint",
        path.display()
    )]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("invalid model weights {}: {}; re-download or re-export the checkpoint", path.display(), one_line(reason))]
    Checkpoint { path: PathBuf, reason: String },
    #[error(
        "model {id} is not in the Hugging Face cache {} and HF_HUB_OFFLINE=1 forbids downloading it; unset HF_HUB_OFFLINE to download it, or pass a local directory holding config.json and model.safetensors",
        cache.display()
    )]
    NotCached { id: String, cache: PathBuf },
    #[error(
        "cannot fetch {file} of model {id} from the Hugging Face hub ({}); check the network and the model id (no local directory of that name exists), or pass a local directory holding config.json and model.safetensors",
        one_line(reason)
    )]
    Hub {
        id: String,
        file: String,
        reason: String,
    },
    #[error(
        "model inference failed: {}; check the model files and the input series, and report it if both are valid",
        one_line(.0)
    )]
    Inference(String),
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl ModelError {
    /// [`ExitCode::Invalid`] for missing or bad model files and config (including a model that
    /// is not cached in offline mode); [`ExitCode::Runtime`] for inference failures and hub
    /// download failures (network, transient).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ModelError::Inference(_) | ModelError::Hub { .. } => ExitCode::Runtime,
            _ => ExitCode::Invalid,
        }
    }
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> Self {
        ModelError::Inference(e.to_string())
    }
}

/// A loaded Chronos-Bolt model.
#[derive(Clone, Debug)]
pub struct ChronosBolt {
    config: Config,
    network: bolt::Network,
    num_params: usize,
}

impl ChronosBolt {
    /// Loads from an existing local directory, else from a Hugging Face repo id (hf-hub sync
    /// API and its standard cache; `HF_HUB_OFFLINE=1` resolves from the cache only).
    pub fn load(id_or_dir: &str) -> Result<ChronosBolt, ModelError> {
        let path = Path::new(id_or_dir);
        if path.is_dir() {
            return Self::load_dir(path);
        }
        if load::looks_like_path(id_or_dir) || path.exists() {
            return Err(ModelError::MissingDirectory {
                path: path.to_path_buf(),
            });
        }
        let files = load::resolve_hub(id_or_dir)?;
        Self::load_files(&files.config, &files.weights)
    }

    /// [`ChronosBolt::load`] for commands: a file problem becomes an exit-78 failure, a hub
    /// failure an exit-1 one, with the same one-line message.
    pub fn open(id_or_dir: &str) -> anyhow::Result<ChronosBolt> {
        Self::load(id_or_dir).map_err(|e| crate::exit::failure(e.exit_code(), e.to_string()))
    }

    /// What a deployed config records as its model: a hub id as given, or for a local
    /// directory its name and a hash of its two files (`demo-bolt-tiny@fnv1a64:0123abcd...`),
    /// never the path it is mounted at.
    pub fn identity(id_or_dir: &str) -> anyhow::Result<String> {
        let path = Path::new(id_or_dir);
        if !path.is_dir() {
            return Ok(id_or_dir.to_string());
        }
        let files = load::CheckpointFiles::in_dir(path);
        let mut hash = load::Fnv1a::new();
        for f in [&files.config, &files.weights] {
            hash.file(f).map_err(|e| {
                crate::exit::invalid(format!("{}: cannot read the model file: {e}", f.display()))
            })?;
        }
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let name = canonical
            .file_name()
            .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned());
        Ok(format!("{name}@fnv1a64:{:016x}", hash.finish()))
    }

    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load_dir(dir: &Path) -> Result<ChronosBolt, ModelError> {
        if !dir.is_dir() {
            return Err(ModelError::MissingDirectory {
                path: dir.to_path_buf(),
            });
        }
        let files = load::CheckpointFiles::in_dir(dir);
        Self::load_files(&files.config, &files.weights)
    }

    fn load_files(config_path: &Path, weights_path: &Path) -> Result<ChronosBolt, ModelError> {
        let config = load::read_config(config_path)?;
        let device = Device::Cpu;
        let tensors = load::read_weights(weights_path, &config, &device)?;
        let num_params = tensors.values().map(candle_core::Tensor::elem_count).sum();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        // Names and shapes were checked against the config already; a failure here would be
        // an engine bug, reported against the weights file.
        let network = bolt::Network::load(&vb, &config).map_err(|e| ModelError::Checkpoint {
            path: weights_path.to_path_buf(),
            reason: e.to_string(),
        })?;
        tracing::debug!(
            path = %weights_path.display(),
            num_params,
            simd = %instruction_sets(),
            "loaded Chronos-Bolt"
        );
        Ok(ChronosBolt {
            config,
            network,
            num_params,
        })
    }

    /// The parsed config.json.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The model's own context length (`chronos_config.context_length`, 2048 for Chronos-Bolt).
    pub fn model_context_length(&self) -> usize {
        self.config.chronos_config.context_length
    }

    /// Steps one forward pass predicts (`chronos_config.prediction_length`, 64).
    pub fn prediction_length(&self) -> usize {
        self.config.chronos_config.prediction_length
    }

    /// The quantile levels the model predicts, in output order.
    pub fn quantiles(&self) -> &[f64] {
        &self.config.chronos_config.quantiles
    }

    /// Number of weights read from the checkpoint.
    pub fn num_params(&self) -> usize {
        self.num_params
    }

    /// Quantile forecasts for `prediction_length` steps after each context (f64, NaN =
    /// missing; lengths may differ). As `ChronosBoltPipeline.predict`: contexts are cut to the
    /// model context; past the model's horizon, the quantile-expansion loop runs.
    pub fn predict_quantiles(
        &self,
        contexts: &[&[f64]],
        prediction_length: usize,
    ) -> Result<Vec<QuantileForecast>, ModelError> {
        let contexts: Vec<Vec<f32>> = contexts
            .iter()
            .map(|c| c.iter().map(|&v| v as f32).collect())
            .collect();
        let raw = self.predict_f32(&contexts, prediction_length)?;
        Ok(raw
            .into_iter()
            .map(|rows| QuantileForecast {
                values: rows
                    .into_iter()
                    .map(|row| row.into_iter().map(f64::from).collect())
                    .collect(),
            })
            .collect())
    }

    /// `[series][quantile][step]` in f32, the precision the reference computes in.
    fn predict_f32(&self, contexts: &[Vec<f32>], horizon: usize) -> Result<Vec<Vec<Vec<f32>>>, ModelError> {
        let levels = self.quantiles().len();
        let step = self.prediction_length();
        let context_length = self.model_context_length();
        if contexts.is_empty() {
            return Ok(Vec::new());
        }
        if horizon == 0 {
            return Ok(vec![vec![Vec::new(); levels]; contexts.len()]);
        }
        // predict(): the context is cut to the model context before anything else.
        let contexts: Vec<&[f32]> = contexts
            .iter()
            .map(|c| &c[c.len().saturating_sub(context_length)..])
            .collect();
        let mut last = self.network.forward(&contexts)?;
        let mut out: Vec<Vec<Vec<f32>>> = last
            .iter()
            .map(|flat| flat.chunks(step).map(<[f32]>::to_vec).collect())
            .collect();
        let mut produced = step;
        if produced < horizon {
            // Past the model horizon (chronos-forecasting 2.x): every context is repeated once
            // per quantile level and continued with that quantile's path; the model runs on
            // all `series x levels` paths and the `levels x levels` values per step are
            // reduced back to the model's levels with torch.quantile's linear interpolation.
            let quantile_levels: Vec<f32> = self.quantiles().iter().map(|&q| q as f32).collect();
            let mut paths: Vec<Vec<f32>> = contexts
                .iter()
                .flat_map(|c| std::iter::repeat_n(c.to_vec(), levels))
                .collect();
            while produced < horizon {
                for (i, path) in paths.iter_mut().enumerate() {
                    let (series, level) = (i / levels, i % levels);
                    path.extend_from_slice(&last[series][level * step..(level + 1) * step]);
                    let excess = path.len().saturating_sub(context_length);
                    path.drain(..excess);
                }
                let refs: Vec<&[f32]> = paths.iter().map(Vec::as_slice).collect();
                let samples = self.network.forward(&refs)?;
                last = samples
                    .chunks(levels)
                    .map(|group| reduce_to_quantiles(group, levels, step, &quantile_levels))
                    .collect();
                for (rows, flat) in out.iter_mut().zip(&last) {
                    for (row, chunk) in rows.iter_mut().zip(flat.chunks(step)) {
                        row.extend_from_slice(chunk);
                    }
                }
                produced += step;
            }
        }
        for rows in &mut out {
            for row in rows.iter_mut() {
                row.truncate(horizon);
            }
        }
        Ok(out)
    }
}

/// Reduces the `levels` forecasts (each `levels x step`, quantile-major) of one series' paths
/// to `levels x step` empirical quantiles at `quantile_levels`, per step.
fn reduce_to_quantiles(group: &[Vec<f32>], levels: usize, step: usize, quantile_levels: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; levels * step];
    let mut values = Vec::with_capacity(group.len() * levels);
    for t in 0..step {
        values.clear();
        for path in group {
            values.extend((0..levels).map(|q| path[q * step + t]));
        }
        for (j, &level) in quantile_levels.iter().enumerate() {
            out[j * step + t] = torch_quantile(&mut values, level);
        }
    }
    out
}

/// `torch.quantile(values, level)` with its default linear interpolation, in f32 as torch
/// computes it: rank `level * (n - 1)`, lerp between the order statistics around it; NaN if
/// any value is NaN. Sorts `values` in place.
fn torch_quantile(values: &mut [f32], level: f32) -> f32 {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return f32::NAN;
    }
    values.sort_unstable_by(f32::total_cmp);
    let rank = level * (values.len() - 1) as f32;
    let below = rank.floor();
    let weight = rank - below;
    let lo = values[below as usize];
    let hi = values[(rank.ceil() as usize).min(values.len() - 1)];
    // torch.lerp: the formula switches ends at weight 0.5 for accuracy.
    if weight < 0.5 {
        lo + weight * (hi - lo)
    } else {
        hi - (hi - lo) * (1.0 - weight)
    }
}

impl QuantileModel for ChronosBolt {
    fn max_context(&self) -> usize {
        self.model_context_length()
    }

    fn predict(
        &self,
        contexts: &[&[f64]],
        prediction_length: usize,
    ) -> anyhow::Result<Vec<QuantileForecast>> {
        Ok(self.predict_quantiles(contexts, prediction_length)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_quantile_interpolates_linearly() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert!((torch_quantile(&mut v, 0.0) - 1.0).abs() < 1e-9);
        assert!((torch_quantile(&mut v, 1.0) - 4.0).abs() < 1e-9);
        assert!((torch_quantile(&mut v, 0.5) - 2.5).abs() < 1e-6);
        assert!((torch_quantile(&mut v, 0.1) - 1.3).abs() < 1e-6);
        assert!(torch_quantile(&mut [1.0, f32::NAN], 0.5).is_nan());
    }

    #[test]
    fn errors_map_to_exit_codes_and_stay_on_one_line() {
        let e = ModelError::Inference("line one\nline two".into());
        assert_eq!(e.exit_code(), ExitCode::Runtime);
        assert!(!e.to_string().contains('\n'));
        let e = ModelError::MissingFile {
            path: PathBuf::from("/m/model.safetensors"),
        };
        assert_eq!(e.exit_code(), ExitCode::Invalid);
        assert!(e.to_string().contains("/m/model.safetensors"));
    }

    #[test]
    fn nonexistent_paths_are_not_sent_to_the_hub() {
        let err = ChronosBolt::load("./no/such/model-dir").unwrap_err();
        assert!(matches!(err, ModelError::MissingDirectory { .. }), "{err}");
        assert_eq!(err.exit_code(), ExitCode::Invalid);
    }
}
