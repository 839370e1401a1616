//! A loopback HTTP server with scripted misbehaviour: 5xx before success, HTML as an image,
//! cut bodies, huge bodies, stalls. Enough HTTP/1.1 for one request per connection.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with the body.
    Ok,
    /// `Content-Length` says the full size, half the body arrives, then the connection closes.
    Truncate,
    /// Declares `bytes` and starts streaming zeros.
    HugeDeclared(u64),
    /// No `Content-Length`; streams `bytes` of a JPEG-looking body until closed.
    HugeUndeclared(u64),
    /// Waits this long before answering.
    Stall(Duration),
    /// This status with a short body.
    Status(u16),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub body: Vec<u8>,
    pub content_type: String,
    /// Answer 503 to this many requests first.
    pub fail_first: usize,
    pub behaviour: Behaviour,
}

impl Route {
    pub fn ok(body: Vec<u8>, content_type: &str) -> Route {
        Route {
            body,
            content_type: content_type.to_string(),
            fail_first: 0,
            behaviour: Behaviour::Ok,
        }
    }
}

struct State {
    route: Route,
    hits: AtomicUsize,
}

pub struct TestServer {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Arc<State>>>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Arc<State>>>> = Arc::default();
        let shared = routes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let routes = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &routes);
                });
            }
        });
        TestServer { port, routes }
    }

    pub fn add(&self, path: &str, route: Route) -> String {
        self.routes.lock().unwrap().insert(
            path.to_string(),
            Arc::new(State {
                route,
                hits: AtomicUsize::new(0),
            }),
        );
        self.url(path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.routes
            .lock()
            .unwrap()
            .get(path)
            .map(|s| s.hits.load(Ordering::SeqCst))
            .unwrap_or(0)
    }
}

fn serve(stream: TcpStream, routes: &Mutex<HashMap<String, Arc<State>>>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let state = routes.lock().unwrap().get(&path).cloned();
    let mut out = stream;
    let Some(state) = state else {
        return respond(&mut out, 404, "text/plain", b"not found");
    };
    let hit = state.hits.fetch_add(1, Ordering::SeqCst);
    let route = &state.route;
    if hit < route.fail_first {
        return respond(&mut out, 503, "text/plain", b"try later");
    }
    match &route.behaviour {
        Behaviour::Ok => respond(&mut out, 200, &route.content_type, &route.body),
        Behaviour::Status(code) => respond(&mut out, *code, "text/plain", b"nope"),
        Behaviour::Stall(wait) => {
            std::thread::sleep(*wait);
            respond(&mut out, 200, &route.content_type, &route.body)
        }
        Behaviour::Truncate => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                route.content_type,
                route.body.len()
            )?;
            out.write_all(&route.body[..route.body.len() / 2])?;
            out.flush()
        }
        Behaviour::HugeDeclared(bytes) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {bytes}\r\nConnection: close\r\n\r\n"
            )?;
            stream_zeros(&mut out, *bytes)
        }
        Behaviour::HugeUndeclared(bytes) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n\r\n"
            )?;
            out.write_all(&[0xFF, 0xD8, 0xFF, 0xE0])?;
            stream_zeros(&mut out, *bytes)
        }
    }
}

fn stream_zeros(out: &mut TcpStream, bytes: u64) -> std::io::Result<()> {
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < bytes {
        let n = chunk.len().min((bytes - sent) as usize);
        // The client hangs up once it has seen enough; that ends the loop.
        out.write_all(&chunk[..n])?;
        sent += n as u64;
    }
    Ok(())
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(body)?;
    out.flush()
}
