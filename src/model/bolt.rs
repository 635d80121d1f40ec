//! One Chronos-Bolt forward pass (chronos_bolt.py `ChronosBoltModelForForecasting.forward`):
//! instance norm, patching, input residual block, REG token, T5 encoder, one decoder step,
//! output residual block, unscaling. The pipeline around it (truncation, the expansion loop
//! past the model horizon) lives in `mod.rs`.

use candle_core::{Device, Result, Tensor};
use candle_nn::{Module, VarBuilder};

use super::config::Config;
use super::t5::{additive_mask, Decoder, Dense, Encoder};

/// chronos_bolt.py `ResidualBlock` without layer norm (Chronos-Bolt builds both of its blocks
/// with `use_layer_norm=False`): `output(relu(hidden(x))) + residual(x)`, all with bias.
#[derive(Clone, Debug)]
struct ResidualBlock {
    hidden: Dense,
    output: Dense,
    residual: Dense,
}

impl ResidualBlock {
    fn load(vb: &VarBuilder, in_dim: usize, hidden_dim: usize, out_dim: usize) -> Result<Self> {
        let linear = |name: &str, i: usize, o: usize| -> Result<Dense> {
            let vb = vb.pp(name);
            Dense::new(&vb.get((o, i), "weight")?, Some(vb.get(o, "bias")?))
        };
        Ok(Self {
            hidden: linear("hidden_layer", in_dim, hidden_dim)?,
            output: linear("output_layer", hidden_dim, out_dim)?,
            residual: linear("residual_layer", in_dim, out_dim)?,
        })
    }
}

impl Module for ResidualBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let hidden = self.hidden.forward(x)?.relu()?;
        self.output.forward(&hidden)? + self.residual.forward(x)?
    }
}

/// chronos_bolt.py `InstanceNorm.forward` in f32 over the observed values: `loc` is their mean
/// (0 if none), `scale` their population standard deviation (1 if none, `1e-5` when exactly 0).
pub fn instance_norm(x: &[f32]) -> (f32, f32) {
    // Sums in f64, then rounded to f32: at least as accurate as torch's f32 `nanmean`.
    let (mut sum, mut count) = (0f64, 0usize);
    for &v in x.iter().filter(|v| !v.is_nan()) {
        sum += f64::from(v);
        count += 1;
    }
    if count == 0 {
        return (0.0, 1.0);
    }
    let loc = (sum / count as f64) as f32;
    let squares: f64 = x
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| {
            let d = v - loc;
            f64::from(d * d)
        })
        .sum();
    let scale = (squares / count as f64).sqrt() as f32;
    (loc, if scale == 0.0 { 1e-5 } else { scale })
}

/// The model with its weights, ready to run on a batch.
#[derive(Clone, Debug)]
pub struct Network {
    input_block: ResidualBlock,
    output_block: ResidualBlock,
    /// `shared.weight` rows: 0 is the decoder start token, 1 the REG token.
    start_embedding: Tensor,
    reg_embedding: Option<Tensor>,
    encoder: Encoder,
    decoder: Decoder,
    patch: usize,
    context_length: usize,
    outputs: usize,
    /// Widest activation per token (heads x tokens scores, d_ff, d_model), for chunking.
    widths: (usize, usize, usize),
    device: Device,
}

/// Largest intermediate (in f32 elements) one chunk of the batch may allocate; bigger batches
/// are run in chunks of equal size so memory stays bounded (the series are independent).
/// glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh pages, so each
/// such activation costs a page fault per 4 KiB and a munmap; 4M elements (16 MiB) stay below
/// it and the freed blocks are reused. Measured on the replay benchmark's forwards (small
/// dimensions, 4 weekly runs, mostly 90d expansion batches of 288 series at contexts up to
/// 794), alternating with 12M elements: 81-83 s against 88-92 s, system time 15 s -> 4 s,
/// peak RSS 350 -> 267 MB; 8M elements gave 82-83 s and 298 MB.
const CHUNK_ELEMENTS: usize = 4 << 20;

/// Series per chunk for `series` contexts with at most `most` per chunk: as few chunks as that
/// allows, of equal size (a remainder of a few series would run its products on few rows).
fn chunk_size(series: usize, most: usize) -> usize {
    let chunks = series.div_ceil(most.max(1)).max(1);
    series.div_ceil(chunks).max(1)
}

impl Network {
    pub fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
        let c = &cfg.chronos_config;
        let shared = vb.pp("shared").get((cfg.vocab_size(), cfg.d_model), "weight")?;
        let outputs = c.quantiles.len() * c.prediction_length;
        Ok(Self {
            input_block: ResidualBlock::load(
                &vb.pp("input_patch_embedding"),
                2 * c.input_patch_size,
                cfg.d_ff,
                cfg.d_model,
            )?,
            output_block: ResidualBlock::load(
                &vb.pp("output_patch_embedding"),
                cfg.d_model,
                cfg.d_ff,
                outputs,
            )?,
            start_embedding: shared.get(cfg.decoder_start_token_id)?,
            reg_embedding: if c.use_reg_token {
                Some(shared.get(1)?)
            } else {
                None
            },
            encoder: Encoder::load(&vb.pp("encoder"), cfg)?,
            decoder: Decoder::load(&vb.pp("decoder"), cfg)?,
            patch: c.input_patch_size,
            context_length: c.context_length,
            outputs,
            widths: (cfg.num_heads, cfg.d_ff, cfg.d_model),
            device: vb.device().clone(),
        })
    }

    /// Runs the model on contexts (f32, NaN = missing, any lengths) and returns, per series,
    /// the unscaled `quantiles x prediction_length` values, quantile-major.
    pub fn forward(&self, contexts: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let (heads, d_ff, d_model) = self.widths;
        let longest = contexts
            .iter()
            .map(|c| c.len().min(self.context_length))
            .max()
            .unwrap_or(0);
        let tokens = longest.div_ceil(self.patch) + 1;
        let per_series = tokens * (heads * tokens).max(d_ff).max(d_model) + self.outputs;
        let chunk = chunk_size(contexts.len(), CHUNK_ELEMENTS / per_series);
        let mut out = Vec::with_capacity(contexts.len());
        for part in contexts.chunks(chunk) {
            out.extend(self.forward_chunk(part)?);
        }
        Ok(out)
    }

    fn forward_chunk(&self, contexts: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let b = contexts.len();
        let ps = self.patch;
        // forward(): contexts longer than chronos_config.context_length keep their last points.
        let contexts: Vec<&[f32]> = contexts
            .iter()
            .map(|c| &c[c.len().saturating_sub(self.context_length)..])
            .collect();
        let norms: Vec<(f32, f32)> = contexts.iter().map(|c| instance_norm(c)).collect();

        // Patch: the batch is left-padded with NaN to its longest series, then to a multiple of
        // the patch size, so patches are aligned on the right end of every series.
        let longest = contexts.iter().map(|c| c.len()).max().unwrap_or(0).max(1);
        let total_patches = longest.div_ceil(ps);
        let padded = total_patches * ps;
        // Leading patches that no series observes are masked keys for every query: dropping
        // them changes nothing (relative distances between the kept tokens are unchanged) and
        // saves their compute.
        let first_observed = contexts
            .iter()
            .map(|c| {
                c.iter()
                    .position(|v| !v.is_nan())
                    .map_or(total_patches, |i| (padded - c.len() + i) / ps)
            })
            .min()
            .unwrap_or(0);
        let skip = first_observed.min(total_patches - 1);
        let patches = total_patches - skip;
        let tokens = patches + usize::from(self.reg_embedding.is_some());

        // Each patch's input is [scaled values (0 where missing), observed flags].
        let mut input = vec![0f32; b * patches * 2 * ps];
        let mut attend = vec![false; b * tokens];
        for (i, (c, &(loc, scale))) in contexts.iter().zip(&norms).enumerate() {
            let start = padded - c.len();
            for p in 0..patches {
                let row = &mut input[(i * patches + p) * 2 * ps..][..2 * ps];
                for k in 0..ps {
                    let t = (p + skip) * ps + k;
                    if t < start {
                        continue;
                    }
                    let v = c[t - start];
                    if !v.is_nan() {
                        row[k] = (v - loc) / scale;
                        row[ps + k] = 1.0;
                        attend[i * tokens + p] = true;
                    }
                }
            }
            if self.reg_embedding.is_some() {
                attend[i * tokens + patches] = true;
            }
        }
        let input = Tensor::from_vec(input, (b, patches, 2 * ps), &self.device)?;
        let mut embeds = self.input_block.forward(&input)?;
        if let Some(reg) = &self.reg_embedding {
            let d = reg.dim(0)?;
            let reg = reg.reshape((1, 1, d))?.broadcast_as((b, 1, d))?;
            embeds = Tensor::cat(&[&embeds, &reg], 1)?;
        }
        let mask = additive_mask(&attend);
        let encoded = self.encoder.forward(&embeds, &mask)?;
        let decoded = self.decoder.forward(&self.start_embedding, &encoded, &mask)?;
        let preds = self.output_block.forward(&decoded)?.to_vec2::<f32>()?;
        // InstanceNorm.inverse: x * scale + loc, per series.
        Ok(preds
            .into_iter()
            .zip(norms)
            .map(|(row, (loc, scale))| row.into_iter().map(|v| v * scale + loc).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{chunk_size, instance_norm};

    #[test]
    fn instance_norm_uses_observed_values_and_population_std() {
        let (loc, scale) = instance_norm(&[1.0, f32::NAN, 3.0]);
        assert_eq!((loc, scale), (2.0, 1.0));
        assert_eq!(instance_norm(&[f32::NAN, f32::NAN]), (0.0, 1.0));
        assert_eq!(instance_norm(&[950.0; 4]), (950.0, 1e-5));
    }

    #[test]
    fn batches_split_into_the_fewest_equal_chunks() {
        assert_eq!(chunk_size(32, 40), 32);
        assert_eq!(chunk_size(32, 31), 16);
        assert_eq!(chunk_size(288, 40), 36);
        assert_eq!(chunk_size(288, 288), 288);
        assert_eq!(chunk_size(5, 0), 1);
        assert_eq!(chunk_size(0, 10), 1);
    }
}
