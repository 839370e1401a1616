//! Commented example task files written by `verdict init`.

/// (name, TOML text) of every template.
pub const TEMPLATES: [(&str, &str); 4] = [
    (
        "print-triage",
        include_str!("../templates/print-triage.toml"),
    ),
    (
        "listing-spam",
        include_str!("../templates/listing-spam.toml"),
    ),
    ("retrieval", include_str!("../templates/retrieval.toml")),
    ("ontology", include_str!("../templates/ontology.toml")),
];

pub fn get(name: &str) -> Option<&'static str> {
    TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|(n, _)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskSpec;

    #[test]
    fn every_template_is_a_valid_task() {
        for (name, text) in TEMPLATES {
            let spec = TaskSpec::parse(text, std::path::Path::new(name))
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
            assert_eq!(spec.name, name);
        }
    }
}
