//! Real container images written as OCI layouts: a busybox-static root filesystem (from
//! Debian's busybox-static package) packed as a gzip layer, single-arch or multi-arch.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::sha256;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn put_blob(layout: &Path, data: &[u8]) -> serde_json::Value {
    let digest = sha256(data);
    let path = layout.join("blobs/sha256").join(&digest[7..]);
    std::fs::write(path, data).unwrap();
    json!({ "digest": digest, "size": data.len() })
}

/// A deterministic tar of a tiny root filesystem: busybox and its applet links, plus `extra`.
fn rootfs_tar(extra: &str) -> Vec<u8> {
    let busybox =
        std::fs::read("/bin/busybox").expect("/bin/busybox (Debian busybox-static) is required");
    let mut tar = tar::Builder::new(Vec::new());
    let add_dir = |tar: &mut tar::Builder<Vec<u8>>, name: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_data(&mut h, name, std::io::empty()).unwrap();
    };
    for dir in ["bin", "etc", "tmp"] {
        add_dir(&mut tar, dir);
    }
    let file = |tar: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        tar.append_data(&mut h, name, data).unwrap();
    };
    file(&mut tar, "bin/busybox", 0o755, &busybox);
    file(
        &mut tar,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n",
    );
    file(&mut tar, "etc/image-info", 0o644, extra.as_bytes());
    for applet in ["sh", "echo", "cat", "ls", "uname", "true"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    tar.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Writes one image for `arch`; returns its manifest descriptor.
fn image(layout: &Path, arch: &str) -> serde_json::Value {
    let tar = rootfs_tar(&format!("berth test image for {arch}\n"));
    let layer = put_blob(layout, &gzip(&tar));
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [sha256(&tar)] },
        "history": [{ "created_by": "berth tests" }],
    }))
    .unwrap();
    let config = put_blob(layout, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"] },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer["digest"], "size": layer["size"] }],
    }))
    .unwrap();
    let m = put_blob(layout, &manifest);
    json!({ "mediaType": MANIFEST, "digest": m["digest"], "size": m["size"], "platform": { "architecture": arch, "os": "linux" } })
}

/// Writes an OCI layout at `layout` whose tag `latest` is one image per architecture in
/// `archs` (an index when there are several); returns the digest the tag points at.
pub fn write_layout(layout: &Path, archs: &[&str]) -> String {
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let images: Vec<_> = archs.iter().map(|a| image(layout, a)).collect();
    let top = if images.len() == 1 {
        images[0].clone()
    } else {
        let index = serde_json::to_vec(
            &json!({ "schemaVersion": 2, "mediaType": INDEX, "manifests": images }),
        )
        .unwrap();
        let d = put_blob(layout, &index);
        json!({ "mediaType": INDEX, "digest": d["digest"], "size": d["size"] })
    };
    let mut tagged = top.clone();
    tagged["annotations"] = json!({ "org.opencontainers.image.ref.name": "latest" });
    let index = json!({ "schemaVersion": 2, "mediaType": INDEX, "manifests": [tagged] });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    top["digest"].as_str().unwrap().to_owned()
}

/// Writes an OCI layout whose tag `latest` is a single-arch image with the busybox
/// layer and one more layer per entry of `extra_layers` (a file of that many random
/// bytes each); returns the manifest's digest.
pub fn write_layered_layout(layout: &Path, extra_layers: &[usize]) -> String {
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut tars = vec![rootfs_tar("berth layered test image\n")];
    for (i, &len) in extra_layers.iter().enumerate() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(len as u64);
        h.set_mtime(0);
        tar.append_data(
            &mut h,
            format!("data/layer-{i}"),
            &super::random_bytes(len)[..],
        )
        .unwrap();
        tars.push(tar.into_inner().unwrap());
    }
    let layers: Vec<_> = tars
        .iter()
        .map(|tar| {
            let blob = put_blob(layout, &gzip(tar));
            json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob["digest"], "size": blob["size"] })
        })
        .collect();
    let diff_ids: Vec<_> = tars.iter().map(|t| sha256(t)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap();
    let config = put_blob(layout, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"] },
        "layers": layers,
    }))
    .unwrap();
    let m = put_blob(layout, &manifest);
    let tagged = json!({ "mediaType": MANIFEST, "digest": m["digest"], "size": m["size"],
        "annotations": { "org.opencontainers.image.ref.name": "latest" } });
    let index = json!({ "schemaVersion": 2, "mediaType": INDEX, "manifests": [tagged] });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    m["digest"].as_str().unwrap().to_owned()
}
