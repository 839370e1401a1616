//! Results of a contest from its stored votes: counts, win and tie rates, exact binomial tests
//! and rater agreement.
//!
//! Every live vote counts once. Two raters judging the same query give two votes; the
//! agreement figures show how far such votes are from independent.

pub mod agreement;
pub mod binomial;
mod render;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::contest::{ContestIdentity, ContestKind, MethodInfo};
use crate::store::{Verdict, Vote};

pub use agreement::{cohen_kappa, PairAgreement};
pub use binomial::{binomial_test, BinomialTest};

/// Confidence level of the reported intervals.
pub const CONFIDENCE_LEVEL: f64 = 0.95;

/// How the votes fell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub a: u64,
    pub b: u64,
    pub ties: u64,
    pub skips: u64,
}

impl Counts {
    pub fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::A => self.a += 1,
            Verdict::B => self.b += 1,
            Verdict::Tie => self.ties += 1,
            Verdict::Skip => self.skips += 1,
        }
    }

    /// Votes that judged (not skips).
    pub fn judged(&self) -> u64 {
        self.a + self.b + self.ties
    }
}

/// One rater's votes and how they line up with the others.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RaterSummary {
    pub rater: String,
    pub counts: Counts,
    /// Judged queries where the other raters had a clear majority.
    pub compared_with_majority: usize,
    /// Share of those where this rater gave the majority answer.
    pub agreement_with_majority: Option<f64>,
}

/// Everything `verdict arena results` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Results {
    pub kind: ContestKind,
    /// `[A, B]`.
    pub methods: [MethodInfo; 2],
    /// Queries in the contest.
    pub queries: usize,
    /// Live votes, skips included.
    pub votes: usize,
    pub counts: Counts,
    /// Shares of judged votes (A, B, tie); they add up to 1.
    pub win_rate_a: Option<f64>,
    pub win_rate_b: Option<f64>,
    pub tie_rate: Option<f64>,
    /// A's wins out of decisive votes, against 1/2.
    pub test_excluding_ties: Option<BinomialTest>,
    /// Sensitivity check: every two ties count as one win for each method (an odd last tie is
    /// left out), against 1/2.
    pub test_ties_split: Option<BinomialTest>,
    pub raters: Vec<RaterSummary>,
    pub pairs: Vec<PairAgreement>,
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Computes the results of `votes` (undone votes are ignored).
pub fn compute(identity: &ContestIdentity, votes: &[Vote]) -> Results {
    let live: Vec<&Vote> = votes
        .iter()
        .filter(|vote| vote.undone_at.is_none())
        .collect();
    let mut counts = Counts::default();
    let mut per_rater: BTreeMap<String, Counts> = BTreeMap::new();
    let mut judgements: agreement::Judgements = BTreeMap::new();
    for vote in &live {
        counts.add(vote.verdict);
        per_rater
            .entry(vote.rater.clone())
            .or_default()
            .add(vote.verdict);
        if vote.verdict != Verdict::Skip {
            judgements
                .entry(vote.rater.clone())
                .or_default()
                .insert(vote.query_id.clone(), vote.verdict);
        }
    }
    let judged = counts.judged();
    let half_ties = counts.ties / 2;
    let raters = per_rater
        .into_iter()
        .map(|(rater, rater_counts)| {
            let (compared, agreed) = agreement::agreement_with_majority(&judgements, &rater);
            RaterSummary {
                rater,
                counts: rater_counts,
                compared_with_majority: compared,
                agreement_with_majority: share(agreed as u64, compared as u64),
            }
        })
        .collect();
    Results {
        kind: identity.kind,
        methods: identity.methods.clone(),
        queries: identity.queries,
        votes: live.len(),
        counts,
        win_rate_a: share(counts.a, judged),
        win_rate_b: share(counts.b, judged),
        tie_rate: share(counts.ties, judged),
        test_excluding_ties: binomial_test(counts.a, counts.a + counts.b, 0.5, CONFIDENCE_LEVEL),
        test_ties_split: binomial_test(
            counts.a + half_ties,
            counts.a + counts.b + 2 * half_ties,
            0.5,
            CONFIDENCE_LEVEL,
        ),
        raters,
        pairs: agreement::pairwise(&judgements),
    }
}
