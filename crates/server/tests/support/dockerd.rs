//! A private dockerd for a test (no iptables, no bridge), stopped when dropped.

use std::path::Path;
use std::process::Command;

use super::require_tool;

/// A private dockerd for the test, stopped when dropped.
pub struct Dockerd {
    child: std::process::Child,
    host: String,
}

impl Dockerd {
    /// Starts dockerd with its state under `work`.
    pub fn start(work: &Path) -> Self {
        require_tool("dockerd");
        let exec = work.join("exec");
        std::fs::create_dir_all(&exec).unwrap();
        let host = format!("unix://{}/docker.sock", exec.display());
        let log = std::fs::File::create(work.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(work.join("data"))
            .arg("--exec-root")
            .arg(&exec)
            .arg("--pidfile")
            .arg(exec.join("dockerd.pid"))
            .args([
                "-H",
                &host,
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-forward=false",
                "--ip-masq=false",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let d = Dockerd { child, host };
        for _ in 0..120 {
            if d.docker()
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
            {
                return d;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!(
            "dockerd did not start: {}",
            std::fs::read_to_string(work.join("dockerd.log")).unwrap_or_default()
        );
    }

    /// A `docker` command talking to this daemon.
    pub fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &self.host);
        c
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
