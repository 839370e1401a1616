//! BERT encoder (the transformer inside BERT-family sentence-transformers checkpoints),
//! matching Hugging Face `BertModel` in inference mode. Parameters are looked up by checkpoint
//! key; a leading `bert.` prefix is accepted too.

use candle_core::{DType, Module, Tensor, D};
use candle_nn::{
    embedding, layer_norm, linear, Embedding, LayerNorm, LayerNormConfig, Linear, VarBuilder,
};
use rayon::prelude::*;
use serde::Deserialize;

use super::fused::{self, FusedBert, FusedLayer};
use super::ops::{bias_gelu_erf, softmax_last_dim};

/// The fields of a checkpoint's `config.json` that inference needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
}

fn default_hidden_act() -> String {
    "gelu".into()
}
fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}

/// A linear layer with its weight stored transposed, `(in, out)` row-major, so that the
/// matrix product reads both operands in row-major order (the checkpoint's `(out, in)`
/// weight would be a transposed view in every call).
struct Dense {
    weight_t: Tensor,
    bias: Option<Tensor>,
}

impl Dense {
    fn new(layer: &Linear) -> candle_core::Result<Self> {
        Ok(Self {
            weight_t: layer.weight().t()?.contiguous()?,
            bias: layer.bias().cloned(),
        })
    }
}

impl Dense {
    /// `gelu(xs W^T + b)` with the bias folded into the activation pass.
    ///
    /// # Shapes
    /// `(tokens, in)` -> `(tokens, out)`.
    fn forward_gelu(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let ys = xs.matmul(&self.weight_t)?;
        match &self.bias {
            Some(bias) => bias_gelu_erf(&ys, bias),
            None => ys.gelu_erf(),
        }
    }
}

impl Module for Dense {
    /// # Shapes
    /// `(tokens, in)` -> `(tokens, out)`.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let ys = xs.matmul(&self.weight_t)?;
        match &self.bias {
            Some(bias) => ys.broadcast_add(bias),
            None => Ok(ys),
        }
    }
}

/// A linear layer applied to `(batch, seq, in)` as one `(batch * seq, in)` matrix product:
/// one large GEMM instead of a batched one with a broadcast weight.
fn linear_tokens(layer: &Dense, xs: &Tensor) -> candle_core::Result<Tensor> {
    let (batch, seq, hidden) = xs.dims3()?;
    let ys = layer.forward(&xs.reshape((batch * seq, hidden))?)?;
    let out = ys.dim(1)?;
    ys.reshape((batch, seq, out))
}

fn norm(size: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<LayerNorm> {
    layer_norm(
        size,
        LayerNormConfig {
            eps,
            ..Default::default()
        },
        vb,
    )
}

struct Embeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
}

impl Embeddings {
    fn new(cfg: &BertConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            word_embeddings: embedding(cfg.vocab_size, cfg.hidden_size, vb.pp("word_embeddings"))?,
            position_embeddings: embedding(
                cfg.max_position_embeddings,
                cfg.hidden_size,
                vb.pp("position_embeddings"),
            )?,
            token_type_embeddings: embedding(
                cfg.type_vocab_size,
                cfg.hidden_size,
                vb.pp("token_type_embeddings"),
            )?,
            layer_norm: norm(cfg.hidden_size, cfg.layer_norm_eps, vb.pp("LayerNorm"))?,
        })
    }

    /// # Shapes
    /// `input_ids`, `token_type_ids`: `(batch, seq)` u32 -> `(batch, seq, hidden)`.
    fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor) -> candle_core::Result<Tensor> {
        let seq_len = input_ids.dim(1)?;
        let positions = Tensor::arange(0u32, seq_len as u32, input_ids.device())?.unsqueeze(0)?;
        let xs = self
            .word_embeddings
            .forward(input_ids)?
            .broadcast_add(&self.position_embeddings.forward(&positions)?)?
            .add(&self.token_type_embeddings.forward(token_type_ids)?)?;
        self.layer_norm.forward(&xs)
    }
}

struct Layer {
    /// `query`, `key` and `value` stacked into one `(3 hidden, hidden)` projection: one GEMM
    /// instead of three.
    qkv: Dense,
    attention_output: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
    heads: usize,
    head_dim: usize,
}

impl Layer {
    fn new(cfg: &BertConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let attention = vb.pp("attention");
        let self_attention = attention.pp("self");
        let parts = ["query", "key", "value"]
            .iter()
            .map(|name| linear(h, h, self_attention.pp(name)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        // The attention scale 1 / sqrt(head_dim) is folded into the query projection, so
        // that no pass over the (heads, seq, seq) scores is spent on it.
        let head_dim = h / cfg.num_attention_heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let factors = [scale, 1.0, 1.0];
        let weights = parts
            .iter()
            .zip(factors)
            .map(|(l, f)| l.weight() * f)
            .collect::<candle_core::Result<Vec<Tensor>>>()?;
        let biases = parts
            .iter()
            .zip(factors)
            .map(|(l, f)| l.bias().map(|b| b * f))
            .collect::<Option<candle_core::Result<Vec<Tensor>>>>()
            .transpose()?;
        let qkv = Dense::new(&Linear::new(
            Tensor::cat(&weights, 0)?,
            biases.map(|b| Tensor::cat(&b, 0)).transpose()?,
        ))?;
        Ok(Self {
            qkv,
            attention_output: Dense::new(&linear(h, h, attention.pp("output").pp("dense"))?)?,
            attention_norm: norm(
                h,
                cfg.layer_norm_eps,
                attention.pp("output").pp("LayerNorm"),
            )?,
            intermediate: Dense::new(&linear(
                h,
                cfg.intermediate_size,
                vb.pp("intermediate").pp("dense"),
            )?)?,
            output: Dense::new(&linear(
                cfg.intermediate_size,
                h,
                vb.pp("output").pp("dense"),
            )?)?,
            output_norm: norm(h, cfg.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
        })
    }

    /// # Shapes
    /// `xs`: `(batch, seq, hidden)`; `mask_bias`: `(batch, 1, 1, seq)`, 0 for tokens and a
    /// large negative number for padding.
    fn forward(&self, xs: &Tensor, mask_bias: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, seq, hidden) = xs.dims3()?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, seq, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let qkv = linear_tokens(&self.qkv, xs)?;
        let q = split(qkv.narrow(2, 0, hidden)?)?;
        let k = split(qkv.narrow(2, hidden, hidden)?)?;
        let v = split(qkv.narrow(2, 2 * hidden, hidden)?)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask_bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, seq, hidden))?;
        let attended = self
            .attention_norm
            .forward(&(linear_tokens(&self.attention_output, &context)? + xs)?)?;
        let inner = linear_tokens(&self.intermediate, &attended)?.gelu_erf()?;
        self.output_norm
            .forward(&(linear_tokens(&self.output, &inner)? + attended)?)
    }

    /// [`Self::forward`] for sequences packed one after another without padding: the
    /// projections run on all tokens at once, attention runs per sequence, so no work is
    /// spent on padding and no mask is needed.
    ///
    /// # Shapes
    /// `xs`: `(tokens, hidden)` with `tokens = sum(lengths)` -> `(tokens, hidden)`.
    fn forward_packed(&self, xs: &Tensor, lengths: &[usize]) -> candle_core::Result<Tensor> {
        let hidden = xs.dim(1)?;
        let qkv = self.qkv.forward(xs)?;
        let mut offsets = Vec::with_capacity(lengths.len());
        let mut offset = 0;
        for &length in lengths {
            offsets.push(offset);
            offset += length;
        }
        let contexts = lengths
            .par_iter()
            .zip(&offsets)
            .map(|(&length, &offset)| {
                // (length, 3 hidden) -> (3, heads, length, head_dim)
                let parts = qkv
                    .narrow(0, offset, length)?
                    .reshape((length, 3, self.heads, self.head_dim))?
                    .permute((1, 2, 0, 3))?
                    .contiguous()?;
                // The query projection is pre-scaled by 1 / sqrt(head_dim) (see `new`).
                let q = parts.get(0)?;
                let k = parts.get(1)?;
                let v = parts.get(2)?;
                let probs = softmax_last_dim(&q.matmul(&k.t()?)?)?;
                probs
                    .matmul(&v)?
                    .transpose(0, 1)?
                    .contiguous()?
                    .reshape((length, hidden))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let context = Tensor::cat(&contexts, 0)?;
        let attended = self
            .attention_norm
            .forward(&(self.attention_output.forward(&context)? + xs)?)?;
        let inner = self.intermediate.forward_gelu(&attended)?;
        self.output_norm
            .forward(&(self.output.forward(&inner)? + attended)?)
    }
}

/// BERT encoder without the pooler head.
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    hidden: usize,
    intermediate: usize,
    heads: usize,
    eps: f64,
}

fn values(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()
}

fn fused_linear(dense: &Dense) -> candle_core::Result<fused::Linear> {
    let weight_t = values(&dense.weight_t)?;
    let bias = match &dense.bias {
        Some(bias) => values(bias)?,
        None => vec![0.0; dense.weight_t.dim(1)?],
    };
    Ok(fused::Linear { weight_t, bias })
}

fn fused_norm(norm: &LayerNorm) -> candle_core::Result<fused::Norm> {
    let gamma = values(norm.weight())?;
    let beta = match norm.bias() {
        Some(bias) => values(bias)?,
        None => vec![0.0; gamma.len()],
    };
    Ok(fused::Norm { gamma, beta })
}

impl BertModel {
    /// Builds the model; `vb` points at the checkpoint root (`embeddings.*`, `encoder.*`) or
    /// at a root with a `bert.` prefix.
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        if cfg.position_embedding_type != "absolute" {
            candle_core::bail!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                cfg.position_embedding_type
            );
        }
        if cfg.hidden_act != "gelu" {
            candle_core::bail!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                cfg.hidden_act
            );
        }
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let embeddings = Embeddings::new(cfg, vb.pp("embeddings"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::new(cfg, vb.pp("encoder").pp("layer").pp(i)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            embeddings,
            layers,
            hidden: cfg.hidden_size,
            intermediate: cfg.intermediate_size,
            heads: cfg.num_attention_heads,
            eps: cfg.layer_norm_eps,
        })
    }

    /// The same weights laid out for the fused CPU kernels (a copy: the model keeps its own).
    pub(super) fn fused(&self) -> candle_core::Result<FusedBert> {
        let e = &self.embeddings;
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(FusedLayer {
                    qkv: fused_linear(&l.qkv)?,
                    attention_output: fused_linear(&l.attention_output)?,
                    attention_norm: fused_norm(&l.attention_norm)?,
                    intermediate: fused_linear(&l.intermediate)?,
                    output: fused_linear(&l.output)?,
                    output_norm: fused_norm(&l.output_norm)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(FusedBert {
            words: values(e.word_embeddings.embeddings())?,
            positions: values(e.position_embeddings.embeddings())?,
            token_types: values(e.token_type_embeddings.embeddings())?,
            embedding_norm: fused_norm(&e.layer_norm)?,
            layers,
            hidden: self.hidden,
            intermediate: self.intermediate,
            heads: self.heads,
            eps: self.eps as f32,
        })
    }

    /// Token embeddings of the last layer.
    ///
    /// # Shapes
    /// `input_ids`, `token_type_ids`: `(batch, seq)` u32; `attention_mask`: `(batch, seq)`
    /// f32 (1 token, 0 padding) -> `(batch, seq, hidden)` f32.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        // Same bias as transformers: (1 - mask) * finfo(float32).min.
        let mask_bias = ((1.0 - attention_mask.to_dtype(DType::F32)?)? * f32::MIN as f64)?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        let mut xs = self.embeddings.forward(input_ids, token_type_ids)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask_bias)?;
        }
        Ok(xs)
    }

    /// Token embeddings of the last layer for sequences packed without padding (each
    /// sequence's positions start at 0); same values as [`Self::forward`] on the unpadded
    /// tokens.
    ///
    /// # Shapes
    /// `input_ids`, `token_type_ids`: `(tokens,)` u32, the sequences one after another;
    /// `lengths`: tokens per sequence, summing to `tokens` -> `(tokens, hidden)` f32.
    pub fn forward_packed(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        lengths: &[usize],
    ) -> candle_core::Result<Tensor> {
        let positions: Vec<u32> = lengths.iter().flat_map(|&l| 0..l as u32).collect();
        let positions = Tensor::from_vec(positions, input_ids.dims1()?, input_ids.device())?;
        let e = &self.embeddings;
        let xs = (e.word_embeddings.forward(input_ids)?
            + e.position_embeddings.forward(&positions)?)?
        .add(&e.token_type_embeddings.forward(token_type_ids)?)?;
        let mut xs = e.layer_norm.forward(&xs)?;
        for layer in &self.layers {
            xs = layer.forward_packed(&xs, lengths)?;
        }
        Ok(xs)
    }
}

/// Mean over the tokens that the mask keeps, as sentence-transformers' `Pooling`
/// (`sum(x * mask) / clamp(sum(mask), 1e-9)`).
///
/// # Shapes
/// `tokens`: `(batch, seq, hidden)`, `attention_mask`: `(batch, seq)` f32 -> `(batch, hidden)`.
pub fn mean_pool(tokens: &Tensor, attention_mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = attention_mask.unsqueeze(D::Minus1)?;
    let summed = tokens.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    summed.broadcast_div(&counts)
}

/// Divides each row by its Euclidean norm (at least 1e-12), as `torch.nn.functional.normalize`.
///
/// # Shapes
/// `(batch, hidden)` -> `(batch, hidden)`.
pub fn l2_normalize(xs: &Tensor) -> candle_core::Result<Tensor> {
    let norms = xs
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    xs.broadcast_div(&norms)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use candle_nn::VarMap;

    use super::*;

    /// A small random BERT: the fused kernels against the candle graph on packed sequences
    /// of uneven lengths (several token blocks, a one-token text).
    #[test]
    fn fused_kernels_match_the_candle_graph() {
        let cfg: BertConfig = serde_json::from_value(serde_json::json!({
            "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 64,
            "max_position_embeddings": 64, "type_vocab_size": 2
        }))
        .expect("config");
        let device = Device::Cpu;
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &device);
        BertModel::new(&cfg, vb.clone()).expect("create variables");
        // Every parameter set (layer norms included) from a fixed pseudo-random sequence, so
        // the comparison is the same on every run; then build the model on them.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for (i, var) in map.all_vars().iter().enumerate() {
            let offset = if i % 3 == 0 { 0.5 } else { 0.0 };
            let values: Vec<f32> = (0..var.elem_count())
                .map(|_| {
                    // xorshift64*: uniform in [-0.87, 0.87), the spread of N(0, 0.5).
                    state ^= state >> 12;
                    state ^= state << 25;
                    state ^= state >> 27;
                    let unit = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32
                        / (1u64 << 24) as f32;
                    (unit - 0.5) * 1.732 + offset
                })
                .collect();
            let values = Tensor::from_vec(values, var.shape(), &device).expect("values");
            var.set(&values).expect("set");
        }
        let model = BertModel::new(&cfg, vb).expect("model");
        let fused = model.fused().expect("fused");

        let lengths = [23usize, 1, 40, 17, 9];
        let total: usize = lengths.iter().sum();
        let ids: Vec<u32> = (0..total as u32).map(|i| (i * 7 + 3) % 50).collect();
        let types: Vec<u32> = (0..total as u32).map(|i| u32::from(i % 5 == 0)).collect();
        let expected = model
            .forward_packed(
                &Tensor::new(ids.as_slice(), &device).expect("ids"),
                &Tensor::new(types.as_slice(), &device).expect("types"),
                &lengths,
            )
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .expect("candle forward");
        let mut work = fused.workspace(total);
        let actual = fused.forward(&ids, &types, &lengths, &mut work);
        assert_eq!(actual.len(), expected.len());
        let worst = actual
            .iter()
            .zip(&expected)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // f32 sums in other orders, and the threaded products and reductions of both sides
        // vary their order from run to run: over many runs the worst difference stayed below
        // 2e-5 of the largest output; a wrong kernel is off by 1e-3 or more.
        let largest = expected.iter().fold(1f32, |m, v| m.max(v.abs()));
        assert!(
            worst < 5e-5 * largest,
            "max abs difference {worst} (largest output {largest})"
        );
    }
}
