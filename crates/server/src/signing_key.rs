//! The registry token signing key: read from its file, or generated at first start
//! and kept (readable by the owner only), so tokens stay valid across restarts.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use berth_app::identity::SigningKey;

/// The PEM text of the key at `path`, generating a P-256 key there when the file does
/// not exist.
pub fn load_or_generate(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(pem) => return Ok(pem),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("reading {}", path.display()));
        }
        Err(_) => {}
    }
    let pem = SigningKey::generate_pem()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temp = path.with_extension("pem.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    // Another process starting at the same time may have won: keep its key.
    match rustix::fs::renameat_with(
        rustix::fs::CWD,
        &temp,
        rustix::fs::CWD,
        path,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        Ok(()) => {
            std::fs::File::open(dir)?.sync_all()?;
            tracing::info!(path = %path.display(), "generated the token signing key");
        }
        Err(rustix::io::Errno::EXIST) => {
            let _ = std::fs::remove_file(&temp);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(std::io::Error::from(e))
                .with_context(|| format!("creating {}", path.display()));
        }
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_generated_key_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/token.pem");
        let first = load_or_generate(&path).unwrap();
        assert!(SigningKey::from_pem(&first).is_ok());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        assert_eq!(load_or_generate(&path).unwrap(), first);
    }
}
