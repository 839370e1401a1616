//! Batch jobs end to end against Verdict's own server (tiny Qwen3-VL checkpoint) on
//! loopback: a client stopped at random points and a server killed once, expired batches,
//! and a cancelled job reopened. Every run must end with each item labelled exactly once.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};
use verdict_label::journal::{Outcome, Record};
use verdict_label::{Hooks, Job, LabelError, NoProgress, Status};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn journal(dir: &std::path::Path) -> Vec<Record> {
    std::fs::read_to_string(dir.join("answers.jsonl"))
        .expect("journal")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect()
}

fn assert_all_labelled(output: &std::path::Path, n: usize) {
    let rows = read_rows(output);
    assert_eq!(rows.len(), n);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["id"], format!("sku-{i}"), "rows keep the input order");
        assert_eq!(row["label_status"], "labelled", "{row:?}");
        assert!(["modern", "rustic", "industrial"].contains(&row["style"].as_str()));
        assert!(row["clean_title"].chars().count() <= 12);
        let seats: i64 = row["seats"].parse().expect("seats");
        assert!((1..=8).contains(&seats));
        assert!(["true", "false"].contains(&row["indoor"].as_str()));
    }
}

#[test]
fn batch_job_survives_client_and_server_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("server");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut server = Some(Server::start(any, &server_dir, DAY));
    let address = server.as_ref().unwrap().address;
    let n = 12;
    let spec = catalogue(
        dir.path(),
        n,
        &server.as_ref().unwrap().base_url(),
        "[limits]\nmax_requests = 5\n[polling]\ninterval_seconds = 0.05",
    );
    let input_before = std::fs::read(dir.path().join("items.csv")).unwrap();
    let job_dir = dir.path().join("job");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let mut interruptions = 0;
    let mut restarted = None;
    let mut created = false;
    let (output, counts) = loop {
        let job = if created {
            Job::open(&job_dir, false).expect("reopen")
        } else {
            created = true;
            Job::create(&spec, &job_dir).expect("create")
        };
        let stop = rng.random_range(1..=5);
        let mut job = job.with_hooks(Hooks {
            stop_after_step: Some(stop),
            ..Hooks::default()
        });
        // Once, mid-job: kill the server and bring it back while the client is calling it.
        if interruptions == 4 {
            server.take().expect("server").kill();
            let server_dir = server_dir.clone();
            restarted = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                Server::start(address, &server_dir, DAY)
            }));
        }
        let result = runtime.block_on(job.run(&NoProgress));
        drop(job);
        if let Some(thread) = restarted.take() {
            server = Some(thread.join().expect("restart"));
        }
        match result {
            Ok(done) => break done,
            Err(LabelError::Interrupted(_)) => interruptions += 1,
            Err(other) => panic!("job failed: {other}"),
        }
        assert!(interruptions < 200, "no progress");
    };
    assert!(server.is_some());
    assert!(interruptions >= 5, "only {interruptions} interruptions");
    assert_eq!(counts.labelled, n);
    assert_all_labelled(&output, n);
    // Exactly once: every item answered by exactly one try, none lost, none repeated.
    let records = journal(&job_dir);
    let mut per_item: HashMap<usize, usize> = HashMap::new();
    for record in &records {
        assert!(
            matches!(record.outcome, Outcome::Valid { .. }),
            "{record:?}"
        );
        *per_item.entry(record.item).or_default() += 1;
    }
    assert_eq!(per_item.len(), n);
    assert!(per_item.values().all(|&c| c == 1), "{per_item:?}");
    let state: verdict_label::state::JobState =
        serde_json::from_slice(&std::fs::read(job_dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(state.status, Status::Finalized);
    assert_eq!(state.files.len(), 3, "12 items at 5 per file");
    assert!(state.files.iter().all(|f| f.status == Status::Finalized));
    assert_eq!(
        std::fs::read(dir.path().join("items.csv")).unwrap(),
        input_before
    );
    let report = verdict_label::status(&job_dir).unwrap();
    assert_eq!(report.counts.labelled, n);
    assert!(report.to_string().contains("12 labelled"));
}

#[test]
fn expired_batches_are_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("server");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // Every batch expires at once: nothing is answered.
    let mut server = Server::start(any, &server_dir, Duration::ZERO);
    let n = 4;
    let spec = catalogue(
        dir.path(),
        n,
        &server.base_url(),
        "[polling]\ninterval_seconds = 0.02",
    );
    let job_dir = dir.path().join("job");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let job = Job::create(&spec, &job_dir).unwrap();
    let mut job = job.with_hooks(Hooks {
        stop_when: Some(Arc::new(|state| {
            state
                .files
                .first()
                .is_some_and(|f| f.status == Status::Finalized)
        })),
        ..Hooks::default()
    });
    let stopped = runtime.block_on(job.run(&NoProgress));
    assert!(
        matches!(stopped, Err(LabelError::Interrupted(_))),
        "{stopped:?}"
    );
    drop(job);
    let state: verdict_label::state::JobState =
        serde_json::from_slice(&std::fs::read(job_dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(state.files[0].remote_status.as_deref(), Some("expired"));
    let records = journal(&job_dir);
    assert_eq!(records.len(), n);
    for record in &records {
        match &record.outcome {
            Outcome::Failed { error } => assert!(error.contains("expired"), "{error}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        job_dir.join("results/part-0001.errors.jsonl").exists(),
        "kept"
    );

    server.restart(DAY);
    let mut job = Job::open(&job_dir, false).unwrap();
    let (output, counts) = runtime.block_on(job.run(&NoProgress)).unwrap();
    assert_eq!(counts.labelled, n);
    assert_all_labelled(&output, n);
    let records = journal(&job_dir);
    assert_eq!(
        records.len(),
        2 * n,
        "one expired try and one answer per item"
    );
    assert!(records
        .iter()
        .filter(|r| r.attempt == 2)
        .all(|r| matches!(r.outcome, Outcome::Valid { .. })));
}

#[test]
fn a_cancelled_job_stops_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = Server::start(any, &dir.path().join("server"), DAY);
    let n = 5;
    let spec = catalogue(
        dir.path(),
        n,
        &server.base_url(),
        "[polling]\ninterval_seconds = 0.02",
    );
    let job_dir = dir.path().join("job");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut job = Job::create(&spec, &job_dir).unwrap().with_hooks(Hooks {
        stop_when: Some(Arc::new(|state| {
            state
                .files
                .first()
                .is_some_and(|f| f.status == Status::Dispatched)
        })),
        ..Hooks::default()
    });
    assert!(matches!(
        runtime.block_on(job.run(&NoProgress)),
        Err(LabelError::Interrupted(_))
    ));
    drop(job);
    let report = runtime.block_on(verdict_label::cancel(&job_dir)).unwrap();
    assert!(report.cancel_requested);
    assert!(report.to_string().contains("cancel requested"));
    assert!(matches!(
        Job::open(&job_dir, false),
        Err(LabelError::Cancelled(_))
    ));
    let mut job = Job::open(&job_dir, true).unwrap();
    let (output, counts) = runtime.block_on(job.run(&NoProgress)).unwrap();
    assert_eq!(counts.labelled, n);
    assert_all_labelled(&output, n);
    let state = job.state().clone();
    let first = state.files[0].remote_status.as_deref();
    assert!(
        matches!(first, Some("cancelled") | Some("completed")),
        "{first:?}"
    );
}

#[test]
fn a_running_job_drains_its_batches_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = Server::start(any, &dir.path().join("server"), DAY);
    let n = 6;
    let spec = catalogue(
        dir.path(),
        n,
        &server.base_url(),
        "[limits]\nmax_requests = 2\n[polling]\ninterval_seconds = 0.02",
    );
    let job_dir = dir.path().join("job");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // What `cancel` leaves for a running process, written as the first batch goes out.
    let marker = job_dir.join("cancel-requested");
    let mut job = Job::create(&spec, &job_dir).unwrap().with_hooks(Hooks {
        stop_when: Some(Arc::new(move |state| {
            if state
                .files
                .first()
                .is_some_and(|f| f.status == Status::Dispatched)
            {
                std::fs::write(&marker, "cancel requested\n").unwrap();
            }
            false
        })),
        ..Hooks::default()
    });
    let stopped = runtime.block_on(job.run(&NoProgress));
    assert!(
        matches!(stopped, Err(LabelError::Cancelled(_))),
        "{stopped:?}"
    );
    let state = job.state().clone();
    drop(job);
    assert_ne!(state.status, Status::Finalized);
    assert_eq!(
        state.files[0].status,
        Status::Finalized,
        "in-flight batch drained"
    );
    assert!(state.files[1..]
        .iter()
        .all(|f| f.status == Status::Prepared));
    let rows = read_rows(&job_dir.join("labelled.csv"));
    let statuses: Vec<&str> = rows.iter().map(|r| r["label_status"].as_str()).collect();
    assert_eq!(
        statuses,
        ["labelled", "labelled", "pending", "pending", "pending", "pending"]
    );

    let mut job = Job::open(&job_dir, true).unwrap();
    let (output, counts) = runtime.block_on(job.run(&NoProgress)).unwrap();
    assert_eq!(counts.labelled, n);
    assert_all_labelled(&output, n);
    assert_eq!(journal(&job_dir).len(), n, "nothing asked twice");
}
