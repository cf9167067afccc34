//! HTTPS with rustls, checked with curl against certificates made by openssl: a server
//! certificate from a private CA, and client-certificate authentication when a client CA
//! is configured.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Berth, free_port, require_tool, run};

/// Makes a CA, a server certificate for 127.0.0.1 and a client certificate in `dir`.
fn make_certificates(dir: &Path) {
    require_tool("openssl");
    let sh = |script: &str| run(Command::new("sh").arg("-c").arg(script).current_dir(dir));
    sh(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=berth-test-ca -keyout ca.key -out ca.crt 2>/dev/null",
    );
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        sh(&format!(
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN={name} \
             -keyout {name}.key -out {name}.csr 2>/dev/null && \
             openssl x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
             -extfile {name}.ext -out {name}.crt 2>/dev/null"
        ));
    }
}

fn curl(args: &[&str], dir: &Path) -> (bool, String) {
    require_tool("curl");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn serves_https_with_the_configured_certificate() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    make_certificates(dir);
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let port = free_port();
    let berth = Berth::start_with(
        &dir.join("data"),
        port,
        &[
            ("BERTH_TLS__CERT", cert.to_str().unwrap()),
            ("BERTH_TLS__KEY", key.to_str().unwrap()),
        ],
    );
    let url = format!("https://{}/v2/", berth.addr);
    let (ok, body) = curl(&["--cacert", "ca.crt", &url], dir);
    assert!(ok && body.trim() == "{}", "HTTPS /v2/: {body}");
    let (ok, _) = curl(&[&url], dir);
    assert!(!ok, "an untrusted certificate must fail verification");
    let (ok, _) = curl(&[&format!("http://{}/v2/", berth.addr)], dir);
    assert!(!ok, "plain HTTP is not served on a TLS listener");
}

#[test]
fn requires_a_client_certificate_when_a_client_ca_is_set() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    make_certificates(dir);
    let path = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    let (cert, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
    let berth = Berth::start_with(
        &dir.join("data"),
        free_port(),
        &[
            ("BERTH_TLS__CERT", &cert),
            ("BERTH_TLS__KEY", &key),
            ("BERTH_TLS__CLIENT_CA", &ca),
        ],
    );
    let url = format!("https://{}/v2/", berth.addr);
    let (ok, _) = curl(&["--cacert", "ca.crt", &url], dir);
    assert!(!ok, "a client without a certificate is refused");
    let (ok, body) = curl(
        &[
            "--cacert",
            "ca.crt",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            &url,
        ],
        dir,
    );
    assert!(
        ok && body.trim() == "{}",
        "with a client certificate: {body}"
    );
}
