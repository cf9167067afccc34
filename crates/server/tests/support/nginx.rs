//! Debian's nginx as a round-robin load balancer in front of several nodes, configured
//! like `deploy/nginx/berth.conf` (streaming bodies, keepalive to the nodes), on a free
//! loopback port, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A running nginx.
pub struct Nginx {
    child: Child,
    /// Its configuration file and prefix, which `nginx -s stop` needs to find it.
    conf: PathBuf,
    dir: PathBuf,
    /// `127.0.0.1:<port>`.
    pub addr: String,
}

impl Nginx {
    /// Balances over `upstreams` (`host:port` each), keeping its files under `dir`.
    pub fn start(dir: &Path, upstreams: &[String]) -> Self {
        super::require_tool("nginx");
        std::fs::create_dir_all(dir.join("temp")).unwrap();
        let port = free_port();
        let servers: String = upstreams
            .iter()
            .map(|u| format!("        server {u} max_fails=1 fail_timeout=5s;\n"))
            .collect();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\n\
                 worker_processes 1;\n\
                 pid {dir}/nginx.pid;\n\
                 error_log {dir}/error.log warn;\n\
                 events {{ worker_connections 4096; }}\n\
                 http {{\n\
                     access_log {dir}/access.log;\n\
                     client_body_temp_path {dir}/temp/body;\n\
                     proxy_temp_path {dir}/temp/proxy;\n\
                     fastcgi_temp_path {dir}/temp/fastcgi;\n\
                     uwsgi_temp_path {dir}/temp/uwsgi;\n\
                     scgi_temp_path {dir}/temp/scgi;\n\
                     upstream berth {{\n{servers}        keepalive 64;\n        keepalive_timeout 60s;\n    }}\n\
                     server {{\n\
                         listen 127.0.0.1:{port};\n\
                         client_max_body_size 0;\n\
                         client_body_timeout 120s;\n\
                         location / {{\n\
                             proxy_pass http://berth;\n\
                             proxy_http_version 1.1;\n\
                             proxy_set_header Connection \"\";\n\
                             proxy_set_header Host $http_host;\n\
                             proxy_request_buffering off;\n\
                             proxy_buffering off;\n\
                             proxy_connect_timeout 2s;\n\
                             proxy_read_timeout 300s;\n\
                             proxy_send_timeout 300s;\n\
                             proxy_next_upstream error timeout;\n\
                             proxy_next_upstream_tries 2;\n\
                         }}\n\
                     }}\n\
                 }}\n",
                dir = dir.display(),
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("starting nginx");
        let mut nginx = Nginx {
            child,
            conf,
            dir: dir.to_owned(),
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&nginx.addr).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
                panic!("nginx exited during start: {status}\n{log}");
            }
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }
}

impl Drop for Nginx {
    /// Stops the master and its worker (`nginx -s stop`): killing the master alone
    /// would leave the worker running, and listening, after the test.
    fn drop(&mut self) {
        let stopped = Command::new("nginx")
            .arg("-c")
            .arg(&self.conf)
            .arg("-p")
            .arg(&self.dir)
            .args(["-s", "stop"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while stopped && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
