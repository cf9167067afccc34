//! The filesystem store's retired copies (`retired/<alg>/<xx>/<hex>.<token>`), on the
//! filesystem of `blobs/`, so that retiring a blob is one rename and restoring it one
//! hard link (the copy is kept, at no cost in space), each made durable as publishing
//! is.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_oci::Digest;

use crate::durable_dirs::{DurableDirs, sync_dir};
use crate::fs::{metadata_if_present, sorted_names};
use crate::port::RetiredBlob;

/// The directory of the copies of `digest` retired below the store's `root`.
fn shard(root: &Path, digest: &Digest) -> PathBuf {
    root.join("retired")
        .join(digest.algorithm().as_str())
        .join(&digest.encoded()[..2])
}

/// Where the copy of `digest` retired under `token` lives, below the store's `root`.
pub(crate) fn retired_path(root: &Path, digest: &Digest, token: &str) -> PathBuf {
    shard(root, digest).join(format!("{}.{token}", digest.encoded()))
}

fn parent(path: &Path) -> &Path {
    path.parent().expect("store paths have a parent")
}

/// Moves the blob at `blob` to `to`, stamped with the time of the move (the recovery's
/// grace period counts from it), and makes the stamp and both directories durable: a
/// copy whose stamp fell back to the blob's publishing after a power loss could be
/// discarded by a recovery while its sweep is still under way. An absent blob is no
/// error.
pub(crate) fn retire(dirs: &DurableDirs, blob: &Path, to: &Path) -> io::Result<()> {
    dirs.ensure(parent(to))?;
    match std::fs::rename(blob, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        moved => moved?,
    }
    let copy = File::options().write(true).open(to)?;
    copy.set_modified(SystemTime::now())?;
    copy.sync_all()?;
    sync_dir(parent(to))?;
    sync_dir(parent(blob))
}

/// Deletes the retired copy at `path`; an absent one is no error. Its removal need not
/// be durable: a copy back after a power loss is discarded again.
pub(crate) fn discard(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Links the retired copy at `from` back as `blob` unless a blob is there, durably, and
/// keeps the copy; returns whether it went back. An absent copy is no error.
pub(crate) fn restore(dirs: &DurableDirs, from: &Path, blob: &Path) -> io::Result<bool> {
    dirs.ensure(parent(blob))?;
    match std::fs::hard_link(from, blob) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::AlreadyExists
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
        Ok(()) => sync_dir(parent(blob)).map(|()| true),
    }
}

/// The retired copies below `root` (`<alg>/<xx>/<hex>.<token>`) after `after`, in the
/// order of their names, up to `limit`; names that are no digest and token are passed
/// over. Directories before the cursor's are not read.
pub(crate) fn list(
    root: &Path,
    after: Option<&RetiredBlob>,
    limit: usize,
) -> io::Result<Vec<RetiredBlob>> {
    let cursor = after.map(|a| {
        let hex = a.digest.encoded();
        (
            a.digest.algorithm().as_str(),
            &hex[..2],
            (hex, a.token.as_str()),
        )
    });
    let mut found = Vec::new();
    for algorithm in sorted_names(root)? {
        if cursor.is_some_and(|(alg, _, _)| algorithm.as_str() < alg) {
            continue;
        }
        for prefix in sorted_names(&root.join(&algorithm))? {
            let at = cursor.filter(|(alg, _, _)| algorithm == *alg);
            if at.is_some_and(|(_, shard, _)| prefix.as_str() < shard) {
                continue;
            }
            let copies = list_shard(&root.join(&algorithm).join(&prefix), &algorithm)?;
            let past = |c: &RetiredBlob| {
                at.is_none_or(|(_, _, last)| (c.digest.encoded(), c.token.as_str()) > last)
            };
            found.extend(copies.into_iter().filter(past).take(limit - found.len()));
            if found.len() == limit {
                return Ok(found);
            }
        }
    }
    Ok(found)
}

/// The copies of `digest` retired below the store's `root`.
pub(crate) fn copies_of(root: &Path, digest: &Digest) -> io::Result<Vec<RetiredBlob>> {
    let copies = list_shard(&shard(root, digest), digest.algorithm().as_str())?;
    Ok(copies.into_iter().filter(|c| c.digest == *digest).collect())
}

/// The retired copies in `dir`, one shard of `algorithm`'s.
fn list_shard(dir: &Path, algorithm: &str) -> io::Result<Vec<RetiredBlob>> {
    let mut found = Vec::new();
    for name in sorted_names(dir)? {
        let Some((hex, token)) = name.split_once('.') else {
            continue;
        };
        let Ok(digest) = Digest::parse(&format!("{algorithm}:{hex}")) else {
            continue;
        };
        let Some(meta) = metadata_if_present(&dir.join(&name))? else {
            continue;
        };
        found.push(RetiredBlob {
            digest,
            token: token.to_owned(),
            size: meta.len(),
            retired: meta.modified()?,
        });
    }
    Ok(found)
}
