//! The instruction a model sees, shared by training examples and prediction so that a
//! fine-tuned model is asked exactly what it was trained on.

use crate::constraint::Answer;
use crate::ontology::Ontology;

/// System turn of image examples and knowledge questions.
pub fn system_prompt(ontology: &Ontology) -> String {
    format!(
        "You label material with concepts of the ontology {}. Answer only with concept names of the ontology.",
        ontology_title(ontology)
    )
}

/// How the ontology is named in prompts: its IRI's last segment, else the file stem.
pub fn ontology_title(ontology: &Ontology) -> String {
    ontology
        .iri
        .as_deref()
        .map(|iri| crate::rdf::local_name(iri).to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| {
            ontology
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "ontology".to_string())
}

/// The user instruction for labelling an image: every dimension with its concept names.
pub fn classification_instruction(ontology: &Ontology) -> String {
    let mut text = String::from(
        "Label this image along each dimension with the most fitting concepts. Reply with JSON \
         such as {\"Dimension\": [\"Concept\"]}.\n",
    );
    for (dimension, labels) in ontology.label_sets() {
        text.push_str(&format!("{dimension}: {}\n", labels.join(", ")));
    }
    text.trim_end().to_string()
}

/// The assistant reply of a labelled example: the answer JSON in the spacing the answer
/// constraint allows (`{"A": ["x"], "B": ["y", "z"]}`).
pub fn answer_text(answer: &Answer) -> String {
    let parts: Vec<String> = answer
        .dimensions
        .iter()
        .map(|(dimension, labels)| {
            let labels: Vec<String> = labels.iter().map(|l| format!("\"{l}\"")).collect();
            format!("\"{dimension}\": [{}]", labels.join(", "))
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}
