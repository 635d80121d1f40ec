//! The inference cost model of criterion 3: the deterministic arithmetic of one forecast at
//! a config (the forward at its context, the expansion passes past 64 steps, the draws), so
//! that the same parameters cost the same on any machine and under any load.

use serde::Serialize;

use crate::domain::InferenceParams;

/// The dimensions of a Chronos-Bolt network that its forward cost depends on (our type; the
/// caller fills it from the checkpoint's config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ModelDims {
    pub d_model: usize,
    pub d_ff: usize,
    /// Attention inner size, heads x d_kv.
    pub inner: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub patch_size: usize,
    pub use_reg_token: bool,
    /// The model's own context (longer contexts are cut to it).
    pub max_context: usize,
    /// Steps one pass emits (64 for Chronos-Bolt); longer horizons run the expansion loop.
    pub steps_per_pass: usize,
    /// Quantile levels the network emits (9).
    pub levels: usize,
}

impl ModelDims {
    /// The dimensions in a checkpoint's parsed `config.json`.
    pub fn of(c: &crate::model::Config) -> ModelDims {
        ModelDims {
            d_model: c.d_model,
            d_ff: c.d_ff,
            inner: c.inner_dim(),
            encoder_layers: c.num_layers,
            decoder_layers: c.decoder_layers(),
            patch_size: c.chronos_config.input_patch_size,
            use_reg_token: c.chronos_config.use_reg_token,
            max_context: c.chronos_config.context_length,
            steps_per_pass: c.chronos_config.prediction_length,
            levels: c.chronos_config.quantiles.len(),
        }
    }
}

/// Floating-point operations charged per stratified draw per step: evaluating the quantile
/// function (locate the segment, interpolate or a normal tail) plus the running maximum and
/// the sum for the mean. That is what a forecaster that draws pays; our own summaries read
/// the draws in closed form (`forecast::DrawPlan`), but the cost compared is the config's,
/// not this crate's shortcut.
pub const FLOPS_PER_DRAW: f64 = 20.0;

/// The deterministic cost of one forecast at `params` for `h` steps, in MFLOP (a multiply-add
/// counts 2), as criterion 3 compares it:
/// - one forward at the effective context `c = min(context_length, max_context)`: `T =
///   ceil(c / patch) (+ 1 REG token)` encoder tokens; the input block `T (2 patch d_ff +
///   d_ff d + 2 patch d)`; per encoder layer `T (4 d inner + 2 d d_ff) + 2 T^2 inner`; per
///   decoder layer (one query) `4 d inner + 2 d inner + 2 T d inner + 2 T inner + 2 d d_ff`;
///   the output block `d d_ff + (d_ff + d) levels steps_per_pass`; all times 2;
/// - past `steps_per_pass` steps, each further pass runs `levels` paths whose context grew by
///   `steps_per_pass` (cut to `max_context`);
/// - the draws: `num_samples h FLOPS_PER_DRAW`.
///
/// The same parameters cost exactly the same, on any machine and under any load, which a
/// wall-clock timing on a shared machine cannot promise; and the cost of `decide` does not
/// depend on when it runs. Its ratio follows the forward's arithmetic, which is what a longer
/// context makes slower (the draws are a rounding error beside it).
pub fn forecast_cost_mflop(dims: &ModelDims, params: &InferenceParams, h: usize) -> f64 {
    let forward = |context: usize| -> f64 {
        let d = dims.d_model as f64;
        let ff = dims.d_ff as f64;
        let inner = dims.inner as f64;
        let patch = dims.patch_size.max(1) as f64;
        let t = (context.div_ceil(dims.patch_size.max(1)) + usize::from(dims.use_reg_token)) as f64;
        let input = t * (2.0 * patch * ff + ff * d + 2.0 * patch * d);
        let encoder =
            dims.encoder_layers as f64 * (t * (4.0 * d * inner + 2.0 * d * ff) + 2.0 * t * t * inner);
        let decoder = dims.decoder_layers as f64
            * (6.0 * d * inner + 2.0 * t * d * inner + 2.0 * t * inner + 2.0 * d * ff);
        let output = d * ff + (ff + d) * (dims.levels * dims.steps_per_pass) as f64;
        2.0 * (input + encoder + decoder + output)
    };
    let c = params.context_length.min(dims.max_context);
    let mut flops = forward(c);
    let step = dims.steps_per_pass.max(1);
    let mut produced = step;
    let mut grown = c;
    while produced < h {
        grown = (grown + step).min(dims.max_context);
        flops += dims.levels as f64 * forward(grown);
        produced += step;
    }
    flops += params.num_samples as f64 * h as f64 * FLOPS_PER_DRAW;
    flops / 1e6
}

/// Criterion 3's figures: the cost of candidate and current (see [`forecast_cost_mflop`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InferenceCost {
    pub candidate_mflop: f64,
    pub current_mflop: f64,
    /// `100 (candidate / current - 1)`.
    pub change_pct: f64,
}

impl InferenceCost {
    pub fn of(
        dims: &ModelDims,
        candidate: &InferenceParams,
        current: &InferenceParams,
        h: usize,
    ) -> InferenceCost {
        let a = forecast_cost_mflop(dims, candidate, h);
        let b = forecast_cost_mflop(dims, current, h);
        InferenceCost {
            candidate_mflop: a,
            current_mflop: b,
            change_pct: crate::metrics::change_pct(a, b),
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    /// A toy network small enough to count by hand.
    fn toy() -> ModelDims {
        ModelDims {
            d_model: 2,
            d_ff: 4,
            inner: 2,
            encoder_layers: 1,
            decoder_layers: 1,
            patch_size: 4,
            use_reg_token: true,
            max_context: 16,
            steps_per_pass: 2,
            levels: 3,
        }
    }

    #[test]
    fn the_cost_model_by_hand() {
        let p = |context_length, num_samples| InferenceParams {
            context_length,
            num_samples,
            temperature: 1.0,
        };
        // Context 8: T = 2 + 1 = 3. input 3 (2*4*4 + 4*2 + 2*4*2) = 3 * 56 = 168; encoder
        // 3 (4*2*2 + 2*2*4) + 2*9*2 = 96 + 36 = 132; decoder 6*2*2 + 2*3*2*2 + 2*3*2 + 2*2*4
        // = 24 + 24 + 12 + 16 = 76; output 2*4 + 6*3*2 = 44. Forward 2 * 420 = 840 FLOPs.
        // Two steps (one pass), 10 draws: 840 + 10 * 2 * 20 = 1240.
        let one = forecast_cost_mflop(&toy(), &p(8, 10), 2) * 1e6;
        assert!((one - 1240.0).abs() < 1e-6, "{one}");
        // Four steps: a second pass on 3 paths of context 10 (T = 3 + 1 = 4): input 224;
        // encoder 4 * 32 + 2*16*2 = 192; decoder 24 + 32 + 16 + 16 = 88; output 44:
        // 2 * 548 = 1096 each. 840 + 3 * 1096 + 10 * 4 * 20 = 4928.
        let two = forecast_cost_mflop(&toy(), &p(8, 10), 4) * 1e6;
        assert!((two - 4928.0).abs() < 1e-6, "{two}");
        // A context past the model's own costs what the model's own does.
        assert_eq!(
            forecast_cost_mflop(&toy(), &p(16, 10), 2),
            forecast_cost_mflop(&toy(), &p(99, 10), 2)
        );
        // Identical parameters: exactly equal, every time.
        for _ in 0..20 {
            let c = InferenceCost::of(&toy(), &p(8, 10), &p(8, 10), 4);
            assert_eq!(c.change_pct, 0.0);
        }
        let c = InferenceCost::of(&toy(), &p(16, 10), &p(8, 10), 2);
        assert!(c.change_pct > 0.0 && c.candidate_mflop > c.current_mflop);
    }
}
