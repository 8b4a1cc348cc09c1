//! The block explorer page in a real browser: headless Chromium, driven over the
//! DevTools protocol, opens a doctor node's page and the test checks the rendered DOM:
//! the block list, a block's detail after a click and after a search, a patient found
//! by search, and a block that appears live after mining in the REPL.
//!
//! Chromium comes from Debian's `chromium` package, which `.ci/run` installs. Without
//! it the test fails in CI (`CI` set) and is skipped, with a message, elsewhere.
//! `HEALTHCHAIN_SCREENSHOT=path.png` also saves a screenshot of the page.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::start_api_doctor;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

/// How long the page may take to show what is expected.
const WAIT: Duration = Duration::from_secs(30);

/// A headless Chromium, killed on drop.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium, or returns `None` when it is not installed.
    fn start() -> Option<Browser> {
        let profile = tempfile::tempdir().expect("temp dir");
        let spawned = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("cannot start chromium: {e}"),
        };
        // Chromium names its DevTools endpoint on standard error.
        let stderr = child.stderr.take().expect("stderr is piped");
        let (found, url) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("ws://") {
                    let _ = found.send(line[at..].trim().to_string());
                }
            }
        });
        let url = url
            .recv_timeout(WAIT)
            .expect("chromium names its DevTools endpoint");
        let (ws, _) = tungstenite::connect(url.as_str()).expect("the DevTools socket opens");
        if let MaybeTlsStream::Plain(stream) = ws.get_ref() {
            stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        }
        Some(Browser {
            child,
            _profile: profile,
            ws,
            next_id: 0,
        })
    }

    /// Sends a DevTools command (to a page when `session` is given) and returns its
    /// result, skipping the events that come meanwhile.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .expect("sends to chromium");
        loop {
            let reply = self.ws.read().expect("chromium answers");
            let Message::Text(text) = reply else { continue };
            let value: Value = serde_json::from_str(text.as_str()).expect("JSON from chromium");
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
        }
    }
}

/// A page open in the browser.
struct Page<'a> {
    browser: &'a mut Browser,
    session: String,
}

impl Page<'_> {
    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.browser.call(
            Some(&self.session.clone()),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page, re-checking as the page changes.
    fn wait_for(&mut self, what: &str, expression: &str) {
        let deadline = Instant::now() + WAIT;
        while self.eval(expression) != json!(true) {
            assert!(
                Instant::now() < deadline,
                "the page never showed {what} ({expression}); #detail: {}",
                self.eval("document.querySelector('#detail')?.textContent")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `text` into the search box and submits it.
    fn search(&mut self, text: &str) {
        let script = format!(
            "(() => {{ const s = document.querySelector('#search'); s.value = {text:?}; \
             document.querySelector('#search-form').requestSubmit(); return true; }})()"
        );
        assert_eq!(self.eval(&script), json!(true));
    }
}

#[test]
fn the_explorer_shows_blocks_details_search_and_live_updates_in_chromium() {
    let Some(mut browser) = Browser::start() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed: .ci/run installs Debian's chromium package"
        );
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut doc, addr) = start_api_doctor(dir.path());
    let url = format!("http://{addr}/");
    // Two blocks before the page opens.
    doc.run("login dr_alice password123", "Logged in as dr_alice");
    doc.send("register Jane Doe");
    let patient = doc.expect_prefix("Patient ID: ")["Patient ID: ".len()..].to_string();
    doc.run("mine", "Mined block #1 ");
    doc.run(
        "consult --test y \"Persistent fatigue, pale\"",
        "Blood test ordered",
    );
    let mined = doc.run("mine", "Mined block #2 ");
    let short = mined
        .split_whitespace()
        .nth(3)
        .expect("the mined line names the block")
        .trim_matches(|c: char| !c.is_ascii_hexdigit())
        .to_string();

    let target = browser.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
    let target_id = target["targetId"].as_str().expect("a target").to_string();
    let attached = browser.call(
        None,
        "Target.attachToTarget",
        json!({ "targetId": target_id, "flatten": true }),
    );
    let session = attached["sessionId"]
        .as_str()
        .expect("a session")
        .to_string();
    let mut page = Page {
        browser: &mut browser,
        session,
    };
    page.browser.call(
        Some(&page.session.clone()),
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
    );
    page.browser.call(
        Some(&page.session.clone()),
        "Page.navigate",
        json!({ "url": url }),
    );

    // The header and the block list.
    page.wait_for(
        "the tip height",
        "document.querySelector('#height')?.textContent.trim() === '2'",
    );
    page.wait_for(
        "two blocks",
        "document.querySelectorAll('#blocks .block-row').length === 2",
    );
    page.wait_for(
        "the network name",
        "document.querySelector('#network')?.textContent.includes('healthchain-demo')",
    );
    page.wait_for(
        "the live stream",
        "document.querySelector('#live')?.textContent.trim() === 'live'",
    );
    page.wait_for(
        "the balances",
        "document.querySelectorAll('#balances .balance-row').length >= 4",
    );
    let hash2 = page.eval("document.querySelector('.block-row[data-height=\"2\"]').dataset.hash");
    let hash2 = hash2.as_str().expect("block 2's hash").to_string();
    assert!(hash2.starts_with(&short), "{hash2} vs {short}");

    // A click on block 1 shows its detail.
    page.eval("document.querySelector('.block-row[data-height=\"1\"]').click()");
    page.wait_for(
        "block 1's detail",
        "document.querySelector('#detail').dataset.kind === 'block' && \
         document.querySelector('#detail-height')?.textContent.trim() === '1'",
    );
    page.wait_for(
        "the registration in block 1",
        "document.querySelector('#detail').textContent.includes('PatientRegistration')",
    );
    // A search by height, by hash, and by patient id.
    page.search("2");
    page.wait_for(
        "block 2's detail",
        &format!("document.querySelector('#detail').dataset.hash === '{hash2}'"),
    );
    page.search("1");
    page.wait_for(
        "block 1 again",
        "document.querySelector('#detail-height')?.textContent.trim() === '1'",
    );
    page.search(&hash2);
    page.wait_for(
        "block 2 by hash",
        &format!("document.querySelector('#detail').dataset.hash === '{hash2}'"),
    );
    page.search(&patient);
    page.wait_for(
        "the patient's history",
        "document.querySelector('#detail').dataset.kind === 'patient' && \
         document.querySelector('#detail').textContent.includes('DoctorConsultation')",
    );
    // Anonymous: the sealed sections show as markers, never as text.
    page.wait_for(
        "the sealed name",
        "document.querySelector('#detail').textContent.includes('(sealed: demographics)')",
    );
    assert_eq!(
        page.eval("document.body.textContent.includes('Jane Doe')"),
        json!(false)
    );
    // A wrong login is refused on the page; the doctor's opens what is sealed to her.
    page.eval(
        "document.querySelector('#login-user').value = 'dr_alice'; \
         document.querySelector('#login-pass').value = 'wrong'; \
         document.querySelector('#login-btn').click()",
    );
    page.wait_for(
        "the refused login",
        "document.querySelector('#login-state').textContent.startsWith('Login refused')",
    );
    page.eval(
        "document.querySelector('#login-user').value = 'dr_alice'; \
         document.querySelector('#login-pass').value = 'password123'; \
         document.querySelector('#login-btn').click()",
    );
    page.wait_for(
        "the login",
        "document.querySelector('#login-state').textContent.startsWith('Logged in as dr_alice')",
    );
    page.search(&patient);
    page.wait_for(
        "the patient's records, read",
        "document.querySelector('#detail').dataset.kind === 'patient' && \
         document.querySelector('#detail').textContent.includes('Jane Doe') && \
         document.querySelector('#detail').textContent.includes('Persistent fatigue, pale')",
    );
    page.eval("document.querySelector('#logout-btn').click()");
    page.search("no such thing");
    page.wait_for(
        "an error for a bad search",
        "document.querySelector('#detail').dataset.kind === 'error'",
    );

    // A block mined in the REPL appears without a reload.
    doc.send("register John Roe");
    doc.expect_prefix("Patient ID: ");
    doc.run("mine", "Mined block #3 ");
    page.wait_for(
        "block 3, live",
        "document.querySelector('.block-row[data-height=\"3\"]') !== null && \
         document.querySelector('#height').textContent.trim() === '3'",
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#blocks .block-row').length"),
        json!(3)
    );

    if let Some(path) = std::env::var_os("HEALTHCHAIN_SCREENSHOT") {
        page.eval("document.querySelector('.block-row[data-height=\"3\"]').click()");
        page.wait_for(
            "block 3's detail",
            "document.querySelector('#detail-height')?.textContent.trim() === '3'",
        );
        let shot = page.browser.call(
            Some(&page.session.clone()),
            "Page.captureScreenshot",
            json!({ "format": "png" }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64");
        std::fs::write(path, png).expect("writes the screenshot");
    }
    doc.send("exit");
    assert!(doc.wait(), "the node exits cleanly");
}
