//! What fault tests' clients were told, and the audit that checks it all survived.

use super::sha256;

/// What the server acknowledged, and what was attempted.
#[derive(Default)]
pub struct Journal {
    /// (repository, digest, length) of each blob push answered 201.
    pub blobs: Vec<(String, String, usize)>,
    /// (repository, tag, digest, bytes) of each manifest push answered 201.
    pub manifests: Vec<(String, String, String, Vec<u8>)>,
    /// (repository, digest) of each blob push started.
    pub attempted: Vec<(String, String)>,
}

impl Journal {
    /// Checks against the registry at `url`: every acknowledged blob has its length and
    /// hashes to its digest, every acknowledged manifest is there by tag and by digest,
    /// byte for byte, and every attempted push is absent or whole, never partial.
    pub async fn audit(&self, http: &reqwest::Client, url: &str, manifest_type: &str) {
        for (repo, digest, len) in &self.blobs {
            let r = http
                .get(format!("{url}/v2/{repo}/blobs/{digest}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "acknowledged blob {repo}@{digest} lost");
            let bytes = r
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("reading acknowledged blob {digest}: {e}"));
            assert_eq!(
                bytes.len(),
                *len,
                "acknowledged blob {digest} has another length"
            );
            assert_eq!(
                &sha256(&bytes),
                digest,
                "acknowledged blob {digest} has other bytes"
            );
        }
        for (repo, tag, digest, bytes) in &self.manifests {
            for reference in [tag, digest] {
                let r = http
                    .get(format!("{url}/v2/{repo}/manifests/{reference}"))
                    .header("accept", manifest_type)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status(),
                    200,
                    "acknowledged manifest {repo}:{reference} lost"
                );
                assert_eq!(&r.bytes().await.unwrap()[..], &bytes[..]);
            }
        }
        for (repo, digest) in &self.attempted {
            let r = http
                .get(format!("{url}/v2/{repo}/blobs/{digest}"))
                .send()
                .await
                .unwrap();
            match r.status().as_u16() {
                404 => {}
                200 => assert_eq!(&sha256(&r.bytes().await.unwrap()), digest, "partial blob"),
                s => panic!("unexpected status {s} for {digest}"),
            }
        }
    }
}
