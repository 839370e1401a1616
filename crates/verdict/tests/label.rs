//! `verdict label` as real processes against `verdict serve` (tiny Qwen3-VL checkpoint) on
//! loopback: the client is killed (SIGKILL) at random moments and resumed, the server is
//! killed once and started again on its batch folder; the job must end with every item
//! labelled exactly once. Also `status` and a spec error.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn verdict() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("verdict"))
}

fn tiny_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

fn start_server(port: u16, batch_dir: &Path) -> Child {
    let child = verdict()
        .args([
            "serve",
            "--labels",
            "sfw,nsfw",
            "--port",
            &port.to_string(),
            "--model",
        ])
        .arg(tiny_dir())
        .env("VERDICT_BATCH_DIR", batch_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start verdict serve");
    let started = Instant::now();
    while !ready(port) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "server not ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn write_job(dir: &Path, n: usize, port: u16) -> PathBuf {
    let mut csv = String::from("id,name,image\n");
    for i in 0..n {
        let image = if i % 4 == 0 {
            let name = format!("img{i}.png");
            image::RgbImage::from_pixel(24, 24, image::Rgb([(i * 30 % 256) as u8, 10, 90]))
                .save(dir.join(&name))
                .expect("png");
            name
        } else {
            String::new()
        };
        csv.push_str(&format!("item-{i},lamp number {i},{image}\n"));
    }
    std::fs::write(dir.join("catalogue.csv"), csv).expect("csv");
    let spec = format!(
        r#"
input = "catalogue.csv"
image_column = "image"
prompt = "Product: {{name}}. Extract its attributes."
output = "catalogue.labelled.jsonl"

[[fields]]
name = "material"
type = "string"
enum = ["metal", "wood", "glass"]

[[fields]]
name = "color"
type = "string"
max_length = 10

[endpoint]
base_url = "http://127.0.0.1:{port}/v1"
max_tokens = 80

[limits]
max_requests = 4

[polling]
interval_seconds = 0.05

[retry]
max_attempts = 60
initial_backoff_ms = 50
max_backoff_ms = 300
"#
    );
    let path = dir.join("catalogue.toml");
    std::fs::write(&path, spec).expect("spec");
    path
}

#[test]
fn label_job_survives_killed_client_and_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch_dir = dir.path().join("server-batches");
    let port = free_port();
    let mut server = start_server(port, &batch_dir);
    let n = 10;
    let spec = write_job(dir.path(), n, port);
    let job = dir.path().join("catalogue.job");

    // Deterministic "random" kill delays.
    let mut seed: u64 = 0x5eed;
    let mut next_delay = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Duration::from_millis(20 + (seed >> 33) % 250)
    };
    let mut kills = 0;
    let mut server_killed = false;
    let mut first = true;
    loop {
        let mut command = verdict();
        if first {
            command.args(["label", "run"]).arg(&spec);
        } else {
            command.args(["label", "resume"]).arg(&job);
        }
        let mut client = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start verdict label");
        first = false;
        let deadline = Instant::now() + next_delay();
        let mut finished = None;
        while Instant::now() < deadline {
            if let Some(status) = client.try_wait().expect("wait") {
                finished = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match finished {
            Some(status) => {
                let output = client.wait_with_output().expect("output");
                let stdout = String::from_utf8_lossy(&output.stdout).to_string();
                assert!(
                    status.success(),
                    "label exited with {status}: {}{stdout}",
                    String::from_utf8_lossy(&output.stderr)
                );
                assert!(
                    stdout.contains(&format!("labelled {n}, invalid 0, failed 0")),
                    "{stdout}"
                );
                break;
            }
            None => {
                client.kill().expect("kill client");
                client.wait().expect("reap client");
                kills += 1;
            }
        }
        if kills == 2 && !server_killed {
            server.kill().expect("kill server");
            server.wait().expect("reap server");
            server = start_server(port, &batch_dir);
            server_killed = true;
        }
        assert!(kills < 100, "the job makes no progress");
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        kills >= 1 && server_killed,
        "kills {kills}, server killed {server_killed}"
    );

    let table =
        std::fs::read_to_string(dir.path().join("catalogue.labelled.jsonl")).expect("output table");
    let rows: Vec<serde_json::Value> = table
        .lines()
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect();
    assert_eq!(rows.len(), n);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["id"], format!("item-{i}"));
        let material = row["material"].as_str().expect("material");
        assert!(["metal", "wood", "glass"].contains(&material), "{row}");
        assert!(row["color"].as_str().expect("color").chars().count() <= 10);
        assert_eq!(row["label_status"], "labelled");
    }
    // Exactly once: one journalled answer per item.
    let journal = std::fs::read_to_string(job.join("answers.jsonl")).expect("journal");
    let mut items: Vec<u64> = journal
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("record");
            assert_eq!(v["outcome"]["kind"], "valid", "{l}");
            v["item"].as_u64().expect("item")
        })
        .collect();
    items.sort_unstable();
    assert_eq!(items, (0..n as u64).collect::<Vec<_>>());

    let status = verdict()
        .args(["label", "status"])
        .arg(&job)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success());
    assert!(
        text.contains("finalized") && text.contains(&format!("{n} labelled")),
        "{text}"
    );
}

#[test]
fn a_bad_spec_names_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("items.csv"), "id,name\n1,a\n").expect("csv");
    std::fs::write(
        dir.path().join("bad.toml"),
        "input = \"items.csv\"\nprompt = \"x\"\n[[fields]]\nname = \"style\"\ntype = \"number\"\nenum = [\"a\"]\n",
    )
    .expect("spec");
    let output = verdict()
        .args(["label", "run"])
        .arg(dir.path().join("bad.toml"))
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("`enum` needs type string"),
        "{stderr}"
    );
}
