//! Adapter configuration: rank, scaling, dropout and which linear layers get adapters.
//!
//! Target selection follows PEFT exactly, so an `adapter_config.json` means the same thing to
//! PEFT, vLLM and Verdict:
//! - a list of names selects a layer whose full path equals a name or ends with `.<name>`;
//! - a single string is a regular expression that must match the whole path;
//! - `"all-linear"` selects every linear layer except the output layer (`lm_head`).
//!
//! [`ModuleSwitches`] builds the pattern that Unsloth's `finetune_vision_layers` /
//! `finetune_language_layers` / `finetune_attention_modules` / `finetune_mlp_modules` produce,
//! so fine-tuning recipes written for Unsloth carry over unchanged.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// PEFT's special target value: every linear layer but the output layer.
pub const ALL_LINEAR: &str = "all-linear";

/// Linear layer names of Qwen-family language and vision towers (attention and MLP).
pub const QWEN3_VL_LINEAR_NAMES: [&str; 11] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "qkv",
    "proj",
    "linear_fc1",
    "linear_fc2",
];

/// Which layers get adapters, with PEFT's meaning (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// Layer names matched against the end of the path (`q_proj` matches `...self_attn.q_proj`).
    List(Vec<String>),
    /// A regular expression over the whole path, or [`ALL_LINEAR`].
    Pattern(String),
}

impl Default for TargetModules {
    fn default() -> Self {
        Self::Pattern(ALL_LINEAR.to_string())
    }
}

impl TargetModules {
    /// Names matched by suffix.
    pub fn names<S: AsRef<str>>(names: &[S]) -> Self {
        Self::List(names.iter().map(|n| n.as_ref().to_string()).collect())
    }

    pub fn is_all_linear(&self) -> bool {
        matches!(self, Self::Pattern(p) if p == ALL_LINEAR)
    }

    /// Compiles the selection once, checking the regular expression.
    pub fn matcher(&self) -> Result<Matcher> {
        Ok(match self {
            Self::List(names) => Matcher::Names(names.clone()),
            Self::Pattern(p) if p == ALL_LINEAR => Matcher::AllLinear,
            Self::Pattern(p) => Matcher::Regex(
                Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| Error::Config(format!("target pattern {p:?}: {e}")))?,
            ),
        })
    }
}

/// A compiled [`TargetModules`].
#[derive(Debug, Clone)]
pub enum Matcher {
    Names(Vec<String>),
    Regex(Regex),
    AllLinear,
}

impl Matcher {
    /// True if the linear layer at `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Names(names) => names
                .iter()
                .any(|n| path == n || path.ends_with(&format!(".{n}"))),
            Self::Regex(re) => re.is_match(path),
            Self::AllLinear => leaf_name(path) != "lm_head",
        }
    }
}

/// Last component of a dotted path (`q_proj` of `model.layers.0.self_attn.q_proj`).
pub fn leaf_name(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Unsloth's switches for vision-language models; all on by default like Unsloth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModuleSwitches {
    pub finetune_vision_layers: bool,
    pub finetune_language_layers: bool,
    pub finetune_attention_modules: bool,
    pub finetune_mlp_modules: bool,
}

impl Default for ModuleSwitches {
    fn default() -> Self {
        Self {
            finetune_vision_layers: true,
            finetune_language_layers: true,
            finetune_attention_modules: true,
            finetune_mlp_modules: true,
        }
    }
}

impl ModuleSwitches {
    /// The target pattern Unsloth's `get_peft_regex` builds for these switches over the given
    /// linear layer names (e.g. [`QWEN3_VL_LINEAR_NAMES`]). The pattern uses only syntax that
    /// Python's `re` and Rust's `regex` read alike, so PEFT selects the same layers.
    pub fn target_modules(&self, linear_names: &[&str]) -> Result<TargetModules> {
        let mut parts: Vec<&str> = Vec::new();
        if self.finetune_vision_layers {
            parts.extend(["vision", "image", "visual", "patch"]);
        }
        if self.finetune_language_layers {
            parts.extend(["language", "text"]);
        }
        let mut components: Vec<&str> = Vec::new();
        if self.finetune_attention_modules {
            components.extend(["self_attn", "attention", "attn"]);
        }
        if self.finetune_mlp_modules {
            components.extend(["mlp", "feed_forward", "ffn", "dense"]);
        }
        if parts.is_empty() || components.is_empty() || linear_names.is_empty() {
            return Err(Error::Config(
                "module switches select nothing: enable vision or language layers, and attention or MLP modules"
                    .into(),
            ));
        }
        let names = linear_names
            .iter()
            .map(|n| regex::escape(n))
            .collect::<Vec<_>>()
            .join("|");
        let (parts, components) = (parts.join("|"), components.join("|"));
        let mut pattern = format!(r".*?(?:{parts}).*?(?:{components}).*?(?:{names}).*?");
        if self.finetune_language_layers {
            // Decoder-only layouts (`model.layers.N.self_attn.q_proj`) carry no language tag.
            pattern = format!(
                r"(?:{pattern})|(?:\bmodel\.layers\.[\d]{{1,}}\.(?:{components})\.(?:{names}))"
            );
        }
        Ok(TargetModules::Pattern(pattern))
    }
}

/// How adapters are shaped and where they go. Saved with every adapter; see the crate docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoraConfig {
    /// Rank of the update `B @ A`.
    pub r: usize,
    /// Scale numerator: the update is multiplied by `alpha / r` (`alpha / sqrt(r)` with rsLoRA).
    pub alpha: f64,
    /// Dropout probability on the adapter input while training.
    pub dropout: f64,
    pub target_modules: TargetModules,
    /// Layers never adapted even if targeted (PEFT's `exclude_modules`).
    pub exclude_modules: Option<TargetModules>,
    /// Rank-stabilised scaling `alpha / sqrt(r)`, which keeps high ranks trainable.
    pub use_rslora: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 16,
            alpha: 32.0,
            dropout: 0.05,
            target_modules: TargetModules::default(),
            exclude_modules: None,
            use_rslora: false,
        }
    }
}

impl LoraConfig {
    /// Multiplier of `B @ A`.
    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(Error::Config("r must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if !self.alpha.is_finite() {
            return Err(Error::Config(format!(
                "alpha must be finite, got {}",
                self.alpha
            )));
        }
        self.selector().map(|_| ())
    }

    /// The compiled target/exclude selection.
    pub fn selector(&self) -> Result<Selector> {
        Ok(Selector {
            target: self.target_modules.matcher()?,
            exclude: self
                .exclude_modules
                .as_ref()
                .map(TargetModules::matcher)
                .transpose()?,
        })
    }
}

/// Targets minus exclusions.
#[derive(Debug, Clone)]
pub struct Selector {
    target: Matcher,
    exclude: Option<Matcher>,
}

impl Selector {
    pub fn selects(&self, path: &str) -> bool {
        self.target.matches(path) && !self.exclude.as_ref().is_some_and(|e| e.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATHS: [&str; 6] = [
        "model.language_model.layers.0.self_attn.q_proj",
        "model.language_model.layers.1.mlp.down_proj",
        "model.visual.blocks.0.attn.qkv",
        "model.visual.blocks.1.mlp.linear_fc2",
        "model.visual.merger.linear_fc1",
        "lm_head",
    ];

    fn selected(targets: &TargetModules) -> Vec<&'static str> {
        let m = targets.matcher().unwrap();
        PATHS.into_iter().filter(|p| m.matches(p)).collect()
    }

    #[test]
    fn names_match_whole_components_only() {
        let t = TargetModules::names(&["q_proj", "fc2"]);
        assert_eq!(selected(&t), vec![PATHS[0]]);
        let t = TargetModules::names(&["proj"]);
        assert!(selected(&t).is_empty(), "proj must not match q_proj");
    }

    #[test]
    fn all_linear_skips_the_output_layer() {
        assert_eq!(selected(&TargetModules::default()), PATHS[..5].to_vec());
    }

    #[test]
    fn pattern_must_match_the_whole_path() {
        let t = TargetModules::Pattern(r"visual\.blocks\.\d+\.attn\.qkv".into());
        assert!(selected(&t).is_empty());
        let t = TargetModules::Pattern(r".*visual\.blocks\.\d+\.attn\.qkv".into());
        assert_eq!(selected(&t), vec![PATHS[2]]);
    }

    #[test]
    fn unsloth_switches_pick_towers_and_module_kinds() {
        let all = ModuleSwitches::default()
            .target_modules(&QWEN3_VL_LINEAR_NAMES)
            .unwrap();
        // The merger has no attention/MLP tag, so Unsloth leaves it alone too.
        assert_eq!(selected(&all), PATHS[..4].to_vec());
        let language_mlp = ModuleSwitches {
            finetune_vision_layers: false,
            finetune_attention_modules: false,
            ..ModuleSwitches::default()
        };
        let t = language_mlp.target_modules(&QWEN3_VL_LINEAR_NAMES).unwrap();
        assert_eq!(selected(&t), vec![PATHS[1]]);
        let m = t.matcher().unwrap();
        assert!(m.matches("model.layers.3.mlp.up_proj"));
        assert!(!m.matches("model.layers.3.self_attn.q_proj"));
        let none = ModuleSwitches {
            finetune_attention_modules: false,
            finetune_mlp_modules: false,
            ..ModuleSwitches::default()
        };
        assert!(none.target_modules(&QWEN3_VL_LINEAR_NAMES).is_err());
    }

    #[test]
    fn exclusions_and_scaling() {
        let config = LoraConfig {
            exclude_modules: Some(TargetModules::names(&["qkv"])),
            ..LoraConfig::default()
        };
        let s = config.selector().unwrap();
        assert!(!s.selects(PATHS[2]));
        assert!(s.selects(PATHS[0]));
        assert_eq!(config.scaling(), 2.0);
        let rs = LoraConfig {
            use_rslora: true,
            ..LoraConfig::default()
        };
        assert_eq!(rs.scaling(), 8.0);
        assert!(LoraConfig {
            r: 0,
            ..LoraConfig::default()
        }
        .validate()
        .is_err());
        assert!(LoraConfig {
            dropout: 1.0,
            ..LoraConfig::default()
        }
        .validate()
        .is_err());
    }
}
