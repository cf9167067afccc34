//! Shared support for end-to-end tests: the real `berth` binary on a free port, and
//! real test images generated on the spot (never downloaded).

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod dockerd;
pub mod garage;
pub mod image;
pub mod journal;
pub mod lossy;
pub mod nginx;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `berth serve` process.
pub struct Berth {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// Finds a port nobody listens on, below the kernel's ephemeral range (32768 and up), so
/// the thousands of client sockets some tests open never take it before Berth binds it.
pub fn free_port() -> u16 {
    use rand::Rng;
    loop {
        let port = rand::rng().random_range(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Berth {
    /// Starts Berth on `data_dir` and a free port, and waits until `/v2/` answers.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, free_port(), &[])
    }

    /// Starts Berth on `data_dir` and `port`.
    pub fn start_on(data_dir: &Path, port: u16) -> Self {
        Self::start_with(data_dir, port, &[])
    }

    /// Starts Berth on `data_dir` and `port` with extra `BERTH_*` variables. Its
    /// standard error is appended to `data_dir.with_extension("log")`.
    pub fn start_with(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Self {
        Self::launch(data_dir, port, env, Stdio::null())
    }

    /// Like [`Berth::start_with`] on a free port, with standard output appended to
    /// `data_dir.with_extension("out")`.
    pub fn start_keeping_stdout(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let out = append_to(&data_dir.with_extension("out"));
        Self::launch(data_dir, free_port(), env, out.into())
    }

    fn launch(data_dir: &Path, port: u16, env: &[(&str, &str)], stdout: Stdio) -> Self {
        let addr = format!("127.0.0.1:{port}");
        let log = append_to(&data_dir.with_extension("log"));
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["serve", "--listen", &addr, "--data-dir"])
            .arg(data_dir)
            .env("BERTH_LOG__LEVEL", "warn")
            // The core registry's tests run without accounts; auth tests say otherwise
            // (`env` overrides both).
            .env("BERTH_AUTH__MODE", "open")
            // Nor do they pay argon2's 19 MiB at start (the first administrator's hash):
            // freeing it raises glibc's mmap threshold, and the memory guards then
            // measure the allocator's retention rather than the connections' buffers.
            .env("BERTH_AUTH__HASH_MEMORY_KIB", "64")
            .env("BERTH_AUTH__HASH_ITERATIONS", "1")
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .expect("spawning berth");
        let mut berth = Berth {
            child,
            addr,
            data_dir: data_dir.to_owned(),
        };
        berth.wait_ready();
        berth
    }

    /// Waits until this process listens. A process that exits first (its port was
    /// taken by another test between `free_port` and its bind) fails loudly rather than
    /// letting the test talk to whoever holds the port.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("berth exited during start on {}: {status}", self.addr);
            }
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                std::thread::sleep(Duration::from_millis(30));
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!(
                        "berth exited during start on {} (port taken?): {status}",
                        self.addr
                    );
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("berth did not start on {}", self.addr);
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited with status 0.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `path` opened for appending, created if needed.
fn append_to(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// Fails loudly when a client the suite depends on is missing (scripts/test installs them).
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed; run ./scripts/test, which installs it"
    );
}

/// Runs a command, failing the test with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sha256:<hex>` of bytes.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// An HTTP client for tests, with a timeout so a hung server fails the test.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `len` random bytes.
pub fn random_bytes(len: usize) -> Vec<u8> {
    use rand::Rng;
    let mut v = vec![0u8; len];
    rand::rng().fill(&mut v[..]);
    v
}
