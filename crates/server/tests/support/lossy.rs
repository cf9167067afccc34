//! Drives `lossy_fs.py`, a FUSE filesystem that keeps only what was fsynced when the
//! power is cut (see the script for the rules it follows).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's interpreter, which sees the `python3-pyfuse3` package (another `python3`
/// first on `PATH` may not).
const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/lossy_fs.py");

/// A mounted lossy filesystem; unmounted when dropped.
pub struct LossyFs {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    log: PathBuf,
}

/// Fails loudly, never skips, when this machine cannot run the filesystem.
fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: the power-loss test needs FUSE (the fuse kernel module and \
         /dev/fuse inside this container); it cannot run here"
    );
    let imports = Command::new(PYTHON)
        .args(["-c", "import pyfuse3, trio"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        imports,
        "{PYTHON} cannot import pyfuse3 and trio; run ./scripts/test, which installs \
         python3-pyfuse3 and fuse3"
    );
}

impl LossyFs {
    /// Mounts an empty lossy filesystem on `mountpoint` (an empty directory), keeping its
    /// files under `backing` (an empty directory elsewhere).
    pub fn mount(backing: &Path, mountpoint: &Path) -> Self {
        require_fuse();
        let log = backing.with_extension("log");
        let mut child = Command::new(PYTHON)
            .arg(SCRIPT)
            .arg(backing)
            .arg(mountpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {PYTHON} {SCRIPT}: {e}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut fs = LossyFs {
            child,
            stdin,
            stdout,
            mountpoint: mountpoint.to_owned(),
            log,
        };
        let answer = fs.answer();
        assert_eq!(
            answer,
            "ready",
            "mounting {}: {}",
            mountpoint.display(),
            fs.log()
        );
        fs
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn answer(&mut self) -> String {
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line.trim().to_owned()
    }

    fn command(&mut self, command: &str, expected: &str) {
        let stdin = self.stdin.as_mut().expect("still mounted");
        writeln!(stdin, "{command}").expect("lossy_fs stopped");
        stdin.flush().unwrap();
        let answer = self.answer();
        assert_eq!(answer, expected, "lossy_fs `{command}`: {}", self.log());
    }

    /// Makes everything written so far durable, as `sync` and a long wait would.
    pub fn sync(&mut self) {
        self.command("sync", "synced");
    }

    /// Cuts the power: writes what would be on disk afterwards into `out` (created here).
    pub fn cut(&mut self, out: &Path) {
        std::fs::create_dir(out).unwrap();
        self.command(&format!("cut {}", out.display()), "cut");
    }

    /// Unmounts and waits for the filesystem to exit.
    pub fn unmount(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        drop(self.stdin.take()); // EOF: the script unmounts and exits.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(&self.mountpoint)
            .status();
    }
}

impl Drop for LossyFs {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            self.stop();
        }
    }
}
