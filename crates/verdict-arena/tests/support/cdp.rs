//! Just enough of the Chrome DevTools Protocol to drive a page like a person: open a URL,
//! press keys, click elements, read the DOM.
//!
//! Why not chromedriver: Debian ships it as a separate package whose version must match the
//! browser, and CI only installs `chromium`. The protocol is built into the browser, and one
//! websocket (tungstenite) is all it needs, so this works offline with nothing else installed.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Chromium from Debian (or `VERDICT_CHROMIUM`); fails clearly when absent.
pub fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("VERDICT_CHROMIUM") {
        assert!(
            std::path::Path::new(&path).exists(),
            "VERDICT_CHROMIUM={path} does not exist; install Chromium (`apt-get install -y chromium`)"
        );
        return PathBuf::from(path);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(output) = Command::new("which").arg(name).output() {
            if output.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            }
        }
    }
    panic!("this test drives the arena page in a real browser: install Chromium (`apt-get install -y chromium`) or set VERDICT_CHROMIUM");
}

/// A headless Chromium with one page attached.
pub struct Browser {
    child: Child,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--window-size=1280,1600",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // The browser prints its websocket address on stderr once it listens.
        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(address) = line.strip_prefix("DevTools listening on ") {
                        let _ = sender.send(address.trim().to_owned());
                        sent = true;
                    }
                }
            }
        });
        let address = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium did not announce its DevTools address within 30 s");
        let (socket, _) = tungstenite::connect(address.as_str()).expect("connect to DevTools");
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
        }
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = browser.send(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.try_send(session, method, params)
            .unwrap_or_else(|error| panic!("{method} failed: {error}"))
    }

    fn try_send(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .expect("send to DevTools");
        loop {
            let reply = self.socket.read().expect("read from DevTools");
            let Message::Text(text) = reply else { continue };
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["id"].as_u64() == Some(id) {
                if let Some(error) = value.get("error") {
                    return Err(error.to_string());
                }
                return Ok(value["result"].clone());
            }
        }
    }

    /// A protocol command on the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its JSON value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(details) = result.get("exceptionDetails") {
            panic!("`{expression}` threw: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy; panics with `what` after 10 s. Failures while a
    /// page is being replaced count as "not yet".
    pub fn wait_for(&mut self, expression: &str, what: &str) -> Value {
        let start = Instant::now();
        loop {
            let session = self.session.clone();
            let wrapped = format!(
                "(() => {{ try {{ return {expression}; }} catch (e) {{ return null; }} }})()"
            );
            let value = self
                .try_send(
                    Some(&session),
                    "Runtime.evaluate",
                    json!({ "expression": wrapped, "returnByValue": true }),
                )
                .map(|result| result["result"]["value"].clone())
                .unwrap_or(Value::Null);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let state = self.eval("document.body ? document.body.dataset.state + ' / ' + document.getElementById('status').textContent : 'no body'");
                panic!("timed out waiting for {what} (`{expression}`); page state: {state}");
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Presses and releases a letter key, as a keyboard would.
    pub fn press(&mut self, key: char) {
        let upper = key.to_ascii_uppercase();
        let code = format!("Key{upper}");
        for kind in ["keyDown", "keyUp"] {
            let mut params = json!({
                "type": kind, "key": key.to_string(), "code": code,
                "windowsVirtualKeyCode": upper as u32, "nativeVirtualKeyCode": upper as u32,
            });
            if kind == "keyDown" {
                params["text"] = json!(key.to_string());
            }
            self.call("Input.dispatchKeyEvent", params);
        }
    }

    /// Moves the mouse to the middle of the element matching `selector` and clicks it.
    pub fn click(&mut self, selector: &str) {
        let point = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ));
        let (x, y) = match point.as_array() {
            Some(xy) => (xy[0].as_f64().unwrap(), xy[1].as_f64().unwrap()),
            None => panic!("no element `{selector}` to click"),
        };
        self.call(
            "Input.dispatchMouseEvent",
            json!({ "type": "mouseMoved", "x": x, "y": y }),
        );
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1 }),
            );
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
