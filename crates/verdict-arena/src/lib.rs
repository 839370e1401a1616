//! Blind A/B arena: people compare two methods' answers side by side without knowing which is
//! which, and the votes decide with an exact binomial test.
//!
//! Metrics score methods against labels; an arena asks people what they see. Two kinds:
//! - retrieval: a query image (and text) and each method's top-k gallery items, ranked by
//!   cosine similarity of an embedding column ([`retrieval`]);
//! - classification: a sample and each model's label, confidence and reason ([`classification`]).
//!
//! Flow: [`method::parse_method`] -> [`method::build_contest`] -> [`Arena::open`] (SQLite vote
//! store, [`store`]) -> [`server::router`]; [`stats::compute`] turns votes into [`Results`].

pub mod arena;
pub mod classification;
pub mod contest;
pub mod error;
pub mod method;
pub mod retrieval;
pub mod server;
pub mod stats;
pub mod store;

pub use arena::{results_from_store, Arena, NextView, QueryView};
pub use contest::{Card, Contest, ContestKind, MethodInfo, Query};
pub use error::{ArenaError, Result};
pub use method::{build_contest, parse_method, ContestOptions, MethodSource};
pub use stats::Results;
pub use store::{Choice, Verdict, Vote, VoteStore};
