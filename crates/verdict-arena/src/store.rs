//! Durable votes in SQLite: every vote is committed (and synced) before the page moves on.
//!
//! Tables:
//! - `meta`: the contest this store belongs to, and the random seed that orders queries per rater;
//! - `assignments`: which method was shown on the left, per rater and query, fixed the first
//!   time the query is shown (so a reload or restart shows the same sides);
//! - `votes`: one row per cast vote with rater, query, side mapping, choice and time; undo marks
//!   a vote undone instead of deleting it, and a partial unique index allows only one live vote
//!   per rater and query.
//!
//! The store runs in WAL mode with `synchronous = FULL`: a vote that was answered with success
//! survives a crash or power loss.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::contest::ContestIdentity;
use crate::error::{ArenaError, Result};

/// What the rater pressed, in screen terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    Left,
    Right,
    Tie,
    Skip,
}

/// What a vote means for the methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    A,
    B,
    Tie,
    Skip,
}

impl Choice {
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Left => "left",
            Choice::Right => "right",
            Choice::Tie => "tie",
            Choice::Skip => "skip",
        }
    }

    pub fn parse(text: &str) -> Option<Choice> {
        match text {
            "left" => Some(Choice::Left),
            "right" => Some(Choice::Right),
            "tie" => Some(Choice::Tie),
            "skip" => Some(Choice::Skip),
            _ => None,
        }
    }

    /// Undoes the hidden side mapping.
    pub fn verdict(self, left_is_a: bool) -> Verdict {
        match (self, left_is_a) {
            (Choice::Left, true) | (Choice::Right, false) => Verdict::A,
            (Choice::Left, false) | (Choice::Right, true) => Verdict::B,
            (Choice::Tie, _) => Verdict::Tie,
            (Choice::Skip, _) => Verdict::Skip,
        }
    }
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::A => "a",
            Verdict::B => "b",
            Verdict::Tie => "tie",
            Verdict::Skip => "skip",
        }
    }

    pub fn parse(text: &str) -> Option<Verdict> {
        match text {
            "a" => Some(Verdict::A),
            "b" => Some(Verdict::B),
            "tie" => Some(Verdict::Tie),
            "skip" => Some(Verdict::Skip),
            _ => None,
        }
    }
}

/// One stored vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    pub id: i64,
    pub rater: String,
    pub query_id: String,
    /// Whether method A was on the left when the vote was cast.
    pub left_is_a: bool,
    pub choice: Choice,
    pub verdict: Verdict,
    /// RFC 3339, UTC.
    pub cast_at: String,
    /// When the rater undid it; undone votes do not count.
    pub undone_at: Option<String>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    rater TEXT NOT NULL,
    query_id TEXT NOT NULL,
    left_is_a INTEGER NOT NULL CHECK (left_is_a IN (0, 1)),
    assigned_at TEXT NOT NULL,
    PRIMARY KEY (rater, query_id)
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rater TEXT NOT NULL,
    query_id TEXT NOT NULL,
    left_is_a INTEGER NOT NULL CHECK (left_is_a IN (0, 1)),
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'tie', 'skip')),
    verdict TEXT NOT NULL CHECK (verdict IN ('a', 'b', 'tie', 'skip')),
    cast_at TEXT NOT NULL,
    undone_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_live_vote ON votes (rater, query_id) WHERE undone_at IS NULL;
";

/// The vote store of one contest.
pub struct VoteStore {
    connection: Connection,
    path: PathBuf,
    identity: ContestIdentity,
    seed: u64,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl VoteStore {
    /// Opens (or creates) the store for `identity`; a store made for another contest is an
    /// error rather than a place to mix votes.
    pub fn open(path: &Path, identity: &ContestIdentity) -> Result<VoteStore> {
        let connection = connect(path)?;
        let stored: Option<String> = connection
            .query_row("SELECT value FROM meta WHERE key = 'contest'", [], |row| {
                row.get(0)
            })
            .optional()?;
        match stored {
            Some(text) => {
                let stored: ContestIdentity = parse_identity(path, &text)?;
                if &stored != identity {
                    return Err(ArenaError::Store {
                        path: path.to_path_buf(),
                        message: format!(
                            "it holds votes for another contest ({} vs {}, {} queries); use another --store for this one ({} vs {}, {} queries)",
                            stored.methods[0].spec, stored.methods[1].spec, stored.queries,
                            identity.methods[0].spec, identity.methods[1].spec, identity.queries
                        ),
                    });
                }
            }
            None => {
                let text = serde_json::to_string(identity).map_err(|error| ArenaError::Store {
                    path: path.to_path_buf(),
                    message: error.to_string(),
                })?;
                let seed = rand::random::<u64>();
                connection.execute_batch("BEGIN IMMEDIATE")?;
                connection.execute(
                    "INSERT INTO meta (key, value) VALUES ('contest', ?1)",
                    [text],
                )?;
                connection.execute(
                    "INSERT INTO meta (key, value) VALUES ('seed', ?1)",
                    [seed.to_string()],
                )?;
                connection.execute(
                    "INSERT INTO meta (key, value) VALUES ('created_at', ?1)",
                    [now()],
                )?;
                connection.execute_batch("COMMIT")?;
            }
        }
        Self::finish_open(connection, path)
    }

    /// Opens an existing store without knowing its contest (for results).
    pub fn open_existing(path: &Path) -> Result<VoteStore> {
        if !path.is_file() {
            return Err(ArenaError::Store {
                path: path.to_path_buf(),
                message: "no such file (was `verdict arena` started with another --store?)".into(),
            });
        }
        Self::finish_open(connect(path)?, path)
    }

    fn finish_open(connection: Connection, path: &Path) -> Result<VoteStore> {
        let read = |key: &str| -> Result<String> {
            connection
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()?
                .ok_or_else(|| ArenaError::Store {
                    path: path.to_path_buf(),
                    message: format!("not an arena vote store (no `{key}`)"),
                })
        };
        let identity = parse_identity(path, &read("contest")?)?;
        let seed = read("seed")?.parse().map_err(|_| ArenaError::Store {
            path: path.to_path_buf(),
            message: "seed is not a number".into(),
        })?;
        Ok(VoteStore {
            connection,
            path: path.to_path_buf(),
            identity,
            seed,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn identity(&self) -> &ContestIdentity {
        &self.identity
    }

    /// Random per store; orders each rater's queries.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether method A is on the left for this rater and query; fixed (randomly) on first call.
    pub fn assign(&self, rater: &str, query_id: &str) -> Result<bool> {
        if let Some(left_is_a) = self.assignment(rater, query_id)? {
            return Ok(left_is_a);
        }
        let left_is_a = rand::random::<bool>();
        self.connection.execute(
            "INSERT OR IGNORE INTO assignments (rater, query_id, left_is_a, assigned_at) VALUES (?1, ?2, ?3, ?4)",
            params![rater, query_id, left_is_a, now()],
        )?;
        // Another request may have won the race: what is stored is what counts.
        Ok(self.assignment(rater, query_id)?.unwrap_or(left_is_a))
    }

    /// The side mapping already fixed for this rater and query.
    pub fn assignment(&self, rater: &str, query_id: &str) -> Result<Option<bool>> {
        Ok(self
            .connection
            .query_row(
                "SELECT left_is_a FROM assignments WHERE rater = ?1 AND query_id = ?2",
                params![rater, query_id],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Records a vote; the query must have been shown (assigned) to the rater and not voted yet.
    pub fn cast(&self, rater: &str, query_id: &str, choice: Choice) -> Result<Vote> {
        let left_is_a = self.assignment(rater, query_id)?.ok_or_else(|| {
            ArenaError::BadRequest(format!(
                "query `{query_id}` was not shown to rater `{rater}`"
            ))
        })?;
        let verdict = choice.verdict(left_is_a);
        let cast_at = now();
        let inserted = self.connection.execute(
            "INSERT INTO votes (rater, query_id, left_is_a, choice, verdict, cast_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![rater, query_id, left_is_a, choice.as_str(), verdict.as_str(), cast_at],
        );
        match inserted {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(ArenaError::AlreadyVoted {
                    rater: rater.into(),
                    query: query_id.into(),
                })
            }
            Err(error) => return Err(error.into()),
        }
        Ok(Vote {
            id: self.connection.last_insert_rowid(),
            rater: rater.into(),
            query_id: query_id.into(),
            left_is_a,
            choice,
            verdict,
            cast_at,
            undone_at: None,
        })
    }

    /// Marks the rater's most recent live vote undone and returns it (`None`: nothing to undo).
    pub fn undo_last(&self, rater: &str) -> Result<Option<Vote>> {
        let last = self
            .votes_where(
                "rater = ?1 AND undone_at IS NULL ORDER BY id DESC LIMIT 1",
                [rater],
            )?
            .pop();
        let Some(mut vote) = last else {
            return Ok(None);
        };
        let undone_at = now();
        self.connection.execute(
            "UPDATE votes SET undone_at = ?1 WHERE id = ?2",
            params![undone_at, vote.id],
        )?;
        vote.undone_at = Some(undone_at);
        Ok(Some(vote))
    }

    /// Every vote that counts (not undone), oldest first.
    pub fn live_votes(&self) -> Result<Vec<Vote>> {
        self.votes_where("undone_at IS NULL ORDER BY id", [])
    }

    /// Every vote ever cast, undone ones included, oldest first.
    pub fn all_votes(&self) -> Result<Vec<Vote>> {
        self.votes_where("1 ORDER BY id", [])
    }

    /// The rater's votes that count, oldest first.
    pub fn live_votes_of(&self, rater: &str) -> Result<Vec<Vote>> {
        self.votes_where("rater = ?1 AND undone_at IS NULL ORDER BY id", [rater])
    }

    fn votes_where<P: rusqlite::Params>(&self, clause: &str, parameters: P) -> Result<Vec<Vote>> {
        let sql = format!(
            "SELECT id, rater, query_id, left_is_a, choice, verdict, cast_at, undone_at FROM votes WHERE {clause}"
        );
        let mut statement = self.connection.prepare(&sql)?;
        let rows = statement.query_map(parameters, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, Option<String>>(7)?,
            ))
        })?;
        let mut votes = Vec::new();
        for row in rows {
            let (id, rater, query_id, left_is_a, choice, verdict, cast_at, undone_at) = row?;
            let bad = |field: &str, value: &str| ArenaError::Store {
                path: self.path.clone(),
                message: format!("vote {id}: unknown {field} `{value}`"),
            };
            let choice = Choice::parse(&choice).ok_or_else(|| bad("choice", &choice))?;
            let verdict = Verdict::parse(&verdict).ok_or_else(|| bad("verdict", &verdict))?;
            votes.push(Vote {
                id,
                rater,
                query_id,
                left_is_a,
                choice,
                verdict,
                cast_at,
                undone_at,
            });
        }
        Ok(votes)
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let store_error = |message: String| ArenaError::Store {
        path: path.to_path_buf(),
        message,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ArenaError::io(parent, source))?;
    }
    let connection = Connection::open(path).map_err(|error| store_error(error.to_string()))?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|error| store_error(error.to_string()))?;
    let journal: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|error| store_error(format!("cannot set up the journal: {error}")))?;
    if !journal.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            journal,
            "the vote store could not switch to WAL; votes are still synced"
        );
    }
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(|error| store_error(format!("cannot set up syncing: {error}")))?;
    connection
        .execute_batch(SCHEMA)
        .map_err(|error| store_error(format!("not an arena vote store: {error}")))?;
    Ok(connection)
}

fn parse_identity(path: &Path, text: &str) -> Result<ContestIdentity> {
    serde_json::from_str(text).map_err(|error| ArenaError::Store {
        path: path.to_path_buf(),
        message: format!("unreadable contest description: {error}"),
    })
}
