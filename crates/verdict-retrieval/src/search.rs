//! Cosine top-k search over L2-normalised vectors: exact below a size threshold, an HNSW graph
//! (the `instant-distance` crate) above it.
//!
//! Exact search is a dot product per row, fast enough for tens of thousands of vectors and
//! always right; HNSW answers in roughly logarithmic time on large collections at the price of
//! approximate recall (checked against exact search in the tests).

use instant_distance::{Builder, HnswMap, Point, Search};

use crate::{Error, Result};

/// Collections at least this large get an HNSW index by default.
pub const HNSW_THRESHOLD: usize = 20_000;

/// One search result: the row in the collection and its cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub index: usize,
    pub score: f32,
}

#[derive(Debug, Clone)]
struct UnitVector(Vec<f32>);

impl Point for UnitVector {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

enum Backend {
    Exact,
    Hnsw(Box<HnswMap<UnitVector, usize>>),
}

/// A searchable collection of `n` vectors of dimension `dim`.
pub struct CosineIndex {
    dim: usize,
    vectors: Vec<f32>,
    backend: Backend,
}

impl std::fmt::Debug for CosineIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosineIndex")
            .field("dim", &self.dim)
            .field("len", &self.len())
            .field("hnsw", &self.is_hnsw())
            .finish()
    }
}

impl CosineIndex {
    /// Exact search over `vectors` (`n * dim` values, row-major).
    pub fn exact(vectors: Vec<f32>, dim: usize) -> Result<Self> {
        if dim == 0 || vectors.len() % dim != 0 {
            return Err(Error::Input(format!(
                "{} values are not rows of dimension {dim}",
                vectors.len()
            )));
        }
        Ok(Self {
            dim,
            vectors,
            backend: Backend::Exact,
        })
    }

    /// An HNSW index over the same rows (built with a fixed seed, so reproducible).
    pub fn hnsw(vectors: Vec<f32>, dim: usize) -> Result<Self> {
        let mut index = Self::exact(vectors, dim)?;
        let points: Vec<UnitVector> = index
            .vectors
            .chunks(dim)
            .map(|row| UnitVector(row.to_vec()))
            .collect();
        let values: Vec<usize> = (0..points.len()).collect();
        let map = Builder::default()
            .seed(0)
            .ef_search(128)
            .build(points, values);
        index.backend = Backend::Hnsw(Box::new(map));
        Ok(index)
    }

    /// Exact below [`HNSW_THRESHOLD`] rows, HNSW from there on.
    pub fn auto(vectors: Vec<f32>, dim: usize) -> Result<Self> {
        if dim > 0 && vectors.len() / dim >= HNSW_THRESHOLD {
            Self::hnsw(vectors, dim)
        } else {
            Self::exact(vectors, dim)
        }
    }

    pub fn len(&self) -> usize {
        self.vectors.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    pub fn is_hnsw(&self) -> bool {
        matches!(self.backend, Backend::Hnsw(_))
    }

    pub fn row(&self, index: usize) -> Option<&[f32]> {
        self.vectors.get(index * self.dim..(index + 1) * self.dim)
    }

    /// The `k` rows most similar to `query` (normalised), best first.
    pub fn top_k(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        if query.len() != self.dim {
            return Err(Error::Input(format!(
                "query has dimension {}, the collection {}",
                query.len(),
                self.dim
            )));
        }
        match &self.backend {
            Backend::Exact => {
                let mut hits: Vec<Hit> = self
                    .vectors
                    .chunks(self.dim)
                    .enumerate()
                    .map(|(index, row)| Hit {
                        index,
                        score: dot(row, query),
                    })
                    .collect();
                hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
                hits.truncate(k);
                Ok(hits)
            }
            Backend::Hnsw(map) => {
                let mut search = Search::default();
                let point = UnitVector(query.to_vec());
                Ok(map
                    .search(&point, &mut search)
                    .take(k)
                    .map(|item| Hit {
                        index: *item.value,
                        score: 1.0 - item.distance,
                    })
                    .collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_unit_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let row: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            out.extend(row.iter().map(|x| x / norm));
        }
        out
    }

    #[test]
    fn exact_search_ranks_by_dot_product() {
        let rows = vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
        let index = CosineIndex::exact(rows, 2).unwrap();
        let hits = index.top_k(&[0.0, 1.0], 2).unwrap();
        assert_eq!(hits[0].index, 1);
        assert_eq!(hits[1].index, 2);
        assert!((hits[1].score - 0.8).abs() < 1e-6);
        assert!(index.top_k(&[1.0], 1).is_err());
    }

    #[test]
    fn hnsw_finds_most_exact_neighbours() {
        let dim = 16;
        let rows = random_unit_rows(600, dim, 1);
        let exact = CosineIndex::exact(rows.clone(), dim).unwrap();
        let hnsw = CosineIndex::hnsw(rows, dim).unwrap();
        let queries = random_unit_rows(30, dim, 2);
        let mut found = 0;
        for query in queries.chunks(dim) {
            let truth: Vec<usize> = exact
                .top_k(query, 10)
                .unwrap()
                .iter()
                .map(|h| h.index)
                .collect();
            let approx = hnsw.top_k(query, 10).unwrap();
            found += approx.iter().filter(|h| truth.contains(&h.index)).count();
            // scores reported by HNSW are true cosine similarities
            for hit in approx {
                let row = exact.row(hit.index).unwrap();
                assert!((dot(row, query) - hit.score).abs() < 1e-5);
            }
        }
        let recall = found as f64 / 300.0;
        assert!(recall >= 0.9, "HNSW recall@10 {recall}");
    }
}
