//! Reading RDF files into the statements an ontology is built from.
//!
//! Parsing is done by `oxrdfio` (the Oxigraph parsers for Turtle, N-Triples and RDF/XML);
//! this module only picks the few vocabularies a concept hierarchy is written in:
//! OWL / RDFS classes (`rdfs:subClassOf`, `rdfs:label`, `rdfs:comment`) and SKOS concepts
//! (`skos:broader`, `skos:narrower`, `skos:prefLabel`, `skos:definition`).

use std::collections::BTreeMap;
use std::path::Path;

use oxrdf::{NamedOrBlankNode, Term};
use oxrdfio::{RdfFormat, RdfParser, RdfSyntaxError};

use crate::error::{OntologyError, Result};

const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
const RDFS: &str = "http://www.w3.org/2000/01/rdf-schema#";
const OWL: &str = "http://www.w3.org/2002/07/owl#";
const SKOS: &str = "http://www.w3.org/2004/02/skos/core#";

/// A literal with its language tag (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub value: String,
    pub language: Option<String>,
}

/// What the file says about one resource, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    /// Typed `owl:Class`, `rdfs:Class` or `skos:Concept`.
    pub declared: bool,
    /// Subject of a hierarchy statement (so it is a class even without a type).
    pub in_hierarchy: bool,
    /// Parent IRIs from `rdfs:subClassOf` / `skos:broader` (and inverted `skos:narrower`).
    pub parents: Vec<String>,
    pub pref_labels: Vec<Text>,
    pub labels: Vec<Text>,
    pub definitions: Vec<Text>,
    pub comments: Vec<Text>,
    /// Order of first appearance, so concept order follows the file.
    pub order: usize,
}

/// Statements of one RDF file relevant to a concept hierarchy.
#[derive(Debug, Clone, Default)]
pub struct Statements {
    pub resources: BTreeMap<String, Resource>,
    /// IRI of the `owl:Ontology` node, if any.
    pub ontology_iri: Option<String>,
    /// `owl:versionInfo` (or `owl:versionIRI`) of the ontology.
    pub version: Option<String>,
}

/// The parser format for a file, from its extension.
pub fn format_of(path: &Path) -> Result<RdfFormat> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        "owl" => Ok(RdfFormat::RdfXml),
        "ttl" | "nt" | "rdf" | "xml" => {
            RdfFormat::from_extension(&extension).ok_or_else(|| OntologyError::UnknownFormat {
                path: path.to_path_buf(),
            })
        }
        _ => Err(OntologyError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

fn text(term: &Term) -> Option<Text> {
    match term {
        Term::Literal(literal) => Some(Text {
            value: literal.value().trim().to_string(),
            language: literal.language().map(str::to_string),
        }),
        _ => None,
    }
}

/// Parses `bytes` (the content of `path`) in `format`.
pub fn parse(path: &Path, bytes: &[u8], format: RdfFormat) -> Result<Statements> {
    let mut statements = Statements::default();
    let mut next_order = 0usize;
    let mut resource = |resources: &mut BTreeMap<String, Resource>, iri: &str| -> usize {
        let entry = resources.entry(iri.to_string()).or_insert_with(|| {
            next_order += 1;
            Resource {
                order: next_order,
                ..Resource::default()
            }
        });
        entry.order
    };
    for quad in RdfParser::from_format(format).for_slice(bytes) {
        let quad = quad.map_err(|error| syntax_error(path, error))?;
        // Blank nodes are OWL restrictions and the like: not concepts.
        let NamedOrBlankNode::NamedNode(subject) = &quad.subject else {
            continue;
        };
        let subject = subject.as_str();
        let predicate = quad.predicate.as_str();
        let object_iri = match &quad.object {
            Term::NamedNode(node) => Some(node.as_str()),
            _ => None,
        };
        let resources = &mut statements.resources;
        if predicate == RDF_TYPE {
            match object_iri {
                Some(kind)
                    if kind == format!("{OWL}Class")
                        || kind == format!("{RDFS}Class")
                        || kind == format!("{SKOS}Concept") =>
                {
                    resource(resources, subject);
                    if let Some(r) = resources.get_mut(subject) {
                        r.declared = true;
                    }
                }
                Some(kind) if kind == format!("{OWL}Ontology") => {
                    statements.ontology_iri = Some(subject.to_string());
                }
                _ => {}
            }
            continue;
        }
        let local = if let Some(rest) = predicate.strip_prefix(RDFS) {
            ("rdfs", rest)
        } else if let Some(rest) = predicate.strip_prefix(SKOS) {
            ("skos", rest)
        } else if let Some(rest) = predicate.strip_prefix(OWL) {
            ("owl", rest)
        } else {
            continue;
        };
        match (local, object_iri) {
            (("rdfs", "subClassOf") | ("skos", "broader"), Some(parent)) => {
                if parent == format!("{OWL}Thing") {
                    resource(resources, subject);
                    if let Some(r) = resources.get_mut(subject) {
                        r.in_hierarchy = true;
                    }
                    continue;
                }
                resource(resources, subject);
                if let Some(r) = resources.get_mut(subject) {
                    r.in_hierarchy = true;
                    if !r.parents.iter().any(|p| p == parent) {
                        r.parents.push(parent.to_string());
                    }
                }
            }
            (("skos", "narrower"), Some(child)) => {
                resource(resources, subject);
                resource(resources, child);
                if let Some(r) = resources.get_mut(child) {
                    r.in_hierarchy = true;
                    if !r.parents.iter().any(|p| p == subject) {
                        r.parents.push(subject.to_string());
                    }
                }
            }
            (("owl", "versionInfo"), _) | (("owl", "versionIRI"), _) => {
                let value = match &quad.object {
                    Term::NamedNode(node) => Some(node.as_str().to_string()),
                    other => text(other).map(|t| t.value),
                };
                if statements.version.is_none() {
                    statements.version = value;
                }
            }
            (("skos", "prefLabel"), _)
            | (("rdfs", "label"), _)
            | (("skos", "definition"), _)
            | (("rdfs", "comment"), _) => {
                let Some(value) = text(&quad.object) else {
                    continue;
                };
                resource(resources, subject);
                if let Some(r) = resources.get_mut(subject) {
                    match local.1 {
                        "prefLabel" => r.pref_labels.push(value),
                        "label" => r.labels.push(value),
                        "definition" => r.definitions.push(value),
                        _ => r.comments.push(value),
                    }
                }
            }
            _ => {}
        }
    }
    Ok(statements)
}

/// A syntax error with a 1-based line and column; RDF/XML errors carry no position, so the
/// line is then 0.
fn syntax_error(path: &Path, error: RdfSyntaxError) -> OntologyError {
    let (line, column) = match error.location() {
        Some(range) => (range.start.line + 1, range.start.column + 1),
        None => (0, 0),
    };
    OntologyError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message: error.to_string(),
    }
}

/// The preferred literal: English or untagged first, then the first one given.
pub fn preferred(texts: &[Text]) -> Option<&Text> {
    texts
        .iter()
        .find(|t| match &t.language {
            None => true,
            Some(language) => language.eq_ignore_ascii_case("en") || language.starts_with("en-"),
        })
        .or_else(|| texts.first())
}

/// The last segment of an IRI (after `#`, else after the last `/`).
pub fn local_name(iri: &str) -> &str {
    let cut = iri
        .rfind('#')
        .or_else(|| iri.trim_end_matches('/').rfind('/'))
        .map(|i| i + 1)
        .unwrap_or(0);
    iri[cut..].trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names() {
        assert_eq!(local_name("http://x.org/math#Counting"), "Counting");
        assert_eq!(local_name("http://x.org/math/Counting"), "Counting");
        assert_eq!(local_name("urn:a"), "urn:a");
    }

    #[test]
    fn english_label_is_preferred() {
        let texts = vec![
            Text {
                value: "Zählen".into(),
                language: Some("de".into()),
            },
            Text {
                value: "Counting".into(),
                language: Some("en".into()),
            },
        ];
        assert_eq!(
            preferred(&texts).map(|t| t.value.as_str()),
            Some("Counting")
        );
    }
}
