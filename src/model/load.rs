//! Reading a checkpoint: config.json (architecture and shape checks) and model.safetensors,
//! streamed tensor by tensor into f32 candle tensors.
//!
//! The safetensors header is parsed first and every tensor the forward pass needs is checked
//! against the shape config.json implies, before any weight is read. Weights are then read one
//! tensor at a time at their offsets (no unsafe memory map: the crate forbids `unsafe`, and
//! candle copies mapped weights into its own buffers anyway), so peak memory is the model plus
//! one tensor. f16/bf16 (and f64) tensors are converted to f32.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::config::{Config, ARCHITECTURE};
use super::ModelError;

/// File names of a Hugging Face checkpoint.
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Upper bound on the safetensors JSON header (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// Reads and checks config.json: readable, JSON, the Chronos-Bolt architecture, every field
/// the engine needs, and a configuration the engine supports.
pub fn read_config(path: &Path) -> Result<Config, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::Config {
                path: path.to_path_buf(),
                reason: format!("unreadable ({e})"),
            }
        }
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        reason: format!("not valid JSON ({e})"),
    })?;
    // The architecture is checked before the fields, so another model's config (which lacks
    // chronos_config) is reported as what it is.
    let found: Vec<String> = match value.get("architectures") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    if found != [ARCHITECTURE] {
        return Err(ModelError::Architecture {
            path: path.to_path_buf(),
            found,
        });
    }
    let config: Config = serde_json::from_value(value).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        reason: format!("invalid ({e})"),
    })?;
    if let Some(reason) = config.unsupported() {
        return Err(ModelError::Config {
            path: path.to_path_buf(),
            reason,
        });
    }
    Ok(config)
}

/// One header entry of a safetensors file.
#[derive(Debug, Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

#[derive(Debug)]
struct Entry {
    dtype: DType,
    shape: Vec<usize>,
    /// Absolute byte range in the file.
    start: u64,
    len: u64,
}

fn checkpoint_error(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Parses the safetensors header: `u64` little-endian header size, JSON header, data.
fn read_header(file: &mut File, path: &Path) -> Result<HashMap<String, Entry>, ModelError> {
    let file_len = file
        .metadata()
        .map_err(|e| checkpoint_error(path, format!("unreadable ({e})")))?
        .len();
    let mut size = [0u8; 8];
    file.read_exact(&mut size).map_err(|_| {
        checkpoint_error(
            path,
            "not a safetensors file (shorter than its 8-byte header size)",
        )
    })?;
    let header_len = u64::from_le_bytes(size);
    if header_len > MAX_HEADER || 8 + header_len > file_len {
        return Err(checkpoint_error(
            path,
            format!("not a safetensors file (header size {header_len} with a file of {file_len} bytes)"),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| checkpoint_error(path, format!("unreadable header ({e})")))?;
    let raw: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| checkpoint_error(path, format!("malformed safetensors header ({e})")))?;
    let data_start = 8 + header_len;
    let mut entries = HashMap::with_capacity(raw.len());
    for (name, value) in raw {
        if name == "__metadata__" {
            continue;
        }
        let e: RawEntry = serde_json::from_value(value).map_err(|err| {
            checkpoint_error(path, format!("malformed header entry for tensor {name} ({err})"))
        })?;
        let dtype = match e.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F64" => DType::F64,
            other => {
                return Err(checkpoint_error(
                    path,
                    format!(
                        "tensor {name} has dtype {other}; only F32, F16, BF16 and F64 weights are supported"
                    ),
                ))
            }
        };
        let [begin, end] = e.data_offsets;
        let elements: u64 = e.shape.iter().map(|&d| d as u64).product();
        let expected = elements * dtype.size_in_bytes() as u64;
        if end < begin || end - begin != expected || data_start + end > file_len {
            return Err(checkpoint_error(
                path,
                format!(
                    "tensor {name} has data offsets [{begin}, {end}] that do not fit its shape {:?} and dtype {} or the file size (truncated download?)",
                    e.shape, e.dtype
                ),
            ));
        }
        entries.insert(
            name,
            Entry {
                dtype,
                shape: e.shape,
                start: data_start + begin,
                len: end - begin,
            },
        );
    }
    Ok(entries)
}

/// Reads every tensor `config` needs from `path`, checked and converted to f32.
pub fn read_weights(
    path: &Path,
    config: &Config,
    device: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let mut file = File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            checkpoint_error(path, format!("unreadable ({e})"))
        }
    })?;
    let entries = read_header(&mut file, path)?;
    let mut wanted = Vec::new();
    for (name, expected) in config.expected_tensors() {
        let Some(entry) = entries.get(&name) else {
            return Err(ModelError::MissingTensor {
                path: path.to_path_buf(),
                name,
            });
        };
        if entry.shape != expected {
            return Err(ModelError::Shape {
                path: path.to_path_buf(),
                name,
                expected,
                found: entry.shape.clone(),
            });
        }
        wanted.push((name, entry));
    }
    // Read in file order: one sequential pass.
    wanted.sort_by_key(|(_, e)| e.start);
    let mut buffer = Vec::new();
    let mut tensors = HashMap::with_capacity(wanted.len());
    for (name, entry) in wanted {
        buffer.resize(entry.len as usize, 0);
        file.seek(SeekFrom::Start(entry.start))
            .and_then(|_| file.read_exact(&mut buffer))
            .map_err(|e| checkpoint_error(path, format!("cannot read tensor {name} ({e})")))?;
        let tensor = decode(&buffer, entry.dtype, &entry.shape, device)
            .map_err(|e| checkpoint_error(path, format!("cannot decode tensor {name} ({e})")))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// A tensor's bytes as f32 on a 64-byte boundary (`t5::aligned`). f32 data is decoded straight
/// into its aligned storage: no second copy of each weight while loading.
fn decode(bytes: &[u8], dtype: DType, shape: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    if dtype != DType::F32 {
        let t = Tensor::from_raw_buffer(bytes, dtype, shape, device)?.to_dtype(DType::F32)?;
        return super::t5::aligned(&t);
    }
    let len: usize = shape.iter().product();
    if bytes.len() != 4 * len {
        candle_core::bail!("{} bytes for {len} f32 values", bytes.len());
    }
    let mut data = bolt_kernels::Aligned::zeros(len);
    for (v, b) in data.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    super::t5::from_aligned(data, &candle_core::Shape::from(shape), device)
}

/// Where a model's two files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
}

impl CheckpointFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            config: dir.join(CONFIG_FILE),
            weights: dir.join(WEIGHTS_FILE),
        }
    }
}

/// Whether `HF_HUB_OFFLINE` asks for cache-only resolution (as huggingface_hub reads it).
fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// Resolves a Hugging Face repo id to cached or downloaded files (hf-hub sync API, standard
/// cache under `HF_HOME` or `~/.cache/huggingface`; `HF_ENDPOINT` honoured). With
/// `HF_HUB_OFFLINE=1` only the cache is consulted. Cached files are used without a network
/// call either way.
pub fn resolve_hub(id: &str) -> Result<CheckpointFiles, ModelError> {
    if hub_offline() {
        return resolve_cached(id, &hf_hub::Cache::from_env());
    }
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(progress)
        .build()
        .map_err(|e| ModelError::Hub {
            id: id.to_string(),
            file: CONFIG_FILE.to_string(),
            reason: e.to_string(),
        })?;
    let repo = api.model(id.to_string());
    let fetch = |file: &str| {
        tracing::info!(model = id, file, "resolving from the Hugging Face hub");
        repo.get(file).map_err(|e| ModelError::Hub {
            id: id.to_string(),
            file: file.to_string(),
            reason: e.to_string(),
        })
    };
    Ok(CheckpointFiles {
        config: fetch(CONFIG_FILE)?,
        weights: fetch(WEIGHTS_FILE)?,
    })
}

/// Both files of `id` from the local hub cache (main revision), or [`ModelError::NotCached`].
fn resolve_cached(id: &str, cache: &hf_hub::Cache) -> Result<CheckpointFiles, ModelError> {
    let repo = cache.model(id.to_string());
    match (repo.get(CONFIG_FILE), repo.get(WEIGHTS_FILE)) {
        (Some(config), Some(weights)) => Ok(CheckpointFiles { config, weights }),
        _ => Err(ModelError::NotCached {
            id: id.to_string(),
            cache: cache.path().clone(),
        }),
    }
}

/// Whether `id_or_dir` can only be meant as a local path (a Hugging Face id is `owner/name`
/// or `name`, never absolute, never starting with `.` or `~`, at most one `/`).
pub fn looks_like_path(id_or_dir: &str) -> bool {
    id_or_dir.starts_with(['/', '.', '~'])
        || id_or_dir.contains('\\')
        || id_or_dir.matches('/').count() > 1
        || id_or_dir.is_empty()
}

/// FNV-1a (64 bit) over whole files: a cheap identity for a local checkpoint.
pub struct Fnv1a(u64);

impl Fnv1a {
    pub fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Hashes the whole file at `path`, streamed.
    pub fn file(&mut self, path: &Path) -> std::io::Result<()> {
        let mut f = File::open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.update(&buf[..n]);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitCode;

    #[test]
    fn offline_resolution_reads_the_hub_cache_layout() {
        let root = tempfile::tempdir().unwrap();
        let cache = hf_hub::Cache::new(root.path().to_path_buf());
        let err = resolve_cached("amazon/chronos-bolt-small", &cache).unwrap_err();
        let message = err.to_string();
        assert_eq!(err.exit_code(), ExitCode::Invalid);
        for needle in [
            "amazon/chronos-bolt-small",
            "not in the Hugging Face cache",
            "local directory",
        ] {
            assert!(message.contains(needle), "{message}");
        }
        assert!(message.contains(&root.path().display().to_string()), "{message}");

        // The standard layout: refs/main names the snapshot holding the files.
        let repo = root.path().join("models--amazon--chronos-bolt-small");
        let snapshot = repo.join("snapshots/0123abcd");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
        std::fs::write(snapshot.join(CONFIG_FILE), "{}").unwrap();
        assert!(matches!(
            resolve_cached("amazon/chronos-bolt-small", &cache),
            Err(ModelError::NotCached { .. })
        ));
        std::fs::write(snapshot.join(WEIGHTS_FILE), "").unwrap();
        let files = resolve_cached("amazon/chronos-bolt-small", &cache).unwrap();
        assert_eq!(files, CheckpointFiles::in_dir(&snapshot));
    }

    #[test]
    fn ids_and_paths_are_told_apart() {
        assert!(!looks_like_path("amazon/chronos-bolt-small"));
        assert!(!looks_like_path("chronos-bolt-small"));
        assert!(looks_like_path("../shared/models/demo-bolt-tiny"));
        assert!(looks_like_path("/models/bolt"));
        assert!(looks_like_path("./bolt"));
        assert!(looks_like_path("a/b/c"));
    }
}
