//! A real Garage (a distributed S3-compatible store) as a single-node cluster on
//! loopback, with one bucket and one access key, stopped on drop.
//!
//! `scripts/test` installs the binary (`cargo install garage@2.5.0 --locked`) where it
//! is missing; this module finds it on `PATH` or in `~/.cargo/bin`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// The bucket every test Garage holds.
pub const BUCKET: &str = "berth";
/// Its region.
pub const REGION: &str = "garage";
/// The access key id (Garage's format: `GK` and 24 hex digits).
pub const ACCESS_KEY_ID: &str = "GK0123456789abcdef01234567";
/// The secret key (64 hex digits).
pub const SECRET_ACCESS_KEY: &str =
    "c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

/// A running Garage node.
pub struct Garage {
    child: Child,
    /// `http://127.0.0.1:<port>`, its S3 endpoint.
    pub endpoint: String,
}

/// The Garage binary, or a panic saying how to get it.
pub fn binary() -> PathBuf {
    let on_path = Command::new("sh")
        .args(["-c", "command -v garage"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let in_cargo = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin/garage"));
    on_path.or(in_cargo.filter(|p| p.exists())).expect(
        "garage is not installed; ./scripts/test installs it (cargo install garage@2.5.0 --locked)",
    )
}

impl Garage {
    /// Starts a single-node Garage keeping its data under `dir`, and waits until its S3
    /// API answers.
    pub fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let (s3, rpc) = (free_port(), free_port());
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = {meta:?}\n\
                 data_dir = {data:?}\n\
                 db_engine = \"sqlite\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n\
                 [s3_api]\n\
                 s3_region = \"{REGION}\"\n\
                 api_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n",
                meta = dir.join("meta"),
                data = dir.join("data"),
                secret = "5ec2e7".repeat(10) + "5ec2",
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("garage.log")).unwrap();
        let child = Command::new(binary())
            .arg("-c")
            .arg(&config)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY_ID)
            .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_ACCESS_KEY)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting garage");
        let mut garage = Garage {
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
        };
        garage.wait_ready(dir);
        garage
    }

    /// Waits until the S3 API answers (with "403": it refuses anonymous requests) and
    /// the default bucket exists.
    fn wait_ready(&mut self, dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = format!("{}/{BUCKET}", self.endpoint);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("garage.log")).unwrap_or_default();
                panic!("garage exited during start: {status}\n{log}");
            }
            let answered = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &probe])
                .output()
                .map(|o| o.stdout == b"403")
                .unwrap_or(false);
            if answered {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("garage did not start at {}", self.endpoint);
    }

    /// The `BERTH_STORAGE__*` variables that put a node's blobs in this Garage.
    pub fn berth_env(&self) -> Vec<(String, String)> {
        [
            ("BERTH_STORAGE__KIND", "s3"),
            ("BERTH_STORAGE__ENDPOINT", self.endpoint.as_str()),
            ("BERTH_STORAGE__REGION", REGION),
            ("BERTH_STORAGE__BUCKET", BUCKET),
            ("BERTH_STORAGE__PATH_STYLE", "true"),
            ("BERTH_STORAGE__ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("BERTH_STORAGE__SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
