//! Parsing a `/v2/` path into the operation it names.

use berth_oci::{NameError, RepositoryName};

/// A `/v2/` endpoint, as named by the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`: API version check.
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepositoryName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepositoryName, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepositoryName, String),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepositoryName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepositoryName, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepositoryName, String),
}

/// The access a request needs; authorization will check it against the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No repository access (the version check).
    None,
    /// List repositories.
    Catalog,
    /// Read from a repository.
    Pull,
    /// Write to a repository.
    Push,
    /// Delete from a repository.
    Delete,
}

/// Why a path names no endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The repository name part is invalid.
    Name(NameError),
    /// The path matches no endpoint.
    NotFound,
}

impl Endpoint {
    /// Parses the part of the path after `/v2/`.
    pub fn parse(rest: &str) -> Result<Self, RouteError> {
        if rest.is_empty() {
            return Ok(Endpoint::Base);
        }
        if rest == "_catalog" {
            return Ok(Endpoint::Catalog);
        }
        let segs: Vec<&str> = rest.split('/').collect();
        let n = segs.len();
        let name = |upto: usize| -> Result<RepositoryName, RouteError> {
            if upto == 0 {
                return Err(RouteError::NotFound);
            }
            RepositoryName::parse(&segs[..upto].join("/")).map_err(RouteError::Name)
        };
        let last = segs[n - 1].to_owned();
        if n >= 3 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
            let repo = name(n - 3)?;
            return Ok(if last.is_empty() {
                Endpoint::UploadStart(repo)
            } else {
                Endpoint::Upload(repo, last)
            });
        }
        if n >= 2 {
            match (segs[n - 2], segs[n - 1]) {
                ("tags", "list") => return Ok(Endpoint::Tags(name(n - 2)?)),
                ("blobs", "uploads") => return Ok(Endpoint::UploadStart(name(n - 2)?)),
                ("manifests", _) => return Ok(Endpoint::Manifest(name(n - 2)?, last)),
                ("blobs", _) => return Ok(Endpoint::Blob(name(n - 2)?, last)),
                ("referrers", _) => return Ok(Endpoint::Referrers(name(n - 2)?, last)),
                _ => {}
            }
        }
        // A reference spanning several segments (`blobs/sha256:../../etc/passwd`, a tag
        // `a/b`) still names its endpoint, so the reference is refused as invalid (400)
        // rather than the path as unknown; no such reference can ever be valid.
        if let Some(i) = (1..n.saturating_sub(1))
            .rev()
            .find(|&i| matches!(segs[i], "manifests" | "blobs" | "referrers"))
        {
            let repo = name(i)?;
            let reference = segs[i + 1..].join("/");
            return Ok(match segs[i] {
                "manifests" => Endpoint::Manifest(repo, reference),
                "referrers" => Endpoint::Referrers(repo, reference),
                _ => match reference.strip_prefix("uploads/") {
                    Some(id) => Endpoint::Upload(repo, id.to_owned()),
                    None => Endpoint::Blob(repo, reference),
                },
            });
        }
        Err(RouteError::NotFound)
    }

    /// The access a request with `method` on this endpoint needs.
    pub fn access(&self, method: &http::Method) -> Access {
        use http::Method;
        match self {
            Endpoint::Base => Access::None,
            Endpoint::Catalog => Access::Catalog,
            // Cancelling an upload is part of pushing, not a delete of content.
            Endpoint::Upload(..) if *method == Method::DELETE => Access::Push,
            _ if *method == Method::DELETE => Access::Delete,
            _ if *method == Method::GET || *method == Method::HEAD => match self {
                // Reading an upload's status is part of pushing.
                Endpoint::Upload(..) => Access::Push,
                _ => Access::Pull,
            },
            _ => Access::Push,
        }
    }

    /// The repository named by the path, if any.
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Endpoint::Base | Endpoint::Catalog => None,
            Endpoint::Tags(r)
            | Endpoint::Manifest(r, _)
            | Endpoint::Blob(r, _)
            | Endpoint::UploadStart(r)
            | Endpoint::Upload(r, _)
            | Endpoint::Referrers(r, _) => Some(r),
        }
    }

    /// A low-cardinality label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Endpoint::Base => "base",
            Endpoint::Catalog => "catalog",
            Endpoint::Tags(_) => "tags",
            Endpoint::Manifest(..) => "manifest",
            Endpoint::Blob(..) => "blob",
            Endpoint::UploadStart(_) => "upload_start",
            Endpoint::Upload(..) => "upload",
            Endpoint::Referrers(..) => "referrers",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, expected: &str) {
        let got = match Endpoint::parse(path) {
            Ok(e) => format!(
                "{} {}",
                e.label(),
                e.repository().map_or("", |r| r.as_str())
            ),
            Err(RouteError::Name(_)) => "name-invalid".into(),
            Err(RouteError::NotFound) => "not-found".into(),
        };
        assert_eq!(got.trim(), expected, "{path}");
    }

    #[test]
    fn paths_name_endpoints_at_any_depth() {
        check("", "base");
        check("_catalog", "catalog");
        check("a/b/c/tags/list", "tags a/b/c");
        check("lib/x/manifests/latest", "manifest lib/x");
        check("blobs/blobs/sha256:00", "blob blobs");
        check("x/blobs/uploads/", "upload_start x");
        check("x/blobs/uploads", "upload_start x");
        check("x/blobs/uploads/abc", "upload x");
        check("a/tags/list/blobs/uploads/", "upload_start a/tags/list");
        check("x/referrers/sha256:00", "referrers x");
        check("Foo/tags/list", "name-invalid");
        check("a/../b/tags/list", "name-invalid");
        check("a%2Fb/tags/list", "name-invalid");
        check("manifests/latest", "not-found");
        check("x/unknown", "not-found");
        check("_catalog/", "not-found");
        check("x/tags/list/", "not-found");
        check("x/blobs/sha256:../../etc/passwd", "blob x");
        check("a/b/manifests/v1/x", "manifest a/b");
        check("x/manifests/latest/", "manifest x");
        check("x/referrers/sha256:../x", "referrers x");
        check("x/blobs/uploads/abc/def", "upload x");
        check("Foo/blobs/sha256:../x", "name-invalid");
    }

    #[test]
    fn access_follows_the_method() {
        let m = Endpoint::parse("p/x/manifests/latest").unwrap();
        assert_eq!(m.access(&http::Method::GET), Access::Pull);
        assert_eq!(m.access(&http::Method::PUT), Access::Push);
        assert_eq!(m.access(&http::Method::DELETE), Access::Delete);
        let u = Endpoint::parse("p/x/blobs/uploads/abc").unwrap();
        assert_eq!(u.access(&http::Method::GET), Access::Push);
        assert_eq!(u.access(&http::Method::DELETE), Access::Push);
    }
}
