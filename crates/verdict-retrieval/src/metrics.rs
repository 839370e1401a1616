//! Retrieval metrics over a query-by-candidate similarity matrix.
//!
//! Image->text uses image rows against caption columns, text->image the transpose. A
//! candidate is relevant to a query when their group ids match (the same pair, or the same
//! caption text when several images share one).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Recall@k for each requested k, and mean average precision, in one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionMetrics {
    /// `(k, recall@k)`: the share of queries with at least one relevant candidate in the top k.
    pub recall_at: Vec<(usize, f64)>,
    /// Mean over queries of the average precision of the full ranking.
    pub map: f64,
    pub queries: usize,
}

/// Both directions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    pub image_to_text: DirectionMetrics,
    pub text_to_image: DirectionMetrics,
}

/// Ranks candidates by descending score; ties keep the lower index first.
fn ranking(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// Metrics of one direction. `scores[q][c]` is the similarity of query `q` and candidate `c`.
/// Queries without any relevant candidate are skipped.
pub fn direction_metrics(
    scores: &[Vec<f32>],
    query_groups: &[String],
    candidate_groups: &[String],
    ks: &[usize],
) -> Result<DirectionMetrics> {
    if scores.len() != query_groups.len() {
        return Err(Error::Input(format!(
            "{} score rows for {} queries",
            scores.len(),
            query_groups.len()
        )));
    }
    let mut hits = vec![0usize; ks.len()];
    let mut ap_sum = 0.0;
    let mut queries = 0usize;
    for (row, group) in scores.iter().zip(query_groups) {
        if row.len() != candidate_groups.len() {
            return Err(Error::Input(format!(
                "score row of {} for {} candidates",
                row.len(),
                candidate_groups.len()
            )));
        }
        let relevant_total = candidate_groups.iter().filter(|g| *g == group).count();
        if relevant_total == 0 {
            continue;
        }
        queries += 1;
        let order = ranking(row);
        for (slot, &k) in ks.iter().enumerate() {
            if order.iter().take(k).any(|&c| &candidate_groups[c] == group) {
                hits[slot] += 1;
            }
        }
        let mut found = 0usize;
        let mut precision_sum = 0.0;
        for (rank, &c) in order.iter().enumerate() {
            if &candidate_groups[c] == group {
                found += 1;
                precision_sum += found as f64 / (rank + 1) as f64;
            }
        }
        ap_sum += precision_sum / relevant_total as f64;
    }
    let denominator = queries.max(1) as f64;
    Ok(DirectionMetrics {
        recall_at: ks
            .iter()
            .zip(hits)
            .map(|(&k, h)| (k, h as f64 / denominator))
            .collect(),
        map: ap_sum / denominator,
        queries,
    })
}

/// Image->text and text->image metrics from `similarity[i][t]` (image `i`, text `t`).
pub fn retrieval_metrics(
    similarity: &[Vec<f32>],
    image_groups: &[String],
    text_groups: &[String],
    ks: &[usize],
) -> Result<RetrievalMetrics> {
    let transposed: Vec<Vec<f32>> = (0..text_groups.len())
        .map(|t| {
            similarity
                .iter()
                .map(|row| row.get(t).copied().unwrap_or(f32::NAN))
                .collect()
        })
        .collect();
    Ok(RetrievalMetrics {
        image_to_text: direction_metrics(similarity, image_groups, text_groups, ks)?,
        text_to_image: direction_metrics(&transposed, text_groups, image_groups, ks)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Values checked by hand (and against scikit-learn's `average_precision_score` per row:
    /// query 0 ranks [b, a, c] with relevant {a, c}: AP = (1/2 + 2/3) / 2 = 0.58333).
    #[test]
    fn recall_and_average_precision_by_hand() {
        let scores = vec![vec![0.5, 0.9, 0.1], vec![0.2, 0.3, 0.8]];
        let metrics = direction_metrics(
            &scores,
            &groups(&["x", "y"]),
            &groups(&["x", "y", "x"]),
            &[1, 2],
        )
        .unwrap();
        // query 0 (x): top1 = b (y) miss, top2 has a (x) hit; query 1 (y): ranks [c, b, a], b at 2.
        assert_eq!(metrics.recall_at, vec![(1, 0.0), (2, 1.0)]);
        let ap0 = (0.5 + 2.0 / 3.0) / 2.0;
        let ap1 = 0.5;
        assert!((metrics.map - (ap0 + ap1) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn perfect_ranking_scores_one_both_ways() {
        let similarity = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let g = groups(&["a", "b"]);
        let m = retrieval_metrics(&similarity, &g, &g, &[1]).unwrap();
        assert_eq!(m.image_to_text.recall_at, vec![(1, 1.0)]);
        assert_eq!(m.text_to_image.map, 1.0);
    }
}
