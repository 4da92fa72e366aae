//! Helpers shared by the tests that run `signal` as a user would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `signal sandbox` process on a free loopback port; stopped when dropped.
pub struct SandboxProcess {
    pub child: Child,
    /// e.g. `http://127.0.0.1:41234`
    pub base: String,
}

impl SandboxProcess {
    pub fn start(args: &[&str]) -> SandboxProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signal"))
            .args(["sandbox", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("signal sandbox starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut banner = String::new();
        stdout.read_line(&mut banner).expect("banner");
        let base = banner.trim().rsplit(' ').next().expect("address").to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{banner}");
        // Keep reading so the sandbox never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        SandboxProcess { child, base }
    }

    /// GETs a sandbox URL path and parses the JSON answer.
    pub fn get(&self, path: &str) -> serde_json::Value {
        sender::install_crypto_provider();
        let url = format!("{}{path}", self.base);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime
            .block_on(async { reqwest::get(url).await.expect("sandbox answers").json().await.expect("json") })
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        interrupt(self.child.id());
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGINT to a process, as Ctrl-C does.
pub fn interrupt(pid: u32) {
    let status = Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success());
}
