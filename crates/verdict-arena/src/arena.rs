//! The arena's rules, independent of HTTP: which query a rater sees next, with which method on
//! which side, and what a vote or an undo does.
//!
//! Each rater gets every query once, in an order shuffled per rater (seeded from the store, so
//! a restart keeps the order); the next query is the first in that order without a live vote.
//! Sides are drawn at random the first time a query is shown and stored before the page sees
//! them.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::contest::{Card, Contest};
use crate::error::{ArenaError, Result};
use crate::stats::{self, Results};
use crate::store::{Choice, VoteStore};

/// The longest rater name accepted.
pub const MAX_RATER_LENGTH: usize = 64;

/// What the page shows a rater now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextView {
    pub rater: String,
    /// Queries the rater has voted on (skips included).
    pub done: usize,
    pub total: usize,
    pub can_undo: bool,
    /// `None` once every query has a vote.
    pub query: Option<QueryView>,
}

/// One query with the answers placed on screen sides. Nothing in it says which method is where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryView {
    pub id: String,
    pub prompt: Card,
    pub left: Vec<Card>,
    pub right: Vec<Card>,
}

/// A contest and its vote store.
pub struct Arena {
    contest: Contest,
    store: Mutex<VoteStore>,
}

/// Checks and normalises a rater name: trimmed, 1 to 64 characters, no control characters.
pub fn validate_rater(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_RATER_LENGTH
        || name.chars().any(char::is_control)
    {
        return Err(ArenaError::BadRequest(format!(
            "a rater name has 1 to {MAX_RATER_LENGTH} characters and no control characters"
        )));
    }
    Ok(name.to_owned())
}

impl Arena {
    /// Opens (or creates) the vote store at `store` for `contest`.
    pub fn open(contest: Contest, store: &Path) -> Result<Arena> {
        if contest.queries.is_empty() {
            return Err(ArenaError::Mismatch("the contest has no queries".into()));
        }
        let store = VoteStore::open(store, &contest.identity())?;
        Ok(Arena {
            contest,
            store: Mutex::new(store),
        })
    }

    pub fn contest(&self) -> &Contest {
        &self.contest
    }

    fn store(&self) -> MutexGuard<'_, VoteStore> {
        // A panic while holding the lock cannot leave SQLite half-written (each statement is
        // atomic), so a poisoned lock is safe to keep using.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Query indices in the order `rater` sees them.
    fn order(&self, seed: u64, rater: &str) -> Vec<usize> {
        let mut hasher = Sha256::new();
        hasher.update(seed.to_le_bytes());
        hasher.update(rater.as_bytes());
        let digest: [u8; 32] = hasher.finalize().into();
        let mut rng = rand_chacha::ChaCha8Rng::from_seed(digest);
        let mut order: Vec<usize> = (0..self.contest.queries.len()).collect();
        order.shuffle(&mut rng);
        order
    }

    /// What `rater` should see now.
    pub fn next(&self, rater: &str) -> Result<NextView> {
        let rater = validate_rater(rater)?;
        let store = self.store();
        self.view(&store, rater)
    }

    fn view(&self, store: &VoteStore, rater: String) -> Result<NextView> {
        let voted: HashSet<String> = store
            .live_votes_of(&rater)?
            .into_iter()
            .map(|vote| vote.query_id)
            .collect();
        let total = self.contest.queries.len();
        let done = self
            .contest
            .queries
            .iter()
            .filter(|query| voted.contains(&query.id))
            .count();
        let next = self
            .order(store.seed(), &rater)
            .into_iter()
            .map(|index| &self.contest.queries[index])
            .find(|query| !voted.contains(&query.id));
        let query = match next {
            Some(query) => {
                let left_is_a = store.assign(&rater, &query.id)?;
                let [a, b] = &query.answers;
                let (left, right) = if left_is_a { (a, b) } else { (b, a) };
                Some(QueryView {
                    id: query.id.clone(),
                    prompt: query.prompt.clone(),
                    left: left.clone(),
                    right: right.clone(),
                })
            }
            None => None,
        };
        Ok(NextView {
            rater,
            done,
            total,
            can_undo: !voted.is_empty(),
            query,
        })
    }

    /// Stores `rater`'s vote on `query_id` and returns what to show next.
    pub fn vote(&self, rater: &str, query_id: &str, choice: Choice) -> Result<NextView> {
        let rater = validate_rater(rater)?;
        if self.contest.query(query_id).is_none() {
            return Err(ArenaError::BadRequest(format!(
                "no query `{query_id}` in this contest"
            )));
        }
        let store = self.store();
        let vote = store.cast(&rater, query_id, choice)?;
        tracing::debug!(rater = %vote.rater, query = %vote.query_id, verdict = vote.verdict.as_str(), "vote");
        self.view(&store, rater)
    }

    /// Undoes `rater`'s last vote; its query is shown again with the same sides.
    pub fn undo(&self, rater: &str) -> Result<NextView> {
        let rater = validate_rater(rater)?;
        let store = self.store();
        let undone = store.undo_last(&rater)?;
        let mut view = self.view(&store, rater)?;
        // The undone query comes back next even if the rater's order would put another first
        // (possible when votes were cast from two tabs).
        if let Some(vote) = undone {
            if view.query.as_ref().map(|q| q.id.as_str()) != Some(vote.query_id.as_str()) {
                if let Some(query) = self.contest.query(&vote.query_id) {
                    let [a, b] = &query.answers;
                    let (left, right) = if vote.left_is_a { (a, b) } else { (b, a) };
                    view.query = Some(QueryView {
                        id: query.id.clone(),
                        prompt: query.prompt.clone(),
                        left: left.clone(),
                        right: right.clone(),
                    });
                }
            }
        }
        Ok(view)
    }

    /// Results of every live vote so far.
    pub fn results(&self) -> Result<Results> {
        let store = self.store();
        let votes = store.live_votes()?;
        Ok(stats::compute(store.identity(), &votes))
    }
}

/// Results straight from a store file, without the contest's data files.
pub fn results_from_store(path: &Path) -> Result<Results> {
    let store = VoteStore::open_existing(path)?;
    Ok(stats::compute(store.identity(), &store.live_votes()?))
}
