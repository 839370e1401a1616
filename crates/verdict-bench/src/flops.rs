//! Model FLOPs of one item, for utilisation figures (matmul FLOPs only, full attention).

use anyhow::Result;
use verdict_models::qwen3_vl::Config;

use crate::inputs::Inputs;

/// Forward FLOPs of one row of `inputs`: 2 per multiply-add of every linear layer and of the
/// attention products (`q k^T` and `p v`), vision tower included, lm_head for one position.
pub fn forward_flops_per_item(config: &Config, inputs: &Inputs) -> Result<f64> {
    let t = &config.text_config;
    let (h, heads, kv, hd) = (
        t.hidden_size as f64,
        t.num_attention_heads as f64,
        t.num_key_value_heads() as f64,
        t.head_dim() as f64,
    );
    let layers = t.num_hidden_layers as f64;
    let seq = inputs.seq_len() as f64;
    let text_params = layers
        * (h * heads * hd
            + 2.0 * h * kv * hd
            + heads * hd * h
            + 3.0 * h * t.intermediate_size as f64);
    let text = 2.0 * text_params * seq
        + layers * 4.0 * seq * seq * heads * hd
        + 2.0 * h * t.vocab_size as f64;

    let v = &config.vision_config;
    let vh = v.hidden_size as f64;
    let patches = inputs.patches_per_row() as f64;
    let merge = (v.spatial_merge_size * v.spatial_merge_size) as f64;
    let block_params = 4.0 * vh * vh + 2.0 * vh * v.intermediate_size as f64;
    let merger_params = merge * vh * merge * vh + merge * vh * v.out_hidden_size as f64;
    let mergers = 1.0 + v.deepstack_visual_indexes.len() as f64;
    let vision = 2.0 * v.depth as f64 * block_params * patches
        + v.depth as f64 * 4.0 * patches * patches * vh
        + 2.0 * mergers * merger_params * patches / merge
        + 2.0
            * patches
            * (v.in_channels * v.temporal_patch_size * v.patch_size * v.patch_size) as f64
            * vh;
    Ok(text + vision)
}

/// Training FLOPs of one row (forward + backward ~ 3x forward, logits at every position).
pub fn train_flops_per_item(config: &Config, inputs: &Inputs) -> Result<f64> {
    let t = &config.text_config;
    let seq = inputs.seq_len() as f64;
    let extra_logits = 2.0 * t.hidden_size as f64 * t.vocab_size as f64 * (seq - 1.0);
    Ok(3.0 * (forward_flops_per_item(config, inputs)? + extra_logits))
}
