//! The BERT encoder on plain `f32` buffers: the same arithmetic as [`super::BertModel`]'s
//! packed forward pass, with every step that is not a matrix product fused into one pass.
//!
//! Per layer, for `T` packed tokens (no padding) and `hidden = H`:
//! 1. `qkv = x Wqkv + b` — one product onto rows pre-filled with the bias, `(T, 3H)`;
//! 2. attention per text and head on strided views of `qkv` (no copies): scores, then
//!    `exp(s - max)` with the row sums in one pass, then `P V` written straight into the
//!    head's columns of `ctx` and divided by the row sums there (`head_dim` values per row
//!    instead of `length`);
//! 3. `x += ctx Wo`, then `x = layer_norm(x + b)` in one pass (residual folded into the
//!    product);
//! 4. `inner = x Wi`, then `gelu(inner + b)` in one pass;
//! 5. `x += inner Wo2`, then `x = layer_norm(x + b)` in one pass.
//!
//! Threading: the work is split into independent rayon tasks, each running single-threaded
//! matrix products — one text per task for attention, blocks of up to 512 tokens for the
//! rest (steps 3-5 of a layer and step 1 of the next run back to back on a block, so it
//! stays in cache). On a machine shared with other jobs this matters more than anything
//! else here: when `gemm` splits one large product over the threads they meet at barriers,
//! and a thread that the OS pauses stalls the other; with many small tasks the running
//! thread takes over the paused one's work. (One interleaved measurement at a load average
//! of 4-6 on 2 cores: 5.2-5.5 s per 128 texts in blocks against 15.4 s with `gemm`'s
//! threading of whole-pack products.)
//!
//! The activation buffers are allocated once per [`FusedBert::workspace`] and reused by
//! every layer and pack.

use rayon::prelude::*;

use super::kernels::{self, EmbeddingTables, NormParams};
use super::matmul::{matmul, View};

/// A layer norm's parameters.
pub(super) struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// A linear layer, weight stored `(in, out)` row-major.
pub(super) struct Linear {
    pub weight_t: Vec<f32>,
    pub bias: Vec<f32>,
}

pub(super) struct FusedLayer {
    /// Query, key and value stacked, the query pre-scaled by `1 / sqrt(head_dim)`.
    pub qkv: Linear,
    pub attention_output: Linear,
    pub attention_norm: Norm,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_norm: Norm,
}

pub(super) struct FusedBert {
    pub words: Vec<f32>,
    pub positions: Vec<f32>,
    pub token_types: Vec<f32>,
    pub embedding_norm: Norm,
    pub layers: Vec<FusedLayer>,
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub eps: f32,
}

/// Activation buffers for packs of up to `capacity` tokens.
pub(super) struct Workspace {
    capacity: usize,
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    inner: Vec<f32>,
}

impl FusedBert {
    /// Buffers for packs of up to `tokens` tokens.
    pub fn workspace(&self, tokens: usize) -> Workspace {
        Workspace {
            capacity: tokens,
            x: vec![0.0; tokens * self.hidden],
            qkv: vec![0.0; tokens * 3 * self.hidden],
            ctx: vec![0.0; tokens * self.hidden],
            inner: vec![0.0; tokens * self.intermediate],
        }
    }

    /// Token embeddings of the last layer for sequences packed one after another; ids must
    /// be below the table sizes (checked by the caller).
    ///
    /// # Shapes
    /// `ids`, `types`: `(tokens,)`; `lengths` sum to `tokens` -> `(tokens, hidden)`, a view
    /// into `work`.
    pub fn forward<'w>(
        &self,
        ids: &[u32],
        types: &[u32],
        lengths: &[usize],
        work: &'w mut Workspace,
    ) -> &'w [f32] {
        let tokens = ids.len();
        assert!(
            tokens <= work.capacity,
            "pack of {tokens} tokens exceeds the workspace"
        );
        let h = self.hidden;
        let positions: Vec<u32> = lengths.iter().flat_map(|&l| 0..l as u32).collect();
        let x = &mut work.x[..tokens * h];
        kernels::embed(
            x,
            ids,
            types,
            &positions,
            &EmbeddingTables {
                words: &self.words,
                positions: &self.positions,
                token_types: &self.token_types,
                norm: NormParams {
                    bias: &[],
                    gamma: &self.embedding_norm.gamma,
                    beta: &self.embedding_norm.beta,
                    eps: self.eps,
                },
            },
        );
        let qkv = &mut work.qkv[..tokens * 3 * h];
        let ctx = &mut work.ctx[..tokens * h];
        let inner = &mut work.inner[..tokens * self.intermediate];
        let block = block_rows(tokens, rayon::current_num_threads());
        let Some(first) = self.layers.first() else {
            return &work.x[..tokens * h];
        };
        x.par_chunks(block * h)
            .zip(qkv.par_chunks_mut(block * 3 * h))
            .for_each(|(x, qkv)| self.project_qkv(first, x, qkv));
        for (index, layer) in self.layers.iter().enumerate() {
            self.attention(qkv, ctx, lengths);
            // Everything after attention is row-local, and so is the next layer's Q/K/V
            // projection: one block of tokens per task, its intermediate activations staying
            // in cache between the two products.
            let next = self.layers.get(index + 1);
            x.par_chunks_mut(block * h)
                .zip(ctx.par_chunks(block * h))
                .zip(qkv.par_chunks_mut(block * 3 * h))
                .zip(inner.par_chunks_mut(block * self.intermediate))
                .for_each(|(((x, ctx), qkv), inner)| {
                    self.attention_output_and_ffn(layer, x, ctx, inner);
                    if let Some(next) = next {
                        self.project_qkv(next, x, qkv);
                    }
                });
        }
        &work.x[..tokens * h]
    }

    /// `qkv = x Wqkv + b` for one block of tokens.
    ///
    /// # Shapes
    /// `x`: `(rows, hidden)` -> `qkv`: `(rows, 3 hidden)`.
    fn project_qkv(&self, layer: &FusedLayer, x: &[f32], qkv: &mut [f32]) {
        let h = self.hidden;
        kernels::fill_rows(qkv, &layer.qkv.bias);
        matmul(
            qkv,
            3 * h,
            true,
            View::rows(x, x.len() / h, h),
            View::rows(&layer.qkv.weight_t, h, 3 * h),
            1,
        );
    }

    /// The rest of a layer after attention, for one block of tokens, `x` updated in place:
    /// `x = LN(x + ctx Wo + b)`, `x = LN(x + gelu(x Wi + bi) Wo2 + b2)`.
    ///
    /// # Shapes
    /// `x`, `ctx`: `(rows, hidden)`; `inner`: `(rows, intermediate)`, scratch.
    fn attention_output_and_ffn(
        &self,
        layer: &FusedLayer,
        x: &mut [f32],
        ctx: &[f32],
        inner: &mut [f32],
    ) {
        let (h, i) = (self.hidden, self.intermediate);
        let rows = x.len() / h;
        matmul(
            x,
            h,
            true,
            View::rows(ctx, rows, h),
            View::rows(&layer.attention_output.weight_t, h, h),
            1,
        );
        kernels::bias_layer_norm(
            x,
            &NormParams {
                bias: &layer.attention_output.bias,
                gamma: &layer.attention_norm.gamma,
                beta: &layer.attention_norm.beta,
                eps: self.eps,
            },
        );
        matmul(
            inner,
            i,
            false,
            View::rows(x, rows, h),
            View::rows(&layer.intermediate.weight_t, h, i),
            1,
        );
        kernels::bias_gelu(inner, &layer.intermediate.bias);
        matmul(
            x,
            h,
            true,
            View::rows(inner, rows, i),
            View::rows(&layer.output.weight_t, i, h),
            1,
        );
        kernels::bias_layer_norm(
            x,
            &NormParams {
                bias: &layer.output.bias,
                gamma: &layer.output_norm.gamma,
                beta: &layer.output_norm.beta,
                eps: self.eps,
            },
        );
    }

    /// Scaled dot-product attention of every text and head (the scale is in the query
    /// weights), written into `ctx` in `(token, head * head_dim)` order.
    fn attention(&self, qkv: &[f32], ctx: &mut [f32], lengths: &[usize]) {
        let h = self.hidden;
        let d = h / self.heads;
        // One disjoint `(length, hidden)` block of `ctx` per text, with its first token.
        let mut blocks = Vec::with_capacity(lengths.len());
        let mut rest = ctx;
        let mut offset = 0;
        for &length in lengths {
            let (block, tail) = rest.split_at_mut(length * h);
            blocks.push((offset, length, block));
            rest = tail;
            offset += length;
        }
        blocks.into_par_iter().for_each_init(
            || (Vec::new(), Vec::new()),
            |(scores, inverse_sums), (offset, length, out)| {
                let rows = &qkv[offset * 3 * h..(offset + length) * 3 * h];
                scores.resize(length * length, 0.0);
                inverse_sums.resize(length, 0.0);
                for head in 0..self.heads {
                    let q = View::strided(&rows[head * d..], length, d, 3 * h);
                    let k = View::strided(&rows[h + head * d..], length, d, 3 * h);
                    let v = View::strided(&rows[2 * h + head * d..], length, d, 3 * h);
                    matmul(scores, length, false, q, k.t(), 1);
                    kernels::softmax_unnormalised(scores, length, inverse_sums);
                    let head_out = &mut out[head * d..];
                    matmul(head_out, h, false, View::rows(scores, length, length), v, 1);
                    for (row, &inverse) in head_out.chunks_mut(h).zip(inverse_sums.iter()) {
                        row[..d].iter_mut().for_each(|c| *c *= inverse);
                    }
                }
            },
        );
    }
}

/// Tokens per task of the row-local phases: at least four tasks per thread, so that work
/// stealing evens out a thread that the OS pauses, and at most 512 rows: each block's
/// products repack the weights, which costs about 5% of the time at 256 rows.
fn block_rows(tokens: usize, threads: usize) -> usize {
    tokens.div_ceil(4 * threads.max(1)).clamp(32, 512)
}
