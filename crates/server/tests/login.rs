//! Real clients logging in to a secure Berth: the `/v2/` challenge, the token flow,
//! and what anonymous callers may do.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Berth, free_port, image, require_tool, run};

const ADMIN_PASSWORD: &str = "Adm1nPassword";

fn secure(data: &Path) -> Berth {
    Berth::start_with(
        data,
        free_port(),
        &[
            ("BERTH_AUTH__MODE", "secure"),
            ("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("BERTH_AUTH__HASH_MEMORY_KIB", "64"),
            ("BERTH_AUTH__HASH_ITERATIONS", "1"),
        ],
    )
}

fn skopeo(authfile: &Path) -> Command {
    let mut c = Command::new("skopeo");
    c.env("REGISTRY_AUTH_FILE", authfile);
    c
}

#[test]
fn skopeo_logs_in_pushes_with_a_token_and_anonymous_pulls_only_public() {
    require_tool("skopeo");
    let work = tempfile::tempdir().unwrap();
    let berth = secure(&work.path().join("data"));
    let auth = work.path().join("auth.json");
    let layout = work.path().join("layout");
    image::write_layout(&layout, &["amd64"]);

    let wrong = skopeo(&auth)
        .args(["login", "--tls-verify=false", "-u", "admin", "-p", "wrong"])
        .arg(&berth.addr)
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong password logged in");

    // Anonymous pushes are refused, even to the public `library`.
    let anonymous_push = skopeo(&auth)
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{}/library/busybox:latest", berth.addr))
        .output()
        .unwrap();
    assert!(!anonymous_push.status.success(), "anonymous push accepted");

    run(skopeo(&auth)
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "admin",
            "-p",
            ADMIN_PASSWORD,
        ])
        .arg(&berth.addr));
    for repo in ["library/busybox", "private/busybox"] {
        let dest = format!("docker://{}/{repo}:latest", berth.addr);
        let out = skopeo(&auth)
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(&dest)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if repo.starts_with("private") {
            // The project does not exist: the administrator is told to create it.
            assert!(!out.status.success());
            assert!(stderr.contains("not found"), "{stderr}");
        } else {
            assert!(out.status.success(), "{stderr}");
        }
    }
    run(skopeo(&auth).args(["logout", "--all"]));

    // Anonymous pulls from the public project work.
    let inspect = run(skopeo(&auth)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/library/busybox:latest", berth.addr)));
    assert!(inspect.contains("schemaVersion"));
}
