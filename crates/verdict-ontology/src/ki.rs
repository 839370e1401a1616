//! Knowledge-infusion data: questions and answers about the ontology itself, so a fine-tuned
//! model learns what each concept name means before (and while) it learns to label images.
//!
//! Four kinds of question are asked about every concept they apply to: its definition, its
//! parent(s), its direct children and the dimension it belongs to. Each fact can be asked in
//! several phrasings; all phrasings of one fact go to the same split, so validation questions
//! test facts the model did not see in training rather than a rewording of them.

use std::collections::{BTreeMap, HashSet};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ontology::Ontology;
use crate::prompt;
use crate::sft::ChatExample;

/// Kind of knowledge question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuestionKind {
    Definition,
    ParentOf,
    ChildrenOf,
    Dimension,
}

impl QuestionKind {
    pub const ALL: [QuestionKind; 4] = [
        QuestionKind::Definition,
        QuestionKind::ParentOf,
        QuestionKind::ChildrenOf,
        QuestionKind::Dimension,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Definition => "definition",
            Self::ParentOf => "parent-of",
            Self::ChildrenOf => "children-of",
            Self::Dimension => "dimension",
        }
    }
}

/// Settings of the knowledge-infusion set; saved beside the data it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KiConfig {
    /// Share of facts (per question kind) held out for validation.
    pub val_fraction: f64,
    pub seed: u64,
    /// Phrasings asked per fact (1 to 3).
    pub phrasings: usize,
    /// Question kinds to generate.
    pub kinds: Vec<QuestionKind>,
}

impl Default for KiConfig {
    fn default() -> Self {
        Self {
            val_fraction: 0.1,
            seed: 42,
            phrasings: 2,
            kinds: QuestionKind::ALL.to_vec(),
        }
    }
}

/// One question with its answer and the fact it asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub kind: QuestionKind,
    /// Name of the concept asked about (the fact's key together with `kind`).
    pub concept: String,
    pub question: String,
    pub answer: String,
}

/// The generated set.
#[derive(Debug, Clone, Default)]
pub struct KiDataset {
    pub train: Vec<Question>,
    pub val: Vec<Question>,
    /// Questions dropped because the same question (up to case and spacing) came earlier.
    pub duplicates_removed: usize,
}

/// Question and answer counts per split and kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KiCounts {
    pub train: BTreeMap<String, usize>,
    pub val: BTreeMap<String, usize>,
    pub duplicates_removed: usize,
}

impl KiDataset {
    pub fn counts(&self) -> KiCounts {
        let count = |questions: &[Question]| {
            let mut map: BTreeMap<String, usize> = BTreeMap::new();
            for q in questions {
                *map.entry(q.kind.as_str().to_string()).or_default() += 1;
            }
            map
        };
        KiCounts {
            train: count(&self.train),
            val: count(&self.val),
            duplicates_removed: self.duplicates_removed,
        }
    }

    /// Chat examples of one split.
    pub fn examples(ontology: &Ontology, questions: &[Question]) -> Vec<ChatExample> {
        let system = prompt::system_prompt(ontology);
        questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let id = format!("ki-{}-{}-{i}", q.kind.as_str(), q.concept);
                ChatExample::text(&id, &system, &q.question, &q.answer)
            })
            .collect()
    }
}

/// How a concept is named in a question: its name, with its label when that differs.
fn mention(ontology: &Ontology, concept: usize) -> String {
    let c = ontology.concept(concept);
    if c.label.eq_ignore_ascii_case(&c.name) {
        c.name.clone()
    } else {
        format!("{} ({})", c.name, c.label)
    }
}

fn names(ontology: &Ontology, concepts: &[usize]) -> String {
    concepts
        .iter()
        .map(|&c| ontology.concept(c).name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every question about every concept, before dedup and split, in ontology order.
pub fn questions(ontology: &Ontology, config: &KiConfig) -> Vec<Question> {
    let title = prompt::ontology_title(ontology);
    let phrasings = config.phrasings.clamp(1, 3);
    let mut out = Vec::new();
    for (index, concept) in ontology.concepts().iter().enumerate() {
        let who = mention(ontology, index);
        for &kind in &config.kinds {
            let (templates, answer): ([String; 3], String) = match kind {
                QuestionKind::Definition => {
                    let Some(definition) = &concept.definition else {
                        continue;
                    };
                    (
                        [
                            format!("What does the concept {who} mean in the {title} ontology?"),
                            format!("Define {who}."),
                            format!("Give the definition of {who}."),
                        ],
                        definition.clone(),
                    )
                }
                QuestionKind::ParentOf => {
                    if concept.parents.is_empty() {
                        continue;
                    }
                    (
                        [
                            format!("What is the direct parent concept of {who}?"),
                            format!("Which concept is {} a kind of?", concept.name),
                            format!("Name the broader concept directly above {}.", concept.name),
                        ],
                        names(ontology, &concept.parents),
                    )
                }
                QuestionKind::ChildrenOf => {
                    if concept.children.is_empty() {
                        continue;
                    }
                    (
                        [
                            format!("Which concepts are directly below {who}?"),
                            format!("List the direct sub-concepts of {}.", concept.name),
                            format!("What are the narrower concepts of {}?", concept.name),
                        ],
                        names(ontology, &concept.children),
                    )
                }
                QuestionKind::Dimension => {
                    let Some(d) = ontology.dimension_of(index) else {
                        continue;
                    };
                    (
                        [
                            format!("Which dimension does {who} belong to?"),
                            format!("Under which dimension is {} labelled?", concept.name),
                            format!(
                                "In which dimension of the answer does {} appear?",
                                concept.name
                            ),
                        ],
                        ontology.concept(ontology.dimension_root(d)).name.clone(),
                    )
                }
            };
            for question in templates.into_iter().take(phrasings) {
                out.push(Question {
                    kind,
                    concept: concept.name.clone(),
                    question,
                    answer: answer.clone(),
                });
            }
        }
    }
    out
}

fn normalised(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Generates, deduplicates and splits the knowledge-infusion questions.
pub fn generate(ontology: &Ontology, config: &KiConfig) -> KiDataset {
    let mut seen = HashSet::new();
    let mut duplicates_removed = 0;
    let mut kept = Vec::new();
    for question in questions(ontology, config) {
        if seen.insert(normalised(&question.question)) {
            kept.push(question);
        } else {
            duplicates_removed += 1;
        }
    }
    // Facts (kind, concept) are shuffled per kind with a seeded generator and the first
    // `val_fraction` of them go to validation.
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut val_facts: HashSet<(QuestionKind, String)> = HashSet::new();
    for kind in QuestionKind::ALL {
        let mut facts: Vec<String> = Vec::new();
        for q in kept.iter().filter(|q| q.kind == kind) {
            if !facts.contains(&q.concept) {
                facts.push(q.concept.clone());
            }
        }
        facts.shuffle(&mut rng);
        let fraction = config.val_fraction.clamp(0.0, 1.0);
        let mut n_val = (facts.len() as f64 * fraction).round() as usize;
        if fraction > 0.0 && n_val == 0 && facts.len() > 1 {
            n_val = 1;
        }
        val_facts.extend(facts.into_iter().take(n_val).map(|f| (kind, f)));
    }
    let (val, train): (Vec<Question>, Vec<Question>) = kept
        .into_iter()
        .partition(|q| val_facts.contains(&(q.kind, q.concept.clone())));
    KiDataset {
        train,
        val,
        duplicates_removed,
    }
}
