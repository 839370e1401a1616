//! The arena page in headless Chromium, driven like two people would: keys for one rater,
//! mouse clicks for the other, an undo each, a server restart in the middle (with a key
//! pressed while the server is down), a page reload and a finish / resume. Then the stored
//! votes and the statistics are checked against the plan and against scipy's numbers
//! (tests/fixtures/stats/reference.json, scenario `browser`).
//!
//! Needs Debian's `chromium` (or `VERDICT_CHROMIUM`); the browser is driven over the
//! DevTools protocol (tests/support/cdp.rs says why).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::cdp::Browser;
use verdict_arena::server::{bind, serve, AppState};
use verdict_arena::{Verdict, VoteStore};

const TOKEN: &str = "t0k3n";

/// The arena running in its own thread and runtime, stopped abruptly like a crash.
struct RunningServer {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    fn start(parquet: &Path, store: &Path, port: u16) -> RunningServer {
        let arena = support::data::open_arena(parquet, store);
        let state = AppState {
            arena: Arc::new(arena),
            token: Some(Arc::from(TOKEN)),
            local_only: true,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, port_receiver) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = bind(SocketAddr::from(([127, 0, 0, 1], port)), false)
                    .await
                    .unwrap();
                ready.send(listener.local_addr().unwrap().port()).unwrap();
                tokio::select! {
                    result = serve(state, listener, std::future::pending()) => result.unwrap(),
                    _ = stopped => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        let port = port_receiver.recv_timeout(Duration::from_secs(10)).unwrap();
        RunningServer {
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stats/reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn plan(reference: &Value, rater: &str) -> BTreeMap<String, Verdict> {
    reference["scenarios"]["browser"]["plans"][rater]
        .as_object()
        .unwrap()
        .iter()
        .map(|(query, verdict)| {
            (
                query.clone(),
                Verdict::parse(verdict.as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// Waits until the page shows a query with `done` votes made, and returns the query id.
fn ready_query(browser: &mut Browser, done: usize) -> String {
    let expression = format!(
        "document.body.dataset.state === 'ready' && document.getElementById('progress').textContent === '{done} of {}' && document.body.dataset.query",
        support::data::QUERIES
    );
    browser
        .wait_for(&expression, &format!("a query after {done} votes"))
        .as_str()
        .unwrap()
        .to_owned()
}

/// Texts of the cards on the left, to recognise the sides.
fn left_texts(browser: &mut Browser) -> Value {
    browser.eval("[...document.querySelectorAll('#side-left .card .text')].map(e => e.textContent)")
}

/// Which screen side shows method B (finetuned: its hits are the `good-*` items).
fn b_is_left(browser: &mut Browser) -> bool {
    let texts = left_texts(browser);
    texts[0].as_str().unwrap().starts_with("good")
}

/// The key that casts `verdict` for the query on screen.
fn key_for(browser: &mut Browser, verdict: Verdict) -> char {
    match verdict {
        Verdict::Tie => 't',
        Verdict::Skip => 'n',
        Verdict::B => {
            if b_is_left(browser) {
                'a'
            } else {
                'b'
            }
        }
        Verdict::A => {
            if b_is_left(browser) {
                'b'
            } else {
                'a'
            }
        }
    }
}

fn button_for(browser: &mut Browser, verdict: Verdict) -> &'static str {
    match key_for(browser, verdict) {
        'a' => "#vote-left",
        'b' => "#vote-right",
        't' => "#vote-tie",
        _ => "#vote-skip",
    }
}

fn opposite(verdict: Verdict) -> Verdict {
    if verdict == Verdict::A {
        Verdict::B
    } else {
        Verdict::A
    }
}

#[test]
fn two_raters_vote_in_chromium_across_a_server_restart() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let parquet = support::data::write_retrieval_fixture(&dir.path().join("data"));
    let store: PathBuf = dir.path().join("arena.sqlite3");
    let mut server = RunningServer::start(&parquet, &store, 0);
    let port = server.port;
    let mut browser = Browser::launch();

    // Alice: keys only.
    let alice = plan(&reference, "alice");
    browser.navigate(&format!(
        "http://127.0.0.1:{port}/?rater=alice&token={TOKEN}"
    ));
    ready_query(&mut browser, 0);
    browser.wait_for(
        "document.images.length === 9 && [...document.images].every(i => i.complete && i.naturalWidth === 8)",
        "the query image and 2 x 4 result thumbnails",
    );
    for step in 0..support::data::QUERIES {
        let query = ready_query(&mut browser, step);
        let verdict = alice[&query];
        if step == 1 {
            // A wrong vote, then undo: the same query comes back with the same sides.
            let sides = left_texts(&mut browser);
            let wrong = key_for(&mut browser, opposite(verdict));
            browser.press(wrong);
            assert_ne!(ready_query(&mut browser, step + 1), query);
            browser.press('u');
            assert_eq!(ready_query(&mut browser, step), query);
            assert_eq!(left_texts(&mut browser), sides);
        }
        if step == 4 {
            // The server goes away: the vote fails visibly and nothing is stored.
            server.stop();
            let key = key_for(&mut browser, verdict);
            browser.press(key);
            browser.wait_for(
                "document.body.dataset.state === 'error'",
                "an error while the server is down",
            );
            let status = browser.eval("document.getElementById('status').textContent");
            assert!(status.as_str().unwrap().contains("unreachable"), "{status}");
            assert_eq!(
                VoteStore::open_existing(&store)
                    .unwrap()
                    .live_votes()
                    .unwrap()
                    .len(),
                4
            );
            // Back on the same port from the same files; a reload shows the same query.
            let sides = left_texts(&mut browser);
            server = RunningServer::start(&parquet, &store, port);
            browser.navigate(&format!(
                "http://127.0.0.1:{port}/?rater=alice&token={TOKEN}"
            ));
            assert_eq!(ready_query(&mut browser, step), query);
            assert_eq!(left_texts(&mut browser), sides);
        }
        let key = key_for(&mut browser, verdict);
        browser.press(key);
    }
    browser.wait_for(
        "document.body.dataset.state === 'done'",
        "alice's last vote",
    );
    let progress = browser.eval("document.getElementById('progress').textContent");
    assert_eq!(progress, "8 of 8");

    // Bob: signs in through the form and clicks.
    let bob = plan(&reference, "bob");
    browser.navigate(&format!("http://127.0.0.1:{port}/?token={TOKEN}"));
    browser.wait_for(
        "document.body.dataset.state === 'login'",
        "the sign-in form",
    );
    browser.eval("document.getElementById('rater-name').value = '  bob '");
    browser.click("#start");
    for step in 0..support::data::QUERIES {
        let query = ready_query(&mut browser, step);
        if step == 3 {
            browser.press('q');
            browser.wait_for(
                "document.body.dataset.state === 'finished'",
                "the finished screen",
            );
            browser.press('a');
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(
                browser.eval("document.body.dataset.state"),
                "finished",
                "keys do nothing once finished"
            );
            browser.click("#resume");
            assert_eq!(ready_query(&mut browser, step), query);
        }
        if step == 5 {
            browser.click("#vote-skip");
            ready_query(&mut browser, step + 1);
            browser.click("#undo");
            assert_eq!(ready_query(&mut browser, step), query);
        }
        let button = button_for(&mut browser, bob[&query]);
        browser.click(button);
    }
    browser.wait_for("document.body.dataset.state === 'done'", "bob's last vote");

    // Results as the page's server reports them.
    let results = browser.eval(&format!(
        "fetch('/api/results', {{ headers: {{ Authorization: 'Bearer {TOKEN}' }} }}).then(r => r.json())"
    ));
    drop(browser);
    server.stop();

    // Stored votes: every live vote is the plan's, undone votes are kept but marked.
    let store = VoteStore::open_existing(&store).unwrap();
    let all = store.all_votes().unwrap();
    assert_eq!(
        all.len(),
        2 * support::data::QUERIES + 2,
        "8 + 8 votes and the two undone ones"
    );
    assert_eq!(
        all.iter().filter(|vote| vote.undone_at.is_some()).count(),
        2
    );
    let live = store.live_votes().unwrap();
    assert_eq!(live.len(), 2 * support::data::QUERIES);
    for vote in &live {
        let expected = if vote.rater == "alice" { &alice } else { &bob };
        assert_eq!(
            vote.verdict, expected[&vote.query_id],
            "{} on {}",
            vote.rater, vote.query_id
        );
        assert_eq!(vote.verdict, vote.choice.verdict(vote.left_is_a));
        assert!(vote.cast_at.ends_with('Z'));
    }
    assert_eq!(
        live.iter()
            .map(|v| v.rater.as_str())
            .collect::<std::collections::BTreeSet<_>>(),
        ["alice", "bob"].into_iter().collect()
    );

    // Statistics against scipy's binomtest and scikit-learn's kappa.
    let expected = &reference["scenarios"]["browser"];
    for key in ["a", "b", "ties", "skips"] {
        assert_eq!(results["counts"][key], expected[key], "count {key}");
    }
    for (ours, theirs) in [
        ("test_excluding_ties", "excluding_ties"),
        ("test_ties_split", "ties_split"),
    ] {
        assert_eq!(results[ours]["successes"], expected[theirs]["k"]);
        assert_eq!(results[ours]["trials"], expected[theirs]["n"]);
        for (field, reference_field) in [
            ("p_value", "p_value"),
            ("ci_low", "ci_low"),
            ("ci_high", "ci_high"),
        ] {
            let ours_value = results[ours][field].as_f64().unwrap();
            let theirs_value = expected[theirs][reference_field].as_f64().unwrap();
            assert!(
                (ours_value - theirs_value).abs() < 1e-9,
                "{ours}.{field}: {ours_value} vs scipy {theirs_value}"
            );
        }
    }
    let pair = &results["pairs"][0];
    assert_eq!(pair["raters"], expected["pair"]["raters"]);
    assert_eq!(pair["shared"], expected["pair"]["shared"]);
    let kappa = pair["cohen_kappa"].as_f64().unwrap();
    assert!((kappa - expected["pair"]["cohen_kappa"].as_f64().unwrap()).abs() < 1e-12);
    let from_store = verdict_arena::results_from_store(store.path()).unwrap();
    assert_eq!(serde_json::to_value(&from_store).unwrap(), results);
}
