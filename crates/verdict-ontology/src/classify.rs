//! A Qwen3-VL checkpoint as an ontology labeller: the shared instruction, greedy decoding under
//! [`AnswerConstraint`], then the hierarchy policy on the parsed answer.

use std::path::Path;
use std::sync::Arc;

use image::RgbImage;
use verdict_models::qwen3_vl::classify::Classifier;
use verdict_models::qwen3_vl::generation::{generate, GenerationConfig};
use verdict_models::qwen3_vl::inputs::Preprocessor;
use verdict_models::token_bytes::TokenBytes;
use verdict_models::{DType, Device};

use crate::constraint::{parse_answer, Answer, AnswerConstraint, AnswerSchema};
use crate::error::Result;
use crate::hierarchy::HierarchyPolicy;
use crate::ontology::Ontology;
use crate::prompt;

/// A labelling of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelling {
    /// Labels after the hierarchy policy.
    pub answer: Answer,
    /// The answer as the model wrote it.
    pub raw: Answer,
    /// Generated text, exactly.
    pub text: String,
    /// Generated tokens (stop token included).
    pub tokens: usize,
}

/// Model, ontology and the answer grammar built from it.
pub struct OntologyClassifier {
    classifier: Classifier,
    ontology: Ontology,
    policy: HierarchyPolicy,
    schema: Arc<AnswerSchema>,
    tokens: Arc<TokenBytes>,
}

impl OntologyClassifier {
    /// Loads a checkpoint directory; `max_labels` bounds the labels per dimension.
    pub fn load(
        dir: &Path,
        ontology: Ontology,
        policy: HierarchyPolicy,
        max_labels: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let classifier = Classifier::load(dir, dtype, device)?;
        Self::new(classifier, ontology, policy, max_labels)
    }

    pub fn new(
        classifier: Classifier,
        ontology: Ontology,
        policy: HierarchyPolicy,
        max_labels: usize,
    ) -> Result<Self> {
        let mut schema = AnswerSchema::new(ontology.label_sets())?;
        schema.max_labels = max_labels.max(1);
        schema.check()?;
        let tokens = Arc::new(TokenBytes::from_tokenizer(
            classifier.preprocessor().chat().tokenizer(),
        ));
        Ok(Self {
            classifier,
            ontology,
            policy,
            schema: Arc::new(schema),
            tokens,
        })
    }

    pub fn ontology(&self) -> &Ontology {
        &self.ontology
    }

    pub fn schema(&self) -> &AnswerSchema {
        &self.schema
    }

    fn preprocessor(&self) -> &Preprocessor {
        self.classifier.preprocessor()
    }

    /// Labels one image.
    pub fn classify(&self, image: &RgbImage) -> Result<Labelling> {
        let messages = Preprocessor::classification_messages(
            Some(&prompt::system_prompt(&self.ontology)),
            1,
            &prompt::classification_instruction(&self.ontology),
        );
        let model = self.classifier.model();
        let batch =
            self.preprocessor()
                .prompt(&messages, std::slice::from_ref(image), model.device())?;
        let stop_tokens = self.preprocessor().stop_tokens().to_vec();
        let mut constraint = AnswerConstraint::new(
            self.schema.clone(),
            self.tokens.clone(),
            stop_tokens.clone(),
        )?;
        let config = GenerationConfig {
            max_new_tokens: self.schema.max_output_bytes() + 1,
            stop_tokens: stop_tokens.clone(),
            ..GenerationConfig::default()
        };
        let generation = generate(model, &batch, &config, Some(&mut constraint))?;
        let ids: Vec<u32> = generation
            .tokens
            .iter()
            .copied()
            .filter(|t| !stop_tokens.contains(t))
            .collect();
        let text = self.preprocessor().chat().decode(&ids, true)?;
        let raw = parse_answer(&text, &self.schema)?;
        let mut answer = Answer::default();
        for (d, (dimension, labels)) in raw.dimensions.iter().enumerate() {
            answer.dimensions.push((
                dimension.clone(),
                self.policy.normalise(&self.ontology, d, labels)?,
            ));
        }
        Ok(Labelling {
            answer,
            raw,
            text,
            tokens: generation.tokens.len(),
        })
    }
}
