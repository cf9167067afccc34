//! A throw-away S3-compatible server for tests: [`S3Server::start`] runs `s3s-fs` on a
//! free loopback port over a temporary directory holding one empty bucket, and stops it
//! when the value is dropped.
//!
//! The binary is looked for on `PATH`, then in Cargo's `bin` directory; when it is
//! missing it is installed with `cargo install` (once per machine, however many tests
//! ask at the same time). Where it cannot be had, [`S3Server::start`] returns `None`
//! and says so on stderr, so that the suite runs on a machine without it; with
//! `BERTH_REQUIRE_S3=1` (set by CI) it panics instead, so that CI never passes by
//! skipping.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `s3s-fs` release the tests run (newer ones need a newer rustc).
pub const S3S_FS_VERSION: &str = "0.14.1";

/// The region the server is addressed in (it accepts any).
pub const REGION: &str = "us-east-1";

/// How long a started server gets to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Attempts at finding a port nobody takes between its choice and the server's bind.
const PORT_ATTEMPTS: usize = 3;

/// A running S3 server with one bucket, stopped when dropped.
pub struct S3Server {
    child: Child,
    endpoint: String,
    bucket: String,
    access_key_id: String,
    secret_access_key: String,
    /// Holds the stored objects and the server's log; removed after the server stops.
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server with an empty bucket, or returns `None` (after saying why) when
    /// `s3s-fs` can be neither found nor installed and `BERTH_REQUIRE_S3` is not set.
    pub fn start() -> Option<S3Server> {
        let binary = match binary() {
            Ok(path) => path,
            Err(why) if !required() => {
                eprintln!("SKIPPED: no S3 test server: {why}");
                return None;
            }
            Err(why) => panic!("BERTH_REQUIRE_S3 is set but there is no S3 test server: {why}"),
        };
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match S3Server::spawn(&binary) {
                Ok(server) => return Some(server),
                Err(why) => last_failure = why,
            }
        }
        panic!("s3s-fs did not start: {last_failure}");
    }

    /// Runs `binary` on a fresh port and directory, and waits until it accepts
    /// connections.
    fn spawn(binary: &Path) -> Result<S3Server, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
        let bucket = "berth-test".to_owned();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join(&bucket)).map_err(|e| format!("the bucket: {e}"))?;
        let port = free_port().map_err(|e| format!("a free port: {e}"))?;
        let access_key_id = format!("AK{:016X}", rand::random::<u64>());
        let secret_access_key = format!("{:032x}", rand::random::<u128>());
        let log_path = dir.path().join("s3s-fs.log");
        let log = File::create(&log_path).map_err(|e| format!("the log file: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("the log file: {e}"))?;
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &access_key_id])
            .args(["--secret-key", &secret_access_key])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("running {}: {e}", binary.display()))?;
        let mut server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket,
            access_key_id,
            secret_access_key,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(server);
            }
            let exited = server.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("exit status {exited:?}, log:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The server's URL, `http://127.0.0.1:<port>`; requests address buckets by path.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The bucket created for the test.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The access key the server accepts.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret key of [`S3Server::access_key_id`].
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// Where the server keeps the bucket's objects, one file per object.
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join("data").join(&self.bucket)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn required() -> bool {
    std::env::var("BERTH_REQUIRE_S3").is_ok_and(|v| v == "1")
}

/// A loopback port free at the time of asking.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The `s3s-fs` binary, installed first when it is nowhere to be found.
fn binary() -> Result<PathBuf, String> {
    if let Some(found) = find() {
        return Ok(found);
    }
    let bin = cargo_bin_dir().ok_or("neither CARGO_HOME nor HOME is set")?;
    std::fs::create_dir_all(&bin).map_err(|e| format!("creating {}: {e}", bin.display()))?;
    // Tests run as processes of their own: one installs while the others wait for it.
    let lock_path = bin.join(".berth-s3s-fs-install.lock");
    let lock =
        File::create(&lock_path).map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    if let Some(found) = find() {
        return Ok(found);
    }
    install()?;
    find().ok_or_else(|| format!("cargo installed s3s-fs but it is not in {}", bin.display()))
}

/// `s3s-fs` on `PATH` or in Cargo's `bin` directory.
fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(cargo_bin_dir())
        .map(|dir| dir.join("s3s-fs"))
        .find(|candidate| candidate.is_file())
}

/// Where `cargo install` puts binaries.
fn cargo_bin_dir() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    Some(home.join("bin"))
}

/// Builds and installs `s3s-fs` with Cargo (a few minutes).
fn install() -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("installing s3s-fs {S3S_FS_VERSION} with cargo (a few minutes, once per machine)");
    let status = Command::new(&cargo)
        .args(["install", "--locked", "--features", "binary"])
        .arg(format!("s3s-fs@{S3S_FS_VERSION}"))
        // The tests' own target directory must not be locked by the install.
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("running {}: {e}", cargo.to_string_lossy()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo install s3s-fs@{S3S_FS_VERSION} failed ({status})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_server_accepts_connections_until_dropped() {
        let Some(server) = S3Server::start() else {
            return;
        };
        let port: u16 = server
            .endpoint()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok());
        assert!(server.bucket_dir().is_dir());
        let dir = server.dir.path().to_owned();
        drop(server);
        assert!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
            "stopped"
        );
        assert!(!dir.exists(), "its files are removed");
    }
}
