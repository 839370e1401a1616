//! Multi-label classification along the dimensions of an ontology.
//!
//! An RDF ontology (Turtle, N-Triples or RDF/XML; OWL classes or SKOS concepts) supplies the
//! label sets: chosen top-level concepts are the *dimensions* of the answer and the concepts
//! below them its labels. From the same file this crate builds knowledge-infusion questions
//! (definitions, parents, children, dimensions) in chat SFT format, a constrained decoder that
//! only writes concept names of the right dimension, one hierarchy policy shared by training
//! targets, predictions and evaluation, and hierarchical precision/recall.

pub mod card;
pub mod classify;
pub mod constraint;
pub mod error;
pub mod evaluate;
pub mod hierarchy;
pub mod ki;
pub mod ontology;
pub mod prompt;
pub mod rdf;
pub mod sft;
pub mod spec;
pub mod train;
pub mod worksheet;

pub use constraint::{parse_answer, Answer, AnswerConstraint, AnswerSchema};
pub use error::{OntologyError, Result};
pub use hierarchy::{HierarchicalCounter, HierarchicalScores, HierarchyPolicy};
pub use ontology::{Concept, Ontology};
pub use spec::OntologySpec;
