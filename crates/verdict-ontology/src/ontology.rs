//! The concept hierarchy a multi-label task is labelled with.
//!
//! A concept's *name* (the last segment of its IRI, e.g. `NumbersSmaller10`) is what the model
//! writes and what `meta.json` files use; its label and definition are for people and for
//! knowledge-infusion questions. *Dimensions* are chosen top-level concepts (e.g. `Area`,
//! `Scope`, `Ability`); the labels of a dimension are all concepts below its root. A concept
//! must sit under at most one dimension so that every label has one place in the answer.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{OntologyError, Result};
use crate::rdf::{self, Statements};

/// One concept of the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concept {
    pub iri: String,
    /// Identifier written in answers and `meta.json`: the IRI's last segment.
    pub name: String,
    /// Human-readable label (`skos:prefLabel`, else `rdfs:label`); the name when absent.
    pub label: String,
    /// `skos:definition`, else `rdfs:comment`.
    pub definition: Option<String>,
    /// Indices of the direct parents, in file order.
    pub parents: Vec<usize>,
    /// Indices of the direct children, in file order.
    pub children: Vec<usize>,
}

/// A loaded, checked hierarchy with its dimensions.
#[derive(Debug, Clone)]
pub struct Ontology {
    pub path: PathBuf,
    pub iri: Option<String>,
    pub version: Option<String>,
    /// sha256 of the file's bytes, so a model card pins exactly which ontology it used.
    pub sha256: String,
    concepts: Vec<Concept>,
    by_name: HashMap<String, usize>,
    dimensions: Vec<usize>,
    /// Index into `dimensions` of each concept's dimension (`None`: outside every dimension,
    /// or a dimension root itself).
    dimension_of: Vec<Option<usize>>,
}

impl Ontology {
    /// Loads an RDF file (`.ttl`, `.nt`, `.rdf`/`.owl`/`.xml`). `dimensions` names the
    /// top-level concepts that become answer keys; `None` takes every concept without parents.
    pub fn load(path: &Path, dimensions: Option<&[String]>) -> Result<Self> {
        let format = rdf::format_of(path)?;
        let bytes = std::fs::read(path).map_err(|e| OntologyError::io(path, e))?;
        let statements = rdf::parse(path, &bytes, format)?;
        let mut ontology = Self::from_statements(path, statements, dimensions)?;
        ontology.sha256 = hex::encode(Sha256::digest(&bytes));
        Ok(ontology)
    }

    /// Builds and checks the hierarchy: unknown parents, cycles, duplicate names/labels.
    pub fn from_statements(
        path: &Path,
        statements: Statements,
        dimensions: Option<&[String]>,
    ) -> Result<Self> {
        let mut resources: Vec<(String, rdf::Resource)> = statements
            .resources
            .into_iter()
            .filter(|(_, r)| r.declared || r.in_hierarchy)
            .collect();
        resources.sort_by_key(|(_, r)| r.order);
        let index: HashMap<String, usize> = resources
            .iter()
            .enumerate()
            .map(|(i, (iri, _))| (iri.clone(), i))
            .collect();
        let mut concepts = Vec::with_capacity(resources.len());
        for (iri, resource) in &resources {
            let mut parents = Vec::new();
            for parent in &resource.parents {
                let Some(&p) = index.get(parent) else {
                    return Err(OntologyError::UnknownParent {
                        path: path.to_path_buf(),
                        concept: iri.clone(),
                        parent: parent.clone(),
                    });
                };
                parents.push(p);
            }
            let name = rdf::local_name(iri).to_string();
            if name.is_empty() || name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
                return Err(OntologyError::ontology(
                    path,
                    format!("concept <{iri}> has no usable name (the IRI must end in a plain local name)"),
                ));
            }
            let label = rdf::preferred(&resource.pref_labels)
                .or_else(|| rdf::preferred(&resource.labels))
                .map(|t| t.value.clone())
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| name.clone());
            let definition = rdf::preferred(&resource.definitions)
                .or_else(|| rdf::preferred(&resource.comments))
                .map(|t| t.value.clone())
                .filter(|d| !d.is_empty());
            concepts.push(Concept {
                iri: iri.clone(),
                name,
                label,
                definition,
                parents,
                children: Vec::new(),
            });
        }
        for child in 0..concepts.len() {
            for parent in concepts[child].parents.clone() {
                concepts[parent].children.push(child);
            }
        }
        find_cycle(path, &concepts)?;
        let by_name = unique_names(path, &concepts)?;
        let mut ontology = Ontology {
            path: path.to_path_buf(),
            iri: statements.ontology_iri,
            version: statements.version,
            sha256: String::new(),
            concepts,
            by_name,
            dimensions: Vec::new(),
            dimension_of: Vec::new(),
        };
        ontology.set_dimensions(dimensions)?;
        Ok(ontology)
    }

    fn set_dimensions(&mut self, names: Option<&[String]>) -> Result<()> {
        let roots: Vec<usize> = match names {
            Some(names) => names
                .iter()
                .map(|name| {
                    self.by_name.get(name).copied().ok_or_else(|| {
                        OntologyError::ontology(
                            &self.path,
                            format!("dimension `{name}` is not a concept of the ontology"),
                        )
                    })
                })
                .collect::<Result<_>>()?,
            None => (0..self.concepts.len())
                .filter(|&i| self.concepts[i].parents.is_empty())
                .collect(),
        };
        if roots.is_empty() {
            return Err(OntologyError::ontology(
                &self.path,
                "the ontology has no concepts",
            ));
        }
        let mut dimension_of = vec![None; self.concepts.len()];
        for (d, &root) in roots.iter().enumerate() {
            if roots[..d].contains(&root) {
                return Err(OntologyError::ontology(
                    &self.path,
                    format!("dimension `{}` is named twice", self.concepts[root].name),
                ));
            }
            for concept in self.descendants(root) {
                if let Some(other) = dimension_of[concept] {
                    let other: usize = roots[other];
                    return Err(OntologyError::ontology(
                        &self.path,
                        format!(
                            "concept <{}> lies under two dimensions, `{}` and `{}`",
                            self.concepts[concept].iri,
                            self.concepts[other].name,
                            self.concepts[root].name
                        ),
                    ));
                }
                dimension_of[concept] = Some(d);
            }
        }
        for (d, &root) in roots.iter().enumerate() {
            if dimension_of[root].is_some() {
                return Err(OntologyError::ontology(
                    &self.path,
                    format!(
                        "dimension `{}` lies below another dimension",
                        self.concepts[root].name
                    ),
                ));
            }
            if self.concepts[root].children.is_empty() {
                return Err(OntologyError::ontology(
                    &self.path,
                    format!(
                        "dimension `{}` has no concepts below it",
                        self.concepts[roots[d]].name
                    ),
                ));
            }
        }
        self.dimensions = roots;
        self.dimension_of = dimension_of;
        Ok(())
    }

    pub fn concepts(&self) -> &[Concept] {
        &self.concepts
    }

    pub fn concept(&self, index: usize) -> &Concept {
        &self.concepts[index]
    }

    /// Index of the concept with this name.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Names of the dimensions, in the order given (or file order).
    pub fn dimension_names(&self) -> Vec<&str> {
        self.dimensions
            .iter()
            .map(|&d| self.concepts[d].name.as_str())
            .collect()
    }

    /// Root concept of dimension `d`.
    pub fn dimension_root(&self, d: usize) -> usize {
        self.dimensions[d]
    }

    pub fn dimension_count(&self) -> usize {
        self.dimensions.len()
    }

    /// Index of the dimension with this name.
    pub fn dimension_index(&self, name: &str) -> Option<usize> {
        self.dimensions
            .iter()
            .position(|&d| self.concepts[d].name == name)
    }

    /// Dimension of a concept (`None` for dimension roots and concepts outside all dimensions).
    pub fn dimension_of(&self, concept: usize) -> Option<usize> {
        self.dimension_of[concept]
    }

    /// Labels of dimension `d`: every concept below its root, in file order.
    pub fn dimension_labels(&self, d: usize) -> Vec<usize> {
        (0..self.concepts.len())
            .filter(|&c| self.dimension_of[c] == Some(d))
            .collect()
    }

    /// Label names per dimension, in dimension order.
    pub fn label_sets(&self) -> Vec<(String, Vec<String>)> {
        (0..self.dimensions.len())
            .map(|d| {
                (
                    self.concepts[self.dimensions[d]].name.clone(),
                    self.dimension_labels(d)
                        .into_iter()
                        .map(|c| self.concepts[c].name.clone())
                        .collect(),
                )
            })
            .collect()
    }

    /// Strict ancestors of a concept (every concept above it), nearest first, without repeats.
    pub fn ancestors(&self, concept: usize) -> Vec<usize> {
        self.walk(concept, |c| &c.parents)
    }

    /// Strict descendants of a concept.
    pub fn descendants(&self, concept: usize) -> Vec<usize> {
        self.walk(concept, |c| &c.children)
    }

    fn walk(&self, start: usize, next: impl Fn(&Concept) -> &Vec<usize>) -> Vec<usize> {
        let mut seen = vec![false; self.concepts.len()];
        let mut order = Vec::new();
        let mut queue = std::collections::VecDeque::from([start]);
        seen[start] = true;
        while let Some(c) = queue.pop_front() {
            for &n in next(&self.concepts[c]) {
                if !seen[n] {
                    seen[n] = true;
                    order.push(n);
                    queue.push_back(n);
                }
            }
        }
        order
    }

    /// Whether `ancestor` lies strictly above `concept`.
    pub fn is_ancestor(&self, ancestor: usize, concept: usize) -> bool {
        self.ancestors(concept).contains(&ancestor)
    }

    /// Concepts of each dimension with their counts, for summaries.
    pub fn summary(&self) -> BTreeMap<String, usize> {
        self.label_sets()
            .into_iter()
            .map(|(d, labels)| (d, labels.len()))
            .collect()
    }
}

/// Rejects a cycle in the parent relation, naming the IRIs along it.
fn find_cycle(path: &Path, concepts: &[Concept]) -> Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Closed,
    }
    let mut marks = vec![Mark::New; concepts.len()];
    for start in 0..concepts.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative depth-first search over parent edges; `stack` is the open path.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&parent) = concepts[node].parents.get(*next) {
                *next += 1;
                match marks[parent] {
                    Mark::New => {
                        marks[parent] = Mark::Open;
                        stack.push((parent, 0));
                    }
                    Mark::Open => {
                        let from = stack.iter().position(|&(n, _)| n == parent).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[from..]
                            .iter()
                            .map(|&(n, _)| concepts[n].iri.clone())
                            .collect();
                        cycle.push(concepts[parent].iri.clone());
                        return Err(OntologyError::Cycle {
                            path: path.to_path_buf(),
                            cycle,
                        });
                    }
                    Mark::Closed => {}
                }
            } else {
                marks[node] = Mark::Closed;
                stack.pop();
            }
        }
    }
    Ok(())
}

/// Concept names and labels must be unique: an answer names a concept by its name, and a
/// knowledge question names it by its label.
fn unique_names(path: &Path, concepts: &[Concept]) -> Result<HashMap<String, usize>> {
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut by_label: HashMap<String, usize> = HashMap::new();
    for (i, concept) in concepts.iter().enumerate() {
        if let Some(&first) = by_name.get(&concept.name) {
            return Err(OntologyError::DuplicateLabel {
                path: path.to_path_buf(),
                label: concept.name.clone(),
                first: concepts[first].iri.clone(),
                second: concept.iri.clone(),
            });
        }
        by_name.insert(concept.name.clone(), i);
        let key = concept.label.to_lowercase();
        if let Some(&first) = by_label.get(&key) {
            return Err(OntologyError::DuplicateLabel {
                path: path.to_path_buf(),
                label: concept.label.clone(),
                first: concepts[first].iri.clone(),
                second: concept.iri.clone(),
            });
        }
        by_label.insert(key, i);
    }
    Ok(by_name)
}
