//! Fitting the vocabulary and idf on training documents, and turning documents into rows.

use foldhash::{HashMap, HashMapExt};

use rayon::prelude::*;

use super::analyzer::Analyzer;
use super::config::{Norm, TfidfConfig};
use crate::error::{BaselineError, Result};
use crate::sparse::CsrMatrix;

/// Documents per parallel work item: large enough to amortise per-chunk vocabularies.
const CHUNK: usize = 512;

/// A fitted TF-IDF vectoriser: vocabulary (sorted, column `i` is `vocabulary[i]`) and idf.
#[derive(Debug, Clone)]
pub struct TfidfVectorizer {
    config: TfidfConfig,
    analyzer: Analyzer,
    vocabulary: Vec<String>,
    index: HashMap<String, u32>,
    /// `None` when `use_idf` is off.
    idf: Option<Vec<f64>>,
}

/// Term counts of one document: `(term id, count)`, sorted by id.
type CountRow = Vec<(u32, u32)>;

impl TfidfVectorizer {
    /// Learns vocabulary and idf from `documents`; returns the vectoriser and the TF-IDF
    /// matrix of those same documents (`fit_transform`).
    ///
    /// # Shapes
    /// Output matrix: `documents.len() x vocabulary.len()`.
    pub fn fit_transform<S: AsRef<str> + Sync>(
        documents: &[S],
        config: &TfidfConfig,
    ) -> Result<(Self, CsrMatrix)> {
        config.validate()?;
        let analyzer = Analyzer::new(config)?;
        let n_documents = documents.len();

        // Count per chunk against a chunk-local vocabulary, then merge the vocabularies.
        let chunks: Vec<(Vec<String>, Vec<CountRow>)> = documents
            .par_chunks(CHUNK)
            .map(|chunk| count_chunk(&analyzer, chunk))
            .collect();
        let mut global: HashMap<String, u32> = HashMap::new();
        let mut rows: Vec<CountRow> = Vec::with_capacity(n_documents);
        for (local_terms, local_rows) in chunks {
            let remap: Vec<u32> = local_terms
                .into_iter()
                .map(|term| {
                    let next = global.len() as u32;
                    *global.entry(term).or_insert(next)
                })
                .collect();
            rows.extend(local_rows.into_iter().map(|row| {
                row.into_iter()
                    .map(|(id, c)| (remap[id as usize], c))
                    .collect()
            }));
        }
        let mut terms = terms_by_id(global);
        if terms.is_empty() {
            return Err(BaselineError::Data(
                "empty vocabulary; perhaps the documents only contain stop words".into(),
            ));
        }

        // Column order is alphabetical (code point order, as Python sorts strings).
        let mut order: Vec<u32> = (0..terms.len() as u32).collect();
        order.par_sort_unstable_by(|&a, &b| terms[a as usize].cmp(&terms[b as usize]));

        let mut document_frequency = vec![0u64; terms.len()];
        let mut term_frequency = vec![0u64; terms.len()];
        for row in &rows {
            for &(id, count) in row {
                document_frequency[id as usize] += 1;
                term_frequency[id as usize] += if config.binary { 1 } else { count as u64 };
            }
        }
        let max_count = config.max_df.resolve(n_documents);
        let min_count = config.min_df.resolve(n_documents);
        if max_count < min_count {
            return Err(BaselineError::config(
                "max_df",
                "max_df corresponds to < documents than min_df",
            ));
        }
        let mut kept: Vec<u32> = order
            .iter()
            .copied()
            .filter(|&id| {
                let df = document_frequency[id as usize] as f64;
                df <= max_count && df >= min_count
            })
            .collect();
        if let Some(limit) = config.max_features {
            if kept.len() > limit {
                // Highest corpus count first; equal counts keep alphabetical order (stable).
                kept.sort_by(|&a, &b| term_frequency[b as usize].cmp(&term_frequency[a as usize]));
                kept.truncate(limit);
                kept.sort_unstable_by(|&a, &b| terms[a as usize].cmp(&terms[b as usize]));
            }
        }
        if kept.is_empty() {
            return Err(BaselineError::Data(
                "after pruning, no terms remain; try a lower min_df or a higher max_df".into(),
            ));
        }

        let mut column_of = vec![u32::MAX; terms.len()];
        for (column, &id) in kept.iter().enumerate() {
            column_of[id as usize] = column as u32;
        }
        let counts: Vec<CountRow> = rows
            .into_par_iter()
            .map(|row| {
                let mut out: CountRow = row
                    .into_iter()
                    .filter_map(|(id, c)| {
                        let column = column_of[id as usize];
                        (column != u32::MAX).then_some((column, c))
                    })
                    .collect();
                out.sort_unstable_by_key(|&(column, _)| column);
                out
            })
            .collect();

        let idf = config.use_idf.then(|| {
            let offset = u64::from(config.smooth_idf);
            let n = (n_documents as u64 + offset) as f64;
            kept.iter()
                .map(|&id| {
                    let df = (document_frequency[id as usize] + offset) as f64;
                    (n / df).ln() + 1.0
                })
                .collect()
        });
        let vocabulary: Vec<String> = kept
            .iter()
            .map(|&id| std::mem::take(&mut terms[id as usize]))
            .collect();
        let vectorizer = Self::from_parts(config.clone(), vocabulary, idf)?;
        let matrix = vectorizer.weigh(counts);
        Ok((vectorizer, matrix))
    }

    /// Rebuilds a fitted vectoriser from saved parts.
    pub fn from_parts(
        config: TfidfConfig,
        vocabulary: Vec<String>,
        idf: Option<Vec<f64>>,
    ) -> Result<Self> {
        if let Some(idf) = &idf {
            if idf.len() != vocabulary.len() {
                return Err(BaselineError::Data(format!(
                    "idf has {} entries but the vocabulary has {}",
                    idf.len(),
                    vocabulary.len()
                )));
            }
        }
        if config.use_idf != idf.is_some() {
            return Err(BaselineError::config(
                "use_idf",
                "does not match the saved idf",
            ));
        }
        let analyzer = Analyzer::new(&config)?;
        let index = vocabulary
            .iter()
            .enumerate()
            .map(|(i, term)| (term.clone(), i as u32))
            .collect::<HashMap<String, u32>>();
        if index.len() != vocabulary.len() {
            return Err(BaselineError::Data("vocabulary has duplicate terms".into()));
        }
        Ok(Self {
            config,
            analyzer,
            vocabulary,
            index,
            idf,
        })
    }

    /// TF-IDF rows for new documents, with the fitted vocabulary (unknown terms ignored).
    ///
    /// # Shapes
    /// Output: `documents.len() x vocabulary.len()`.
    pub fn transform<S: AsRef<str> + Sync>(&self, documents: &[S]) -> CsrMatrix {
        let counts: Vec<CountRow> = documents
            .par_iter()
            .map_init(String::new, |scratch, document| {
                let mut ids: Vec<u32> = Vec::new();
                self.analyzer
                    .for_each_term(document.as_ref(), scratch, |term| {
                        if let Some(&id) = self.index.get(term) {
                            ids.push(id);
                        }
                    });
                run_lengths(ids)
            })
            .collect();
        self.weigh(counts)
    }

    /// Counts to TF-IDF values: optional binary/sublinear tf, idf, row normalisation,
    /// in scikit-learn's order of operations.
    fn weigh(&self, counts: Vec<CountRow>) -> CsrMatrix {
        let config = &self.config;
        let rows: Vec<Vec<(u32, f64)>> = counts
            .into_par_iter()
            .map(|row| {
                let mut out: Vec<(u32, f64)> = row
                    .into_iter()
                    .map(|(column, count)| {
                        let mut value = if config.binary { 1.0 } else { count as f64 };
                        if config.sublinear_tf {
                            value = value.ln() + 1.0;
                        }
                        if let Some(idf) = &self.idf {
                            value *= idf[column as usize];
                        }
                        (column, value)
                    })
                    .collect();
                normalise(&mut out, config.norm);
                out
            })
            .collect();
        CsrMatrix::from_sorted_rows(self.vocabulary.len(), rows)
    }

    /// Terms, in column order.
    pub fn vocabulary(&self) -> &[String] {
        &self.vocabulary
    }

    /// Inverse document frequencies, in column order (`None` when `use_idf` is off).
    pub fn idf(&self) -> Option<&[f64]> {
        self.idf.as_deref()
    }

    /// The settings it was fitted with.
    pub fn config(&self) -> &TfidfConfig {
        &self.config
    }

    /// Column of a term, if in the vocabulary.
    pub fn column(&self, term: &str) -> Option<usize> {
        self.index.get(term).map(|&i| i as usize)
    }
}

fn count_chunk<S: AsRef<str>>(analyzer: &Analyzer, chunk: &[S]) -> (Vec<String>, Vec<CountRow>) {
    let mut local: HashMap<String, u32> = HashMap::new();
    let mut scratch = String::new();
    let rows = chunk
        .iter()
        .map(|document| {
            let mut ids: Vec<u32> = Vec::new();
            analyzer.for_each_term(document.as_ref(), &mut scratch, |term| {
                let id = match local.get(term) {
                    Some(&id) => id,
                    None => {
                        let id = local.len() as u32;
                        local.insert(term.to_owned(), id);
                        id
                    }
                };
                ids.push(id);
            });
            run_lengths(ids)
        })
        .collect();
    (terms_by_id(local), rows)
}

/// The keys of a term -> id map, as a vector indexed by id.
fn terms_by_id(map: HashMap<String, u32>) -> Vec<String> {
    let mut terms = vec![String::new(); map.len()];
    for (term, id) in map {
        terms[id as usize] = term;
    }
    terms
}

/// Sorted `(id, occurrences)` from a list of ids.
fn run_lengths(mut ids: Vec<u32>) -> CountRow {
    ids.sort_unstable();
    let mut out: CountRow = Vec::new();
    for id in ids {
        match out.last_mut() {
            Some((last, count)) if *last == id => *count += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}

/// scikit-learn's `normalize` on one CSR row: the sum runs in column order and rows with
/// zero norm are left as they are.
fn normalise(row: &mut [(u32, f64)], norm: Norm) {
    let total = match norm {
        Norm::None => return,
        Norm::L2 => row
            .iter()
            .map(|&(_, v)| v * v)
            .fold(0.0, |a, b| a + b)
            .sqrt(),
        Norm::L1 => row.iter().map(|&(_, v)| v.abs()).fold(0.0, |a, b| a + b),
    };
    if total == 0.0 {
        return;
    }
    for (_, value) in row.iter_mut() {
        *value /= total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfidf::DocumentFrequency;

    #[test]
    fn fit_transform_matches_transform_on_training_documents() {
        let docs = ["the cat sat", "the dog sat down", "a cat and a dog"];
        let (vectorizer, fitted) =
            TfidfVectorizer::fit_transform(&docs, &TfidfConfig::default()).expect("fit");
        assert_eq!(
            vectorizer.vocabulary(),
            ["and", "cat", "dog", "down", "sat", "the"]
        );
        assert_eq!(vectorizer.transform(&docs), fitted);
    }

    #[test]
    fn pruning_everything_is_an_error() {
        let config = TfidfConfig {
            min_df: DocumentFrequency::Count(2),
            ..TfidfConfig::default()
        };
        let error = TfidfVectorizer::fit_transform(&["one two", "three"], &config).unwrap_err();
        assert!(error.to_string().contains("no terms remain"), "{error}");
    }
}
