//! Real registry clients from Debian against the real `berth` binary: skopeo copies a
//! multi-arch image in and out with digests unchanged, podman pushes and pulls, and the
//! docker CLI (through a private dockerd) pulls, tags and pushes.

mod support;

use std::path::Path;
use std::process::Command;

use support::dockerd::Dockerd;
use support::{Berth, image, require_tool, run};

/// Copies a generated image into Berth with skopeo; returns the digest of `latest`.
fn seed(berth: &Berth, work: &Path, repo: &str, archs: &[&str]) -> String {
    require_tool("skopeo");
    let layout = work.join("layout");
    let digest = image::write_layout(&layout, archs);
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{}/{repo}:latest", berth.addr)));
    digest
}

#[test]
fn skopeo_copies_a_multi_arch_image_in_and_out_unchanged() {
    let work = tempfile::tempdir().unwrap();
    let berth = Berth::start(&work.path().join("data"));
    let digest = seed(&berth, work.path(), "test/busybox", &["amd64", "arm64"]);

    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/test/busybox:latest", berth.addr)));
    assert_eq!(
        support::sha256(raw.as_bytes()),
        digest,
        "the index is stored byte for byte"
    );
    let tags = run(Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/test/busybox", berth.addr)));
    assert!(tags.contains("\"latest\""), "{tags}");

    let out = work.path().join("out");
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{}/test/busybox:latest", berth.addr))
        .arg(format!("oci:{}:back", out.display())));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"].as_str().unwrap(), digest);
    for arch in ["amd64", "arm64"] {
        let inspect = run(Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--override-arch", arch])
            .arg(format!("docker://{}/test/busybox:latest", berth.addr)));
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        assert_eq!(v["Architecture"], arch);
    }
    run(Command::new("skopeo")
        .args(["delete", "--tls-verify=false"])
        .arg(format!("docker://{}/test/busybox@{digest}", berth.addr)));
    let gone = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/test/busybox:latest", berth.addr))
        .output()
        .unwrap();
    assert!(!gone.status.success(), "deleted index still served");
}

#[test]
fn podman_pushes_and_pulls_oci_and_docker_formats() {
    require_tool("podman");
    let work = tempfile::tempdir().unwrap();
    let berth = Berth::start(&work.path().join("data"));
    seed(&berth, work.path(), "test/busybox", &["amd64"]);
    let root = work.path().join("podman-root");
    let runroot = work.path().join("podman-run");
    let podman = || {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .arg("--storage-driver=vfs");
        c
    };
    let src = format!("{}/test/busybox:latest", berth.addr);
    run(podman().args(["pull", "-q", "--tls-verify=false", &src]));
    for (format, media_type) in [
        ("oci", "application/vnd.oci.image.manifest.v1+json"),
        (
            "v2s2",
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    ] {
        let dst = format!("{}/test/podman:{format}", berth.addr);
        run(podman().args([
            "push",
            "-q",
            "--tls-verify=false",
            "--format",
            format,
            &src,
            &dst,
        ]));
        run(podman().args(["rmi", "-f", &dst]));
        run(podman().args(["pull", "-q", "--tls-verify=false", &dst]));
        let raw = run(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{dst}")));
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["mediaType"], media_type);
    }
}

#[test]
fn docker_pulls_tags_and_pushes() {
    let work = tempfile::tempdir().unwrap();
    let berth = Berth::start(&work.path().join("data"));
    seed(&berth, work.path(), "test/busybox", &["amd64"]);
    let dockerd = Dockerd::start(&work.path().join("docker"));
    let src = format!("{}/test/busybox:latest", berth.addr);
    let dst = format!("{}/test/docker:v1", berth.addr);
    run(dockerd.docker().args(["pull", "-q", &src]));
    run(dockerd.docker().args(["tag", &src, &dst]));
    run(dockerd.docker().args(["push", &dst]));
    run(dockerd.docker().args(["rmi", &dst, &src]));
    run(dockerd.docker().args(["pull", "-q", &dst]));
    let tags = run(Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/test/docker", berth.addr)));
    assert!(tags.contains("\"v1\""), "{tags}");
}
