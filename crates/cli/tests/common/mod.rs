//! Driving `healthchain` processes through their standard input and output.

#![allow(dead_code, unreachable_pub)]

pub mod http;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long any single expected line may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The binary under test.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_healthchain"))
}

/// A running `healthchain` process with a scripted standard input.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
    /// Index in `seen` of the first line not yet consumed by `expect`.
    cursor: usize,
}

impl Proc {
    /// Starts `healthchain ARGS` with piped standard streams.
    pub fn start(name: &str, args: &[&str]) -> Proc {
        let mut child = binary()
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the healthchain binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let label = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{label} stderr] {line}");
            }
        });
        Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            cursor: 0,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one line to standard input.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("the process reads its input");
        stdin.flush().expect("flush");
    }

    /// Closes standard input (end of the script).
    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    /// Waits for the next line (after the cursor) that satisfies `pred`, consuming the
    /// lines up to it; panics with everything seen after `TIMEOUT`.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            while self.cursor < self.seen.len() {
                let line = self.seen[self.cursor].clone();
                self.cursor += 1;
                if pred(&line) {
                    return line;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("timed out waiting for {what}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("output ended while waiting for {what}"))
                }
            }
        }
    }

    /// Waits until some line, seen before or after the cursor, contains `text`;
    /// does not move the cursor. For events that may come before a command's answer.
    pub fn saw(&mut self, text: &str) {
        let deadline = Instant::now() + TIMEOUT;
        let mut checked = 0;
        loop {
            if self.seen[checked..].iter().any(|l| l.contains(text)) {
                return;
            }
            checked = self.seen.len();
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => self.fail(&format!("never saw '{text}'")),
            }
        }
    }

    /// Waits for a line starting with `prefix`.
    pub fn expect_prefix(&mut self, prefix: &str) -> String {
        let p = prefix.to_string();
        self.expect(prefix, move |l| l.starts_with(&p))
    }

    /// Waits for a line containing `text`.
    pub fn expect_contains(&mut self, text: &str) -> String {
        let t = text.to_string();
        self.expect(text, move |l| l.contains(&t))
    }

    /// Sends `command` and waits for a line containing `text`.
    pub fn run(&mut self, command: &str, text: &str) -> String {
        self.send(command);
        self.expect_contains(text)
    }

    /// Sends `command` again and again (waiting for `done` each time) until the line
    /// with `done` also satisfies `ok`; for state that arrives from peers.
    pub fn poll(&mut self, command: &str, done: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let line = self.run(command, done);
            if ok(&line) {
                return line;
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "'{command}' never gave the expected answer (last: {line})"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `command` and collects the lines up to and including one matching `last`.
    pub fn collect(&mut self, command: &str, last: &str) -> Vec<String> {
        let start = self.cursor;
        self.send(command);
        self.expect_prefix(last);
        self.seen[start..self.cursor].to_vec()
    }

    /// Waits for the process to exit and returns whether it succeeded.
    pub fn wait(&mut self) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Drain what is left of the output.
                    while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                        self.seen.push(line);
                    }
                    return status.success();
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => self.fail("the process did not exit"),
            }
        }
    }

    /// Kills the process with SIGKILL on Unix (no clean shutdown: nothing is flushed
    /// or closed by the process itself), waits for it to exit, then reads every line
    /// it printed before it died.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread ends at the end of the output: the process is gone.
        while let Ok(line) = self.lines.recv_timeout(TIMEOUT) {
            self.seen.push(line);
        }
    }

    fn fail(&mut self, message: &str) -> ! {
        let _ = self.child.kill();
        panic!(
            "{}: {message}\n--- output of {} ---\n{}",
            self.name,
            self.name,
            self.seen.join("\n")
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // A test failed elsewhere: what this process said may explain it.
            while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
                self.seen.push(line);
            }
            let from = self.seen.len().saturating_sub(40);
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.name,
                self.seen[from..].join("\n")
            );
        }
    }
}

/// Starts a role node on a free port (`--port 0`) and returns it with its address.
pub fn start_node(role: &str, name: &str, data_dir: &Path, peers: &[String]) -> (Proc, String) {
    let dir = data_dir.to_str().expect("utf-8 temp path").to_string();
    let peers = peers.join(",");
    let mut args = vec![role, "--port", "0", "--id", name, "--data-dir", &dir];
    if !peers.is_empty() {
        args.push("--peers");
        args.push(&peers);
    }
    let mut proc = Proc::start(name, &args);
    let line = proc.expect_contains(" listening on ");
    let addr = line
        .split(" listening on ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the start-up line names the address")
        .to_string();
    (proc, addr)
}

/// Starts a doctor node with the HTTP API on a free loopback port; returns it with the
/// API's address (`127.0.0.1:PORT`).
pub fn start_api_doctor(data_dir: &Path) -> (Proc, String) {
    let (proc, _, api) = start_api_node("doctor", "DoctorNode-1", data_dir, &[]);
    (proc, api)
}

/// Starts a role node with the HTTP API, both on free loopback ports; returns it with
/// its peer address and its API address.
pub fn start_api_node(
    role: &str,
    name: &str,
    data_dir: &Path,
    peers: &[String],
) -> (Proc, String, String) {
    let dir = data_dir.to_str().expect("utf-8 temp path").to_string();
    let peers = peers.join(",");
    let mut args = vec![role, "--port", "0", "--id", name, "--data-dir", &dir];
    args.extend(["--api", "127.0.0.1:0"]);
    if !peers.is_empty() {
        args.push("--peers");
        args.push(&peers);
    }
    let mut proc = Proc::start(name, &args);
    let line = proc.expect_contains(" listening on ");
    let addr = line
        .split(" listening on ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the start-up line names the address")
        .to_string();
    let line = proc.expect_contains("block explorer on http://");
    let api = line
        .split("http://")
        .nth(1)
        .expect("the start-up line names the API address")
        .trim()
        .trim_end_matches('/')
        .to_string();
    (proc, addr, api)
}

/// Waits until `node` has `count` pending transactions besides the records of reads
/// the nodes post for the patient's audit (they travel by gossip).
pub fn pending_workflow(node: &mut Proc, count: usize) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        node.send("pending");
        let header = node.expect_contains("pending transaction");
        let listed: usize = header
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let workflow = (0..listed)
            .filter(|_| !node.expect_prefix("  tx ").contains("ACCESS_RECORD"))
            .count();
        if workflow == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: never {count} pending workflow transactions",
            node.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The walkthrough's three nodes (Doctor, Lab, Pharmacy) on free ports with data in
/// `dirs`, each connected to the other two: the nodes and their addresses.
pub fn start_three(dirs: [&Path; 3]) -> ([Proc; 3], [String; 3]) {
    let (doc, doc_addr) = start_node("doctor", "DoctorNode-1", dirs[0], &[]);
    let (lab, lab_addr) = start_node("lab", "LabNode-2", dirs[1], std::slice::from_ref(&doc_addr));
    let (pharm, pharm_addr) = start_node(
        "pharmacy",
        "PharmacyNode-3",
        dirs[2],
        &[doc_addr.clone(), lab_addr.clone()],
    );
    let mut nodes = [doc, lab, pharm];
    for node in &mut nodes {
        node.poll("peers", "onnected peers", |l| {
            l.starts_with("Connected peers (2)")
        });
    }
    (nodes, [doc_addr, lab_addr, pharm_addr])
}
