//! Our T5 encoder/decoder stacks on candle, shaped for Chronos-Bolt: inputs are embeddings
//! (not token ids), the encoder takes a key mask, the decoder runs exactly one step.
//!
//! Ported behaviour (HF transformers `modeling_t5.py`, which chronos_bolt.py builds on):
//! - `T5LayerNorm`: RMS norm without mean subtraction and without bias,
//!   `weight * x / sqrt(mean(x^2) + eps)`.
//! - `T5Attention`: q/k/v/o linears without bias, inner size `num_heads * d_kv`, scores
//!   `q @ k^T` with NO `1/sqrt(d_kv)` scaling (T5 folds it into the initialisation), softmax in
//!   f32, the position bias (relative bias + additive mask) added to the scores.
//! - Relative position bias: only block 0 owns `relative_attention_bias`; `T5Stack` computes the
//!   bias once and hands it to every later block.
//! - `T5LayerFF` with `DenseReluDense`: `wo(relu(wi(norm(x))))`, residual add.
//! - Pre-norm residual blocks; a final RMS norm closes each stack.
//!
//! Everything is batched: one matmul per projection over all `batch x tokens` rows (candle's
//! gemm, or `bolt_kernels::matmul_nt` when there are few rows), and one kernel call per
//! attention over all series and heads (`bolt_kernels::Attention` / `CrossAttention`).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, InplaceOp1, Layout, Result, Shape, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

use super::config::Config;
use bolt_kernels::{self as kernels, Attention, CrossAttention as CrossKernel};

/// `T5LayerNorm`: scale-only RMS norm (no mean subtraction, no bias).
#[derive(Clone, Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub fn load(vb: &VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps: eps as f32,
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // candle's fused kernel computes x / sqrt(mean(x^2) + eps) * weight in f32, which is
        // the T5LayerNorm formula (variance taken without subtracting the mean).
        candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps)
    }
}

/// A linear layer `x @ w^T (+ bias)` from a PyTorch `[out, in]` weight. Products with few
/// rows run on [`kernels::matmul_nt`], the others on candle's gemm.
#[derive(Clone, Debug)]
pub struct Dense(Linear);

impl Dense {
    pub fn new(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        weight.dims2()?;
        Ok(Self(Linear::new(aligned(weight)?, bias)))
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let weight = self.0.weight();
        let (out_dim, in_dim) = weight.dims2()?;
        if x.dims().last() != Some(&in_dim) {
            candle_core::bail!(
                "linear: input {:?} does not end in the weight's {in_dim} inputs",
                x.dims()
            );
        }
        let rows = x.elem_count() / in_dim;
        if !kernels::prefers_nt(kernels::isa(), rows, in_dim, out_dim) {
            return self.0.forward(x);
        }
        let mut dims = x.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = out_dim;
        }
        let y = x
            .contiguous()?
            .apply_op2_no_bwd(weight, &MatmulNt)?
            .reshape(dims)?;
        match self.0.bias() {
            Some(bias) => y.broadcast_add(bias),
            None => Ok(y),
        }
    }
}

/// `t` as contiguous f32 whose data starts on a 64-byte boundary: `t` itself when it already
/// is, else a copy (a view into padded storage). The kernels read weights in place, and
/// aligned rows load faster; the loader stores every weight this way, so layers share it.
pub fn aligned(t: &Tensor) -> Result<Tensor> {
    let (storage, layout) = t.storage_and_layout();
    let in_place = match &*storage {
        candle_core::Storage::Cpu(s) => f32_data("aligned", s, layout).is_ok_and(kernels::is_aligned),
        _ => false,
    };
    drop(storage);
    if in_place {
        return Ok(t.clone());
    }
    let data = t.flatten_all()?.to_vec1::<f32>()?;
    from_aligned(kernels::Aligned::copy_of(&data), t.shape(), t.device())
}

/// A tensor of `shape` over aligned storage.
pub fn from_aligned(data: kernels::Aligned, shape: &Shape, device: &candle_core::Device) -> Result<Tensor> {
    let len = data.len();
    let (storage, start) = data.into_parts();
    let total = storage.len();
    Tensor::from_vec(storage, total, device)?
        .narrow(0, start, len)?
        .reshape(shape)
}

/// `x @ w^T` through [`kernels::matmul_nt`], for contiguous f32 `x` `(.., k)` and `w` `(n, k)`.
struct MatmulNt;

/// The contiguous f32 data of a storage, or an error naming the op.
fn f32_data<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 operands expected");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: contiguous operands expected");
    };
    Ok(&data[start..end])
}

impl CustomOp2 for MatmulNt {
    fn name(&self) -> &'static str {
        "matmul-nt"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(self.name(), s1, l1)?;
        let w = f32_data(self.name(), s2, l2)?;
        let (n, k) = l2.shape().dims2()?;
        if k == 0 || x.len() % k != 0 {
            candle_core::bail!("matmul-nt: input width does not match the weight");
        }
        let m = x.len() / k;
        let out = kernels::matmul_nt(kernels::isa(), x, w, m, k, n);
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

/// A bias-free linear layer from a PyTorch `[out, in]` weight.
fn linear_no_bias(vb: &VarBuilder, in_dim: usize, out_dim: usize) -> Result<Dense> {
    Dense::new(&vb.get((out_dim, in_dim), "weight")?, None)
}

/// Stacks several `[out_i, in]` weights into one `[sum out_i, in]` linear, so q/k/v (or k/v)
/// become a single matmul: the same products, fewer and larger gemm calls.
fn fused_linear(vb: &VarBuilder, names: &[&str], in_dim: usize, out_dim: usize) -> Result<Dense> {
    // Stacked straight into aligned storage: no intermediate copy while loading.
    let mut stacked = kernels::Aligned::zeros(names.len() * out_dim * in_dim);
    for (n, rows) in names.iter().zip(stacked.chunks_exact_mut(out_dim * in_dim)) {
        let part = vb.pp(*n).get((out_dim, in_dim), "weight")?;
        rows.copy_from_slice(&part.flatten_all()?.to_vec1::<f32>()?);
    }
    let shape = Shape::from((names.len() * out_dim, in_dim));
    Dense::new(&from_aligned(stacked, &shape, vb.device())?, None)
}

/// `DenseReluDense` plus its pre-norm (`T5LayerFF`).
#[derive(Clone, Debug)]
struct FeedForward {
    norm: RmsNorm,
    wi: Dense,
    wo: Dense,
}

impl FeedForward {
    fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
        let dense = vb.pp("DenseReluDense");
        Ok(Self {
            norm: RmsNorm::load(&vb.pp("layer_norm"), cfg.d_model, cfg.layer_norm_epsilon)?,
            wi: linear_no_bias(&dense.pp("wi"), cfg.d_model, cfg.d_ff)?,
            wo: linear_no_bias(&dense.pp("wo"), cfg.d_ff, cfg.d_model)?,
        })
    }

    /// `x + wo(relu(wi(norm(x))))` (dropout is the identity at inference).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.wi.forward(&self.norm.forward(x)?)?.contiguous()?;
        h.inplace_op1(&Relu)?;
        x + self.wo.forward(&h)?
    }
}

/// `max(x, 0)` in place: the feed-forward's widest activation is not copied for it.
struct Relu;

impl InplaceOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu-in-place"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("relu-in-place: f32 expected");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("relu-in-place: contiguous tensor expected");
        };
        for v in &mut data[start..end] {
            *v = v.max(0.0);
        }
        Ok(())
    }
}

/// [`Attention`] as a candle op.
struct AttentionOp<'a>(Attention<'a>);

impl CustomOp1 for AttentionOp<'_> {
    fn name(&self) -> &'static str {
        "self-attention"
    }

    /// `(b, s, 3 * heads * d_kv)` fused projection in, `(b, s, heads * d_kv)` context out.
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = f32_data(self.name(), storage, layout)?;
        let (b, s, width) = layout.shape().dims3()?;
        let att = self.0;
        let inner = att.heads * att.d_kv;
        if s != att.tokens || width != 3 * inner || att.mask.len() != b * s {
            candle_core::bail!("self-attention: projection does not match the mask and heads");
        }
        let out = att.run(kernels::isa(), qkv, b);
        Ok((CpuStorage::F32(out), Shape::from((b, s, inner))))
    }
}

/// Encoder self-attention (`layer.0` of an encoder block).
#[derive(Clone, Debug)]
struct SelfAttention {
    norm: RmsNorm,
    qkv: Dense,
    o: Dense,
    heads: usize,
    d_kv: usize,
}

impl SelfAttention {
    fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
        let att = vb.pp("SelfAttention");
        Ok(Self {
            norm: RmsNorm::load(&vb.pp("layer_norm"), cfg.d_model, cfg.layer_norm_epsilon)?,
            qkv: fused_linear(&att, &["q", "k", "v"], cfg.d_model, cfg.inner_dim())?,
            o: linear_no_bias(&att.pp("o"), cfg.inner_dim(), cfg.d_model)?,
            heads: cfg.num_heads,
            d_kv: cfg.d_kv,
        })
    }

    /// `x + o(attention(norm(x)))`; `bias` is the `(heads, s, s)` relative bias, `mask` the
    /// `(b, s)` additive key mask.
    fn forward(&self, x: &Tensor, bias: &[f32], mask: &[f32]) -> Result<Tensor> {
        let (_, s, _) = x.dims3()?;
        let qkv = self.qkv.forward(&self.norm.forward(x)?)?.contiguous()?;
        // (b, s, h * d_kv), heads concatenated per token as HF's `unshape`.
        let ctx = qkv.apply_op1_no_bwd(&AttentionOp(Attention {
            bias,
            mask,
            heads: self.heads,
            d_kv: self.d_kv,
            tokens: s,
        }))?;
        x + self.o.forward(&ctx)?
    }
}

/// T5 relative position bucket (`T5Attention._relative_position_bucket`), for
/// `relative = key position - query position`. Computed in f32 like the reference so bucket
/// boundaries (distances that are powers of two) land on the same side.
pub fn relative_position_bucket(
    relative: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let mut buckets = num_buckets;
    let mut offset = 0;
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            offset = buckets;
        }
        relative.unsigned_abs()
    } else {
        // Causal: only keys at or before the query get distinct buckets.
        (-relative.min(0)).unsigned_abs()
    };
    let max_exact = (buckets / 2) as u64;
    if distance < max_exact {
        return offset + distance as usize;
    }
    let ratio =
        (distance as f32 / max_exact as f32).ln() / (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = max_exact as usize + (ratio * (buckets as f32 - max_exact as f32)) as usize;
    offset + large.min(buckets - 1)
}

/// The encoder stack (`T5Stack` with `is_decoder = False`) fed with embeddings.
#[derive(Clone, Debug)]
pub struct Encoder {
    blocks: Vec<(SelfAttention, FeedForward)>,
    /// `relative_attention_bias.weight` of block 0, `[buckets, heads]`, kept on the host: the
    /// bias tensor is assembled per forward for the actual sequence length.
    relative_bias: Vec<f32>,
    final_norm: RmsNorm,
    heads: usize,
    num_buckets: usize,
    max_distance: usize,
    span: tracing::Span,
}

impl Encoder {
    pub fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let layer = vb.pp(format!("block.{i}.layer"));
                Ok((
                    SelfAttention::load(&layer.pp("0"), cfg)?,
                    FeedForward::load(&layer.pp("1"), cfg)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let relative_bias = vb
            .pp("block.0.layer.0.SelfAttention.relative_attention_bias")
            .get((cfg.relative_attention_num_buckets, cfg.num_heads), "weight")?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(Self {
            blocks,
            relative_bias,
            final_norm: RmsNorm::load(&vb.pp("final_layer_norm"), cfg.d_model, cfg.layer_norm_epsilon)?,
            heads: cfg.num_heads,
            num_buckets: cfg.relative_attention_num_buckets,
            max_distance: cfg.relative_attention_max_distance,
            span: tracing::span!(tracing::Level::TRACE, "encoder"),
        })
    }

    /// The bidirectional relative position bias `(heads, s, s)` for `s` tokens
    /// (`compute_bias` with `bidirectional=True`).
    fn position_bias(&self, s: usize) -> Vec<f32> {
        let h = self.heads;
        let mut bias = vec![0f32; h * s * s];
        for q in 0..s {
            for k in 0..s {
                let bucket =
                    relative_position_bucket(k as i64 - q as i64, true, self.num_buckets, self.max_distance);
                for head in 0..h {
                    bias[(head * s + q) * s + k] = self.relative_bias[bucket * h + head];
                }
            }
        }
        bias
    }

    /// `x`: `(b, s, d_model)` embeddings; `mask`: `(b, s)` additive key mask (0 or f32::MIN).
    /// Returns the final-normed hidden states `(b, s, d_model)`.
    pub fn forward(&self, x: &Tensor, mask: &[f32]) -> Result<Tensor> {
        let _enter = self.span.enter();
        let (_, s, _) = x.dims3()?;
        // HF adds the extended mask to the block-0 position bias and reuses the sum in every
        // block; the softmax adds the same sum, read from the two parts.
        let bias = self.position_bias(s);
        let mut x = x.clone();
        for (attention, feed_forward) in &self.blocks {
            x = attention.forward(&x, &bias, mask)?;
            x = feed_forward.forward(&x)?;
        }
        self.final_norm.forward(&x)
    }
}

/// Cross-attention of one decoder position (`T5LayerCrossAttention`: no position bias, only
/// the encoder mask), without projecting the encoder states. With one query per head the
/// products reassociate: `q_h . (K_h e_t) = (K_h^T q_h) . e_t` and
/// `sum_t p_t (V_h e_t) = V_h (sum_t p_t e_t)`, so each head scores and mixes the `d_model`
/// encoder states directly. That replaces the `(b * s) x d_model x 2 inner` k/v projection
/// by `b x heads x s x d_model` products per layer, the same sums in another order.
#[derive(Clone, Debug)]
struct CrossAttention {
    norm: RmsNorm,
    q: Dense,
    /// `k.weight`, `(heads * d_kv, d_model)`, on the host for the kernel.
    k: kernels::Aligned,
    /// `v.weight`, `(heads * d_kv, d_model)`.
    v: kernels::Aligned,
    o: Dense,
    heads: usize,
    d_kv: usize,
    d_model: usize,
}

impl CrossAttention {
    fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
        let (d, inner) = (cfg.d_model, cfg.inner_dim());
        let ca = vb.pp("EncDecAttention");
        let host = |name: &str| -> Result<kernels::Aligned> {
            let weight = ca.pp(name).get((inner, d), "weight")?;
            Ok(kernels::Aligned::copy_of(
                &weight.flatten_all()?.to_vec1::<f32>()?,
            ))
        };
        Ok(Self {
            norm: RmsNorm::load(&vb.pp("layer_norm"), d, cfg.layer_norm_epsilon)?,
            q: linear_no_bias(&ca.pp("q"), d, inner)?,
            k: host("k")?,
            v: host("v")?,
            o: linear_no_bias(&ca.pp("o"), inner, d)?,
            heads: cfg.num_heads,
            d_kv: cfg.d_kv,
            d_model: d,
        })
    }

    /// `x + o(attention(norm(x), encoded))`: `x` is `(b, d_model)`, `encoded` `(b, s, d_model)`,
    /// `mask` the `(b, s)` additive key mask.
    fn forward(&self, x: &Tensor, encoded: &Tensor, mask: &[f32]) -> Result<Tensor> {
        let q = self.q.forward(&self.norm.forward(x)?)?.contiguous()?;
        let op = CrossOp {
            att: CrossKernel {
                k: &self.k,
                v: &self.v,
                heads: self.heads,
                d_kv: self.d_kv,
                d_model: self.d_model,
            },
            mask,
        };
        // (b, heads * d_kv), heads concatenated as HF's `unshape`.
        let ctx = q.apply_op2_no_bwd(&encoded.contiguous()?, &op)?;
        x + self.o.forward(&ctx)?
    }
}

/// [`CrossKernel`] as a candle op on the projected queries and the encoder states.
struct CrossOp<'a> {
    att: CrossKernel<'a>,
    mask: &'a [f32],
}

impl CustomOp2 for CrossOp<'_> {
    fn name(&self) -> &'static str {
        "cross-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let q = f32_data(self.name(), s1, l1)?;
        let encoded = f32_data(self.name(), s2, l2)?;
        let (b, inner) = l1.shape().dims2()?;
        let (eb, s, d) = l2.shape().dims3()?;
        let att = self.att;
        if eb != b || inner != att.heads * att.d_kv || d != att.d_model || self.mask.len() != b * s {
            candle_core::bail!("cross-attention: queries, encoder states and mask do not match");
        }
        let out = att.run(kernels::isa(), q, encoded, self.mask, b);
        Ok((CpuStorage::F32(out), Shape::from((b, inner))))
    }
}

/// One decoder block (`T5Block` with `is_decoder = True`), for a single decoder position.
#[derive(Clone, Debug)]
struct DecoderBlock {
    self_norm: RmsNorm,
    /// Self-attention over one token: the softmax of a single score is exactly 1, so the
    /// output is `o(v(x))`; q, k and the relative bias (a per-head constant added to that
    /// single score) cannot change it and are only shape-checked at load.
    self_v: Dense,
    self_o: Dense,
    cross: CrossAttention,
    feed_forward: FeedForward,
}

impl DecoderBlock {
    fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
        let (d, inner) = (cfg.d_model, cfg.inner_dim());
        let sa = vb.pp("0.SelfAttention");
        Ok(Self {
            self_norm: RmsNorm::load(&vb.pp("0.layer_norm"), d, cfg.layer_norm_epsilon)?,
            self_v: linear_no_bias(&sa.pp("v"), d, inner)?,
            self_o: linear_no_bias(&sa.pp("o"), inner, d)?,
            cross: CrossAttention::load(&vb.pp("1"), cfg)?,
            feed_forward: FeedForward::load(&vb.pp("2"), cfg)?,
        })
    }

    /// `x`: `(b, d_model)` decoder state; `encoded`: `(b, s, d_model)`; `mask`: `(b, s)`.
    fn forward(&self, x: &Tensor, encoded: &Tensor, mask: &[f32]) -> Result<Tensor> {
        let x = (x + self
            .self_o
            .forward(&self.self_v.forward(&self.self_norm.forward(x)?)?)?)?;
        let x = self.cross.forward(&x, encoded, mask)?;
        self.feed_forward.forward(&x)
    }
}

/// The decoder stack run for exactly one position, the decoder start token.
#[derive(Clone, Debug)]
pub struct Decoder {
    blocks: Vec<DecoderBlock>,
    final_norm: RmsNorm,
    span: tracing::Span,
}

impl Decoder {
    pub fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
        let blocks = (0..cfg.decoder_layers())
            .map(|i| DecoderBlock::load(&vb.pp(format!("block.{i}.layer")), cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            blocks,
            final_norm: RmsNorm::load(&vb.pp("final_layer_norm"), cfg.d_model, cfg.layer_norm_epsilon)?,
            span: tracing::span!(tracing::Level::TRACE, "decoder"),
        })
    }

    /// `start`: `(d_model,)` embedding of the decoder start token; returns `(b, d_model)`,
    /// the final-normed `last_hidden_state` of that single position.
    pub fn forward(&self, start: &Tensor, encoded: &Tensor, mask: &[f32]) -> Result<Tensor> {
        let _enter = self.span.enter();
        let (b, _, d) = encoded.dims3()?;
        let mut x = start.reshape((1, d))?.broadcast_as((b, d))?.contiguous()?;
        for block in &self.blocks {
            x = block.forward(&x, encoded, mask)?;
        }
        self.final_norm.forward(&x)
    }
}

/// Additive key mask `(b, s)` (row-major, from per-token attendance in the same order): 0 where
/// attended, the f32 minimum where not, as HF's extended attention mask. A masked key then
/// gets an exact 0 after the softmax whenever one key is attended (the REG token guarantees
/// it), and a row with no attended key degrades to uniform weights as in the reference
/// instead of NaN.
pub fn additive_mask(attend: &[bool]) -> Vec<f32> {
    attend.iter().map(|&a| if a { 0.0 } else { f32::MIN }).collect()
}

#[cfg(test)]
mod tests {
    use super::{relative_position_bucket, Dense};
    use candle_core::{Device, Storage, Tensor};

    #[test]
    fn linear_weights_start_on_a_cache_line() {
        for (n, k) in [(3, 5), (64, 256), (7, 17)] {
            let values: Vec<f32> = (0..n * k).map(|v| v as f32).collect();
            let weight = Tensor::from_vec(values.clone(), (n, k), &Device::Cpu).unwrap();
            let dense = Dense::new(&weight, None).unwrap();
            let stored = dense.0.weight();
            let (storage, layout) = stored.storage_and_layout();
            let Storage::Cpu(candle_core::CpuStorage::F32(data)) = &*storage else {
                panic!("f32 weight expected");
            };
            let (start, end) = layout.contiguous_offsets().unwrap();
            assert!(bolt_kernels::is_aligned(&data[start..end]));
            assert_eq!(&data[start..end], &values[..]);
            assert_eq!(stored.dims2().unwrap(), (n, k));
        }
    }

    #[test]
    fn bidirectional_buckets_match_t5() {
        // 32 buckets, max distance 128: 16 per direction, exact below 8, log-spaced above.
        let b = |r| relative_position_bucket(r, true, 32, 128);
        assert_eq!(b(0), 0);
        assert_eq!(b(-7), 7);
        assert_eq!(b(7), 23);
        assert_eq!(b(-8), 8);
        assert_eq!(b(-16), 10);
        assert_eq!(b(-32), 12);
        assert_eq!(b(-64), 14);
        assert_eq!(b(-127), 15);
        assert_eq!(b(-500), 15);
        assert_eq!(b(500), 31);
    }

    #[test]
    fn causal_buckets_ignore_future_keys() {
        let b = |r| relative_position_bucket(r, false, 32, 128);
        assert_eq!(b(5), 0);
        assert_eq!(b(-5), 5);
        assert_eq!(b(-15), 15);
        assert_eq!(b(-16), 16);
        assert_eq!(b(-1000), 31);
    }
}
