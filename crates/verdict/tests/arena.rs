//! `verdict arena` as a process: votes over HTTP, a hard kill (SIGKILL) mid-session, a restart
//! on the same store, then `verdict arena results`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const PREDICTIONS_A: &str =
    "sample_id,true_labels,predicted_labels,prob:safe,prob:unsafe,reason,input_text\n\
s1,safe,safe,0.9,0.1,calm wording,hello there\n\
s2,unsafe,safe,0.6,0.4,no threat found,you will regret this\n\
s3,safe,unsafe,0.3,0.7,shouting,BUY NOW\n\
s4,unsafe,unsafe,0.2,0.8,insult,you idiot\n";

const PREDICTIONS_B: &str =
    "sample_id,true_labels,predicted_labels,prob:safe,prob:unsafe,reason,input_text\n\
s1,safe,safe,0.95,0.05,greeting,hello there\n\
s2,unsafe,unsafe,0.1,0.9,veiled threat,you will regret this\n\
s3,safe,safe,0.7,0.3,advertising is allowed,BUY NOW\n\
s4,unsafe,unsafe,0.05,0.95,insult,you idiot\n";

/// A running `verdict arena` and the port it announced.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_verdict"))
            .current_dir(dir)
            .args([
                "arena",
                "--a",
                "a.csv",
                "--b",
                "b.csv",
                "--port",
                "0",
                "--store",
                "votes/arena.sqlite3",
            ])
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("VERDICT_ARENA_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("arena open at http://127.0.0.1:").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let _ = sender.send(port.parse::<u16>().unwrap());
                }
            }
        });
        let port = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("the arena did not start");
        Server { child, port }
    }

    /// One HTTP/1.1 request; returns status and body.
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    fn json(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = self.request(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), PREDICTIONS_A).unwrap();
    std::fs::write(dir.path().join("b.csv"), PREDICTIONS_B).unwrap();
    dir
}

#[test]
fn votes_survive_a_hard_kill_and_results_are_printed() {
    let dir = setup();
    let server = Server::start(dir.path(), &[]);
    let (status, page) = server.request("GET", "/", None);
    assert_eq!(status, 200);
    assert!(page.contains("Which side is better?"));
    let mut voted = Vec::new();
    let mut view = server.json("GET", "/api/next?rater=kim", None);
    for choice in ["left", "tie"] {
        let query = view["query"]["id"].as_str().unwrap().to_owned();
        assert!(view["query"]["left"][0]["label"].is_string());
        view = server.json(
            "POST",
            "/api/vote",
            Some(json!({"rater": "kim", "query_id": query, "choice": choice})),
        );
        voted.push(query);
    }
    assert_eq!(view["done"], 2);
    server.kill();

    let server = Server::start(dir.path(), &[]);
    let mut view = server.json("GET", "/api/next?rater=kim", None);
    assert_eq!(view["done"], 2, "both votes survived the kill");
    while let Some(query) = view["query"]["id"].as_str().map(str::to_owned) {
        assert!(
            !voted.contains(&query),
            "{query} shown again after its vote"
        );
        view = server.json(
            "POST",
            "/api/vote",
            Some(json!({"rater": "kim", "query_id": query, "choice": "right"})),
        );
        voted.push(query);
    }
    assert_eq!(
        (view["done"].as_u64(), view["total"].as_u64()),
        (Some(4), Some(4))
    );
    drop(server);

    let output = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .current_dir(dir.path())
        .args([
            "arena",
            "results",
            "--store",
            "votes/arena.sqlite3",
            "--json",
            "--html",
            "arena.html",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results["kind"], "classification");
    assert_eq!(results["votes"], 4);
    assert_eq!(results["counts"]["ties"], 1);
    let a = results["counts"]["a"].as_u64().unwrap();
    let b = results["counts"]["b"].as_u64().unwrap();
    assert_eq!(a + b, 3);
    assert_eq!(results["test_excluding_ties"]["trials"], 3);
    assert_eq!(results["methods"][0]["spec"], "a.csv");
    assert!(std::fs::read_to_string(dir.path().join("arena.html"))
        .unwrap()
        .contains("Blind A/B arena"));

    let text = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .current_dir(dir.path())
        .args(["arena", "results", "--store", "votes/arena.sqlite3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("4 votes on 4 queries") && text.contains("ties excluded: A wins"),
        "{text}"
    );
}

#[test]
fn token_and_remote_binding_are_enforced() {
    let dir = setup();
    let server = Server::start(dir.path(), &["--token", "abc-123"]);
    assert_eq!(server.request("GET", "/", None).0, 401);
    assert_eq!(server.request("GET", "/?token=abc-123", None).0, 200);
    assert_eq!(
        server
            .request("GET", "/api/next?rater=kim&token=nope", None)
            .0,
        401
    );
    drop(server);
    for (args, message) in [
        (vec!["--host", "0.0.0.0"], "not a loopback address"),
        (
            vec!["--host", "0.0.0.0", "--token", "x"],
            "not a loopback address",
        ),
        (
            vec!["--host", "0.0.0.0", "--allow-remote"],
            "--allow-remote needs --token",
        ),
        (vec!["--token", "has space"], "--token may only use"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_verdict"))
            .current_dir(dir.path())
            .args(["arena", "--a", "a.csv", "--b", "b.csv", "--port", "0"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .current_dir(dir.path())
        .args(["arena", "results", "--store", "nothing.sqlite3"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing.sqlite3"));
}
