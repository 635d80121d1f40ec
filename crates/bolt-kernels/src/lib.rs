//! model-optimizer's f32 kernels for the Chronos-Bolt forward pass's shapes where a general
//! gemm is slow: products with
//! few rows (batch 1, the decoder's one position per series, the output head) and the
//! encoder's attention. Both operands of every product here are row-major along the summed
//! dimension, so each output is a dot product of two contiguous rows: no packing, and the
//! weights are read once per call.
//!
//! SIMD through `pulp` (safe, instruction set chosen at run time: AVX-512F where the CPU has
//! it, else AVX2+FMA, else portable scalar code); threads through rayon's global pool, the one
//! candle's gemm uses. `MODEL_OPTIMIZER_SIMD` caps the choice: `avx2` (no AVX-512) or
//! `scalar` (portable code); the tests run every path, AVX-512's lane arithmetic included.

use std::sync::OnceLock;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// Rows of `x` per register tile.
const MR: usize = 4;
/// Rows of `w` per register tile: `MR x NR` accumulators plus `NR + 1` operands fill the 16
/// AVX2 vector registers.
const NR: usize = 3;
/// Bytes of `w` rows one pass over the rows of `x` reuses; sized for a 512 KiB L2.
const W_BLOCK_BYTES: usize = 128 << 10;
/// Padding of the attention's key dimension, so every dot product is whole vectors (16 f32 is
/// one AVX-512 vector, two AVX2 ones).
const KEY_PAD: usize = 16;

/// f32 per 64-byte cache line: rows that start on one are loaded without straddling lines
/// (with AVX-512 a straddling load is every load; aligned operands make the few-row products
/// about 1.35x faster there).
const LINE: usize = 16;

/// `len` f32 starting on a 64-byte boundary, inside a plain `Vec` ([`Aligned::into_parts`]
/// gives it with the data's offset, for code that takes a `Vec`, such as a candle tensor).
#[derive(Clone, Debug, Default)]
pub struct Aligned {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Aligned {
        let buf = vec![0f32; len + LINE - 1];
        let start = buf.as_ptr().align_offset(64).min(LINE - 1);
        Aligned { buf, start, len }
    }

    /// A copy of `data`.
    pub fn copy_of(data: &[f32]) -> Aligned {
        let mut out = Aligned::zeros(data.len());
        out.copy_from_slice(data);
        out
    }

    /// The storage and the offset of the data in it.
    pub fn into_parts(self) -> (Vec<f32>, usize) {
        (self.buf, self.start)
    }
}

impl std::ops::Deref for Aligned {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buf[self.start..][..self.len]
    }
}

impl std::ops::DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..][..self.len]
    }
}

/// Whether `data` starts on a 64-byte boundary.
pub fn is_aligned(data: &[f32]) -> bool {
    data.as_ptr().align_offset(64) == 0
}

/// The instruction sets the kernels run on, from the narrowest up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable scalar code.
    Scalar,
    /// AVX2 + FMA (x86-64-v3). Elsewhere than x86-64, the best SIMD pulp finds.
    Avx2,
    /// AVX-512F (x86-64-v4): 16-lane vectors and 32 vector registers.
    Avx512,
    /// Portable code on 16-lane vectors: AVX-512's lane arithmetic on any CPU, so the tests
    /// check that path's tiles and remainders where the CPU lacks it.
    #[cfg(test)]
    Portable512,
}

impl Isa {
    /// The widest instruction set this CPU has.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if pulp::x86::V4::try_new().is_some() {
                Isa::Avx512
            } else if pulp::x86::V3::try_new().is_some() {
                Isa::Avx2
            } else {
                Isa::Scalar
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Isa::Avx2
        }
    }

    /// `detected`, capped by a `MODEL_OPTIMIZER_SIMD` value: `scalar` or `avx2`; any other
    /// value, or none, leaves it as detected.
    pub fn capped(detected: Isa, requested: Option<&str>) -> Isa {
        match requested {
            Some("scalar") => Isa::Scalar,
            Some("avx2") => detected.min(Isa::Avx2),
            _ => detected,
        }
    }

    /// The name `MODEL_OPTIMIZER_SIMD` and the benchmarks use.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            #[cfg(test)]
            Isa::Portable512 => "portable512",
        }
    }
}

/// The instruction set the kernels use in this process: [`Isa::detect`] capped by
/// `MODEL_OPTIMIZER_SIMD`, read once.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        Isa::capped(
            Isa::detect(),
            std::env::var("MODEL_OPTIMIZER_SIMD").ok().as_deref(),
        )
    })
}

/// Runs `op` on `isa`, or on the widest narrower one this CPU has.
fn dispatch<Op: WithSimd>(isa: Isa, op: Op) -> Op::Output {
    match isa {
        Isa::Scalar => Simd::vectorize(pulp::Scalar::new(), op),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => match pulp::x86::V4::try_new() {
            Some(simd) => Simd::vectorize(simd, op),
            None => dispatch(Isa::Avx2, op),
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => match pulp::x86::V3::try_new() {
            Some(simd) => Simd::vectorize(simd, op),
            None => Simd::vectorize(pulp::Scalar::new(), op),
        },
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx512 | Isa::Avx2 => pulp::Arch::new().dispatch(op),
        #[cfg(test)]
        Isa::Portable512 => Simd::vectorize(pulp::Scalar512b, op),
    }
}

/// Makes the calling thread one of the threads of rayon's global pool, the pool the kernels
/// and candle's gemm use (call it from the program's main thread before any parallel work;
/// the pool keeps `RAYON_NUM_THREADS` threads, this one included). A parallel step called
/// from a thread outside the pool hands every share to the pool's threads and sleeps until
/// they finish; from this one, it runs a share itself, so a forward pass of many small steps
/// (batch 1, the decoder) is not spent waking threads, and its buffers stay in this thread's
/// allocator arena. Returns false, changing nothing, if the global pool already exists.
pub fn pool_on_this_thread() -> bool {
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
        .is_ok()
}

/// Whether [`matmul_nt`] on `isa` beats candle's gemm on an `(m, k) x (n, k)^T` product.
/// Measured on the model's shapes (`cargo bench --bench kernels`): packing the weights costs
/// gemm more than it saves below ~64 rows, and up to ~160 rows where the output is no wider
/// than the summed dimension: with AVX-512 for the attention output and the feed-forward's
/// `wo`, with AVX2 for `wo` only (its summed dimension is 4 times its output).
pub fn prefers_nt(isa: Isa, m: usize, k: usize, n: usize) -> bool {
    let wide = if isa >= Isa::Avx512 { n <= k } else { k >= 4 * n };
    m <= 64 || (m <= 160 && wide)
}

/// A row-major matrix read by the kernels: its values and the distance between rows.
type Strided<'a> = (&'a [f32], usize);
/// A row-major matrix the kernels write: its values and the distance between rows.
type StridedMut<'a> = (&'a mut [f32], usize);

/// `MR' x NR'` dot products of rows of `x` and rows of `w` (row strides `ldx`, `ldw`, length
/// `k`), stored at `out[a * ldo + b]`.
#[inline(always)]
fn tile<S: Simd, const R: usize, const C: usize>(
    s: S,
    (x, ldx): Strided<'_>,
    (w, ldw): Strided<'_>,
    k: usize,
    (out, ldo): StridedMut<'_>,
) {
    let xs: [&[f32]; R] = core::array::from_fn(|a| &x[a * ldx..][..k]);
    let ws: [&[f32]; C] = core::array::from_fn(|b| &w[b * ldw..][..k]);
    let xv: [&[S::f32s]; R] = core::array::from_fn(|a| S::as_simd_f32s(xs[a]).0);
    let wv: [&[S::f32s]; C] = core::array::from_fn(|b| S::as_simd_f32s(ws[b]).0);
    let nv = xv[0].len();
    let xv: [&[S::f32s]; R] = core::array::from_fn(|a| &xv[a][..nv]);
    let wv: [&[S::f32s]; C] = core::array::from_fn(|b| &wv[b][..nv]);
    let mut acc = [[s.splat_f32s(0.0); C]; R];
    for t in 0..nv {
        let wt: [S::f32s; C] = core::array::from_fn(|b| wv[b][t]);
        for a in 0..R {
            let xt = xv[a][t];
            for b in 0..C {
                acc[a][b] = s.mul_add_f32s(xt, wt[b], acc[a][b]);
            }
        }
    }
    let done = k - S::as_simd_f32s(xs[0]).1.len();
    for a in 0..R {
        for b in 0..C {
            let mut sum = s.reduce_sum_f32s(acc[a][b]);
            for t in done..k {
                sum = xs[a][t].mul_add(ws[b][t], sum);
            }
            out[a * ldo + b] = sum;
        }
    }
}

/// `out[i * ldo + j] = x_i . w_j` for the `m` rows of `x` and `n` rows of `w` (row strides
/// `ldx`, `ldw`; `k` summed), on the calling thread.
#[inline(always)]
fn nt<S: Simd>(
    s: S,
    (x, ldx): Strided<'_>,
    (w, ldw): Strided<'_>,
    (m, k, n): (usize, usize, usize),
    (out, ldo): StridedMut<'_>,
) {
    let block = (W_BLOCK_BYTES / (4 * k.max(1))).max(NR) / NR * NR;
    for jb in (0..n).step_by(block) {
        let je = (jb + block).min(n);
        for i in (0..m).step_by(MR) {
            let r = (m - i).min(MR);
            let x = &x[i * ldx..];
            for j in (jb..je).step_by(NR) {
                let c = (je - j).min(NR);
                let w = &w[j * ldw..];
                let o = &mut out[i * ldo + j..];
                match (r, c) {
                    (4, 3) => tile::<S, 4, 3>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                    (4, 2) => tile::<S, 4, 2>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                    (4, 1) => tile::<S, 4, 1>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                    (3, 3) => tile::<S, 3, 3>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                    (3, 2) => tile::<S, 3, 2>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                    (3, 1) => tile::<S, 3, 1>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                    (2, 3) => tile::<S, 2, 3>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                    (2, 2) => tile::<S, 2, 2>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                    (2, 1) => tile::<S, 2, 1>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                    (1, 3) => tile::<S, 1, 3>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                    (1, 2) => tile::<S, 1, 2>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                    _ => tile::<S, 1, 1>(s, (x, ldx), (w, ldw), k, (o, ldo)),
                }
            }
        }
    }
}

/// `R` rows of `out` at vectors `col..col + V`: `out[r][j] = sum_t a[r * lda + t] * b[t * ldb + j]`.
#[inline(always)]
fn nn_tile<S: Simd, const R: usize, const V: usize>(
    s: S,
    (a, lda): Strided<'_>,
    (b, ldb): Strided<'_>,
    k: usize,
    col: usize,
    (out, ldo): StridedMut<'_>,
) {
    let lanes = core::mem::size_of::<S::f32s>() / 4;
    let width = (col + V) * lanes;
    let mut acc = [[s.splat_f32s(0.0); V]; R];
    for t in 0..k {
        let row = S::as_simd_f32s(&b[t * ldb..][..width]).0;
        let bt: [S::f32s; V] = core::array::from_fn(|c| row[col + c]);
        for r in 0..R {
            let at = s.splat_f32s(a[r * lda + t]);
            for c in 0..V {
                acc[r][c] = s.mul_add_f32s(at, bt[c], acc[r][c]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let row = S::as_mut_simd_f32s(&mut out[r * ldo..][..width]).0;
        row[col..col + V].copy_from_slice(acc);
    }
}

/// `out[i * ldo + j] = sum_t a[i * lda + t] * b[t * ldb + j]` for the `m` rows of `a` and `n`
/// columns of `b` (`k` summed), on the calling thread. Each output vector is a sum of
/// broadcast-times-row products: no horizontal sums, the better form when `k` is short.
#[inline(always)]
fn nn<S: Simd>(
    s: S,
    (a, lda): Strided<'_>,
    (b, ldb): Strided<'_>,
    (m, k, n): (usize, usize, usize),
    (out, ldo): StridedMut<'_>,
) {
    const R: usize = 4;
    const V: usize = 3;
    let lanes = core::mem::size_of::<S::f32s>() / 4;
    let vectors = n / lanes;
    for i in (0..m).step_by(R) {
        let r = (m - i).min(R);
        let a = &a[i * lda..];
        let o = &mut out[i * ldo..];
        for col in (0..vectors).step_by(V) {
            match (r, (vectors - col).min(V)) {
                (4, 3) => nn_tile::<S, 4, 3>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
                (4, 2) => nn_tile::<S, 4, 2>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
                (4, 1) => nn_tile::<S, 4, 1>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
                (3, 3) => nn_tile::<S, 3, 3>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
                (3, 2) => nn_tile::<S, 3, 2>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
                (3, 1) => nn_tile::<S, 3, 1>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
                (2, 3) => nn_tile::<S, 2, 3>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
                (2, 2) => nn_tile::<S, 2, 2>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
                (2, 1) => nn_tile::<S, 2, 1>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
                (1, 3) => nn_tile::<S, 1, 3>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
                (1, 2) => nn_tile::<S, 1, 2>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
                _ => nn_tile::<S, 1, 1>(s, (a, lda), (b, ldb), k, col, (o, ldo)),
            }
        }
        for row in 0..r {
            for j in vectors * lanes..n {
                o[row * ldo + j] = (0..k).fold(0f32, |sum, t| a[row * lda + t].mul_add(b[t * ldb + j], sum));
            }
        }
    }
}

/// `exp(x - max) / sum` over a row, in place. A key masked with `f32::MIN` gets an exact 0
/// whenever one key is attended.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// One thread's share of [`matmul_nt`]: rows `cols` of `w` against every row of `x`.
struct NtPart<'a> {
    x: &'a [f32],
    w: &'a [f32],
    m: usize,
    k: usize,
    cols: std::ops::Range<usize>,
    /// `(m, cols.len())`, row-major.
    out: &'a mut [f32],
}

impl WithSimd for NtPart<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let n = self.cols.len();
        let w = &self.w[self.cols.start * self.k..];
        nt(
            s,
            (self.x, self.k),
            (w, self.k),
            (self.m, self.k, n),
            (self.out, n),
        );
    }
}

/// `x @ w^T` for row-major `x` `(m, k)` and `w` `(n, k)` (a `PyTorch` linear weight): the
/// `(m, n)` product, row-major. Threads split the rows of `w`, so each weight is read once.
pub fn matmul_nt(isa: Isa, x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    assert!(
        x.len() >= m * k && w.len() >= n * k,
        "matmul_nt: operands shorter than (m, k) x (n, k)"
    );
    // x is small next to w here (few rows): an aligned copy costs far less than the straddling
    // loads it saves.
    let copy;
    let x = if is_aligned(x) {
        x
    } else {
        copy = Aligned::copy_of(&x[..m * k]);
        &copy[..]
    };
    let mut out = vec![0f32; m * n];
    // At least 32 weight rows per thread, in whole register tiles.
    let threads = rayon::current_num_threads().min(n / 32).max(1);
    if threads == 1 {
        dispatch(
            isa,
            NtPart {
                x,
                w,
                m,
                k,
                cols: 0..n,
                out: &mut out,
            },
        );
        return out;
    }
    let per = n.div_ceil(threads).div_ceil(NR) * NR;
    let parts: Vec<(std::ops::Range<usize>, Vec<f32>)> = (0..n)
        .step_by(per)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|start| {
            let cols = start..(start + per).min(n);
            let mut part = vec![0f32; m * cols.len()];
            dispatch(
                isa,
                NtPart {
                    x,
                    w,
                    m,
                    k,
                    cols: cols.clone(),
                    out: &mut part,
                },
            );
            (cols, part)
        })
        .collect();
    for (cols, part) in parts {
        for (row, src) in out.chunks_exact_mut(n).zip(part.chunks_exact(cols.len())) {
            row[cols.clone()].copy_from_slice(src);
        }
    }
    out
}

/// The encoder's self-attention over a fused projection, T5 style (no `1/sqrt(d_kv)`
/// scaling): per series and head, `softmax(q k^T + (bias + mask)) v`.
#[derive(Clone, Copy, Debug)]
pub struct Attention<'a> {
    /// `(heads, s, s)` relative position bias.
    pub bias: &'a [f32],
    /// `(b, s)` additive key mask: 0 where attended, `f32::MIN` where not.
    pub mask: &'a [f32],
    pub heads: usize,
    pub d_kv: usize,
    pub tokens: usize,
}

impl Attention<'_> {
    /// One head of one series: `qkv` is the series' `(s, 3, heads, d_kv)` projection; the
    /// context goes to `out[t * ldo + c]`.
    #[inline(always)]
    fn head<S: Simd>(self, s: S, qkv: &[f32], batch: usize, head: usize, out: &mut [f32], ldo: usize) {
        let (n, dk) = (self.tokens, self.d_kv);
        let stride = 3 * self.heads * dk;
        let part = |p: usize| &qkv[p * self.heads * dk + head * dk..];
        let padded = n.div_ceil(KEY_PAD) * KEY_PAD;
        // k transposed, `(d_kv, padded)`, zero past the last key: the scores' padding is 0.
        let mut kt = Aligned::zeros(dk * padded);
        let keys = part(1);
        for t in 0..n {
            for (c, &v) in keys[t * stride..][..dk].iter().enumerate() {
                kt[c * padded + t] = v;
            }
        }
        let mut scores = Aligned::zeros(n * padded);
        nn(
            s,
            (part(0), stride),
            (&kt, padded),
            (n, dk, padded),
            (&mut scores, padded),
        );
        let mask = &self.mask[batch * n..][..n];
        for (query, row) in scores.chunks_exact_mut(padded).enumerate() {
            let row = &mut row[..n];
            let bias = &self.bias[(head * n + query) * n..][..n];
            for ((v, &b), &m) in row.iter_mut().zip(bias).zip(mask) {
                *v += b + m;
            }
            softmax(row);
        }
        nn(s, (&scores, padded), (part(2), stride), (n, n, dk), (out, ldo));
    }
}

/// Every head of one series, written in place into its `(s, heads * d_kv)` context.
struct SeriesTask<'a> {
    att: Attention<'a>,
    qkv: &'a [f32],
    batch: usize,
    out: &'a mut [f32],
}

impl WithSimd for SeriesTask<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let SeriesTask { att, qkv, batch, out } = self;
        let (heads, dk) = (att.heads, att.d_kv);
        for head in 0..heads {
            att.head(s, qkv, batch, head, &mut out[head * dk..], heads * dk);
        }
    }
}

/// One head of one series into its own `(s, d_kv)` buffer.
struct HeadTask<'a> {
    att: Attention<'a>,
    qkv: &'a [f32],
    batch: usize,
    head: usize,
}

impl WithSimd for HeadTask<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> Vec<f32> {
        let dk = self.att.d_kv;
        let mut ctx = vec![0f32; self.att.tokens * dk];
        self.att.head(s, self.qkv, self.batch, self.head, &mut ctx, dk);
        ctx
    }
}

impl Attention<'_> {
    /// `qkv`: `(b, s, 3, heads, d_kv)` row-major (the fused q/k/v projection); returns the
    /// `(b, s, heads * d_kv)` context, heads concatenated per token. Series run in parallel,
    /// or, with fewer series than threads, every head of every series.
    pub fn run(self, isa: Isa, qkv: &[f32], batch: usize) -> Vec<f32> {
        let (n, dk, heads) = (self.tokens, self.d_kv, self.heads);
        let inner = heads * dk;
        let per_series = n * 3 * inner;
        assert!(
            qkv.len() == batch * per_series
                && self.mask.len() == batch * n
                && self.bias.len() == heads * n * n,
            "attention: operands do not match (b, s, 3, heads, d_kv)"
        );
        let mut out = vec![0f32; batch * n * inner];
        if batch >= rayon::current_num_threads() {
            out.par_chunks_mut(n * inner).enumerate().for_each(|(b, out)| {
                let qkv = &qkv[b * per_series..][..per_series];
                dispatch(
                    isa,
                    SeriesTask {
                        att: self,
                        qkv,
                        batch: b,
                        out,
                    },
                );
            });
            return out;
        }
        let parts: Vec<Vec<f32>> = (0..batch * heads)
            .into_par_iter()
            .map(|task| {
                let (b, head) = (task / heads, task % heads);
                let qkv = &qkv[b * per_series..][..per_series];
                dispatch(
                    isa,
                    HeadTask {
                        att: self,
                        qkv,
                        batch: b,
                        head,
                    },
                )
            })
            .collect();
        for (task, ctx) in parts.iter().enumerate() {
            let (b, head) = (task / heads, task % heads);
            for (t, src) in ctx.chunks_exact(dk).enumerate() {
                out[(b * n + t) * inner + head * dk..][..dk].copy_from_slice(src);
            }
        }
        out
    }
}

/// One decoder position's cross-attention (no position bias), reassociated so that the
/// encoder states are never projected: per series and head, `q'_h = K_h^T q_h` (model space),
/// `p = softmax(E q'_h + mask)`, context `V_h (E^T p)`. The same sums as projecting `E` by
/// `K_h` and `V_h`, in another order, for `b x heads x s x d_model` products per layer.
#[derive(Clone, Copy, Debug)]
pub struct CrossAttention<'a> {
    /// The `k` weight, `(heads * d_kv, d_model)`.
    pub k: &'a [f32],
    /// The `v` weight, `(heads * d_kv, d_model)`.
    pub v: &'a [f32],
    pub heads: usize,
    pub d_kv: usize,
    pub d_model: usize,
}

/// `q'` of one head for every series: `(b, d_kv) x (d_kv, d_model)`.
struct QueryTask<'a> {
    q: &'a [f32],
    k: &'a [f32],
    shape: (usize, usize, usize),
    ldq: usize,
    out: &'a mut [f32],
}

impl WithSimd for QueryTask<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let (b, dk, d) = self.shape;
        nn(s, (self.q, self.ldq), (self.k, d), (b, dk, d), (self.out, d));
    }
}

/// Scores, softmax and the attention-weighted encoder states of one series, every head.
struct MixTask<'a> {
    /// `(heads, b, d_model)` queries in model space.
    qp: &'a [f32],
    /// This series' `(s, d_model)` encoder states and `(s)` mask.
    encoded: &'a [f32],
    mask: &'a [f32],
    batch: usize,
    series: usize,
    heads: usize,
    /// This series' `(heads, d_model)` output.
    out: &'a mut [f32],
}

impl WithSimd for MixTask<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let n = self.mask.len();
        let (h, d) = (self.heads, self.out.len() / self.heads);
        // (s, heads) scores: encoder states against each head's query.
        let mut scores = vec![0f32; n * h];
        let queries = &self.qp[self.series * d..];
        nt(
            s,
            (self.encoded, d),
            (queries, self.batch * d),
            (n, d, h),
            (&mut scores, h),
        );
        // (heads, s) probabilities.
        let mut p = vec![0f32; h * n];
        for (head, row) in p.chunks_exact_mut(n).enumerate() {
            for ((v, t), &m) in row.iter_mut().zip(0..n).zip(self.mask) {
                *v = scores[t * h + head] + m;
            }
            softmax(row);
        }
        nn(s, (&p, n), (self.encoded, d), (h, n, d), (self.out, d));
    }
}

/// One head's context for every series: `(b, d_model) x (d_kv, d_model)^T`.
struct ValueTask<'a> {
    mixed: &'a [f32],
    v: &'a [f32],
    shape: (usize, usize, usize),
    ldm: usize,
}

impl WithSimd for ValueTask<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> Vec<f32> {
        let (b, d, dk) = self.shape;
        let mut out = vec![0f32; b * dk];
        nt(s, (self.mixed, self.ldm), (self.v, d), (b, d, dk), (&mut out, dk));
        out
    }
}

impl CrossAttention<'_> {
    /// `q`: `(b, heads * d_kv)` projected decoder queries; `encoded`: `(b, s, d_model)`;
    /// `mask`: `(b, s)` additive key mask. Returns the `(b, heads * d_kv)` context.
    pub fn run(self, isa: Isa, q: &[f32], encoded: &[f32], mask: &[f32], batch: usize) -> Vec<f32> {
        let (h, dk, d) = (self.heads, self.d_kv, self.d_model);
        let inner = h * dk;
        let n = mask.len() / batch.max(1);
        assert!(
            q.len() == batch * inner
                && encoded.len() == batch * n * d
                && mask.len() == batch * n
                && self.k.len() == inner * d
                && self.v.len() == inner * d,
            "cross-attention: operands do not match (b, heads, d_kv, s, d_model)"
        );
        // (heads, b, d_model): each head's queries in model space, one weight read per head.
        let mut qp = vec![0f32; h * batch * d];
        qp.par_chunks_mut(batch * d).enumerate().for_each(|(head, out)| {
            dispatch(
                isa,
                QueryTask {
                    q: &q[head * dk..],
                    k: &self.k[head * dk * d..][..dk * d],
                    shape: (batch, dk, d),
                    ldq: inner,
                    out,
                },
            );
        });
        // (b, heads, d_model): the attention-weighted encoder states.
        let mut mixed = vec![0f32; batch * h * d];
        mixed.par_chunks_mut(h * d).enumerate().for_each(|(series, out)| {
            dispatch(
                isa,
                MixTask {
                    qp: &qp,
                    encoded: &encoded[series * n * d..][..n * d],
                    mask: &mask[series * n..][..n],
                    batch,
                    series,
                    heads: h,
                    out,
                },
            );
        });
        let parts: Vec<Vec<f32>> = (0..h)
            .into_par_iter()
            .map(|head| {
                dispatch(
                    isa,
                    ValueTask {
                        mixed: &mixed[head * d..],
                        v: &self.v[head * dk * d..][..dk * d],
                        shape: (batch, d, dk),
                        ldm: h * d,
                    },
                )
            })
            .collect();
        let mut out = vec![0f32; batch * inner];
        for (head, part) in parts.iter().enumerate() {
            for (row, src) in out.chunks_exact_mut(inner).zip(part.chunks_exact(dk)) {
                row[head * dk..][..dk].copy_from_slice(src);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use pulp::{Simd, WithSimd};

    use super::{dispatch, is_aligned, matmul_nt, nn, prefers_nt, Aligned, Attention, CrossAttention, Isa};

    /// Every path: on a CPU without AVX-512 (or AVX2) those run the widest narrower one, and
    /// `Portable512` runs AVX-512's lane arithmetic everywhere.
    const EVERY_ISA: [Isa; 4] = [Isa::Avx512, Isa::Avx2, Isa::Scalar, Isa::Portable512];

    #[test]
    fn the_override_only_narrows_what_the_cpu_has() {
        assert_eq!(Isa::capped(Isa::Avx512, None), Isa::Avx512);
        assert_eq!(Isa::capped(Isa::Avx512, Some("avx2")), Isa::Avx2);
        assert_eq!(Isa::capped(Isa::Avx512, Some("scalar")), Isa::Scalar);
        assert_eq!(Isa::capped(Isa::Avx2, Some("avx2")), Isa::Avx2);
        assert_eq!(Isa::capped(Isa::Scalar, Some("avx2")), Isa::Scalar);
        assert_eq!(Isa::capped(Isa::Avx2, Some("avx512")), Isa::Avx2);
        assert_eq!(Isa::capped(Isa::Avx2, Some("")), Isa::Avx2);
    }

    /// [`nn`] on contiguous operands, for the tests.
    struct Nn<'a> {
        a: &'a [f32],
        b: &'a [f32],
        mkn: (usize, usize, usize),
    }

    impl WithSimd for Nn<'_> {
        type Output = Vec<f32>;

        fn with_simd<S: Simd>(self, s: S) -> Vec<f32> {
            let (m, k, n) = self.mkn;
            let mut out = vec![0f32; m * n];
            nn(s, (self.a, k), (self.b, n), self.mkn, (&mut out, n));
            out
        }
    }

    #[test]
    fn nn_matches_f64_sums_on_every_isa_and_remainder() {
        // Row counts around the 4-row tile; column counts around whole vectors and the 3-vector
        // tile, with and without a scalar tail.
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 13, 7),
            (13, 64, 64),
            (7, 21, 48),
            (9, 3, 100),
            (4, 129, 24),
        ] {
            let a = values(m * k, 5);
            let b = values(k * n, 6);
            let term = |e: usize, t: usize| f64::from(a[e / n * k + t]) * f64::from(b[t * n + e % n]);
            let want: Vec<f64> = (0..m * n).map(|e| (0..k).map(|t| term(e, t)).sum()).collect();
            let scale: Vec<f64> = (0..m * n)
                .map(|e| (0..k).map(|t| term(e, t).abs()).sum())
                .collect();
            for isa in EVERY_ISA {
                close(
                    &dispatch(
                        isa,
                        Nn {
                            a: &a,
                            b: &b,
                            mkn: (m, k, n),
                        },
                    ),
                    &want,
                    &scale,
                    1e-6,
                );
            }
        }
    }

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Each `got` within `tol` of `want`, relative to `scale` (the sum of the absolute terms,
    /// which bounds f32 rounding in any summation order).
    fn close(got: &[f32], want: &[f64], scale: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (i, ((&g, &w), &a)) in got.iter().zip(want).zip(scale).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= tol * a.max(1.0),
                "element {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn matmul_nt_matches_f64_sums_on_every_isa_and_remainder() {
        // Row counts around the 4-row tile, column counts around the 3-row tile and the
        // per-thread split, summed lengths with and without a vector tail.
        for &(m, k, n) in &[
            (1, 8, 1),
            (1, 512, 1536),
            (5, 13, 7),
            (13, 32, 64),
            (7, 100, 97),
            (64, 2048, 65),
        ] {
            let x = values(m * k, 1);
            let w = values(n * k, 2);
            let term = |e: usize, t: usize| f64::from(x[e / n * k + t]) * f64::from(w[e % n * k + t]);
            let want: Vec<f64> = (0..m * n).map(|e| (0..k).map(|t| term(e, t)).sum()).collect();
            let scale: Vec<f64> = (0..m * n)
                .map(|e| (0..k).map(|t| term(e, t).abs()).sum())
                .collect();
            // x as given (a Vec, aligned or not) and one f32 past a cache line (copied).
            let mut shifted = Aligned::zeros(m * k + 1);
            shifted[1..].copy_from_slice(&x);
            for isa in EVERY_ISA {
                close(&matmul_nt(isa, &x, &w, m, k, n), &want, &scale, 1e-6);
                close(&matmul_nt(isa, &shifted[1..], &w, m, k, n), &want, &scale, 1e-6);
            }
        }
    }

    #[test]
    fn aligned_buffers_start_on_a_cache_line() {
        for len in [0, 1, 15, 16, 17, 1000] {
            let data = values(len, 3);
            let copy = Aligned::copy_of(&data);
            assert!(is_aligned(&copy), "len {len}");
            assert_eq!(&copy[..], &data[..]);
            let (storage, start) = copy.into_parts();
            assert_eq!(&storage[start..][..len], &data[..]);
            assert!(Aligned::zeros(len).iter().all(|&v| v == 0.0));
        }
    }

    #[test]
    fn the_switch_to_gemm_depends_on_the_instruction_set() {
        // Few rows: always the kernel; many rows: always gemm.
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
            assert!(prefers_nt(isa, 64, 512, 2048));
            assert!(!prefers_nt(isa, 161, 2048, 512));
        }
        // Between: the feed-forward's wo on both; the attention output only with AVX-512.
        assert!(prefers_nt(Isa::Avx2, 129, 2048, 512));
        assert!(prefers_nt(Isa::Avx512, 129, 2048, 512));
        assert!(!prefers_nt(Isa::Avx2, 129, 512, 512));
        assert!(prefers_nt(Isa::Avx512, 129, 512, 512));
        assert!(!prefers_nt(Isa::Avx512, 129, 512, 1536));
    }

    #[test]
    fn attention_matches_the_textbook_formula() {
        let (b, n, heads, dk) = (3, 21, 2, 8);
        let inner = heads * dk;
        let qkv = values(b * n * 3 * inner, 3);
        let bias = values(heads * n * n, 4);
        // Series 1 does not attend to its first 5 keys.
        let mask: Vec<f32> = (0..b * n)
            .map(|i| if i / n == 1 && i % n < 5 { f32::MIN } else { 0.0 })
            .collect();
        let mut want = vec![0f64; b * n * inner];
        for bi in 0..b {
            for h in 0..heads {
                let at = |t: usize, part: usize, c: usize| {
                    f64::from(qkv[((bi * n + t) * 3 + part) * inner + h * dk + c])
                };
                for qi in 0..n {
                    let scores: Vec<f64> = (0..n)
                        .map(|kj| {
                            let dot: f64 = (0..dk).map(|c| at(qi, 0, c) * at(kj, 1, c)).sum();
                            if bi == 1 && kj < 5 {
                                f64::NEG_INFINITY
                            } else {
                                dot + f64::from(bias[(h * n + qi) * n + kj])
                            }
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for c in 0..dk {
                        want[(bi * n + qi) * inner + h * dk + c] = (0..n)
                            .map(|kj| (scores[kj] - max).exp() / total * at(kj, 2, c))
                            .sum();
                    }
                }
            }
        }
        let att = Attention {
            bias: &bias,
            mask: &mask,
            heads,
            d_kv: dk,
            tokens: n,
        };
        let ones = vec![1.0; want.len()];
        // Three series run one task per series on two threads; one series, one per head.
        for isa in EVERY_ISA {
            close(&att.run(isa, &qkv, b), &want, &ones, 1e-5);
            let one = Attention {
                mask: &mask[..n],
                ..att
            };
            close(
                &one.run(isa, &qkv[..n * 3 * inner], 1),
                &want[..n * inner],
                &ones,
                1e-5,
            );
        }
    }

    #[test]
    fn cross_attention_matches_projecting_the_encoder_states() {
        let (b, n, heads, dk, d) = (3, 11, 2, 8, 24);
        let inner = heads * dk;
        let q = values(b * inner, 7);
        let encoded = values(b * n * d, 8);
        let k = values(inner * d, 9);
        let v = values(inner * d, 10);
        // Series 2 does not attend to its last 4 keys.
        let mask: Vec<f32> = (0..b * n)
            .map(|i| if i / n == 2 && i % n >= 7 { f32::MIN } else { 0.0 })
            .collect();
        // The textbook form: keys K e_t and values V e_t per head, softmax(q . key) over values.
        let mut want = vec![0f64; b * inner];
        for bi in 0..b {
            let e = |t: usize, j: usize| f64::from(encoded[(bi * n + t) * d + j]);
            for h in 0..heads {
                let project = |w: &[f32], c: usize, t: usize| -> f64 {
                    (0..d).map(|j| f64::from(w[(h * dk + c) * d + j]) * e(t, j)).sum()
                };
                let live: Vec<usize> = (0..n).filter(|&t| !(bi == 2 && t >= 7)).collect();
                let scores: Vec<f64> = live
                    .iter()
                    .map(|&t| {
                        (0..dk)
                            .map(|c| f64::from(q[bi * inner + h * dk + c]) * project(&k, c, t))
                            .sum()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for c in 0..dk {
                    want[bi * inner + h * dk + c] = live
                        .iter()
                        .zip(&scores)
                        .map(|(&t, s)| (s - max).exp() / total * project(&v, c, t))
                        .sum();
                }
            }
        }
        let att = CrossAttention {
            k: &k,
            v: &v,
            heads,
            d_kv: dk,
            d_model: d,
        };
        let ones = vec![1.0; want.len()];
        for isa in EVERY_ISA {
            close(&att.run(isa, &q, &encoded, &mask, b), &want, &ones, 1e-5);
        }
    }
}
