//! A real Harbor client against a secure Berth: `harborapi`, the Python client whose
//! pydantic models validate Harbor's JSON, runs `harbor_client/scenario.py` against the
//! `berth` binary. The client is installed once, pinned, in a virtualenv under the
//! cargo target directory.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{Berth, free_port, image, require_tool};

/// The harborapi release the scenario is written against.
const HARBORAPI: &str = "0.26.2";
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

/// Runs a setup command; on failure, panics with its output and `hint`.
fn setup(cmd: &mut Command, hint: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}\n{hint}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}\n{hint}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// The virtualenv's python, with harborapi installed: made once under the target
/// directory, then reused. A lock keeps concurrent tests from building it twice.
fn harborapi_python() -> PathBuf {
    require_tool("python3");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(tmp).unwrap();
    let venv = tmp.join("harborapi-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("berth-installed");
    let lock = File::create(tmp.join("harborapi-venv.lock")).unwrap();
    lock.lock().unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(HARBORAPI) {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    setup(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "`python3 -m venv` needs Debian's python3-venv package (and python3-pip); \
         ./scripts/test installs both",
    );
    setup(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("harborapi=={HARBORAPI}"),
        ]),
        "pip could not install harborapi from PyPI",
    );
    std::fs::write(&stamp, HARBORAPI).unwrap();
    python
}

/// Runs the whole scenario against a fresh secure Berth; fails with the
/// scenario's output (and Berth's log) when it exits non-zero.
fn scenario() {
    let python = harborapi_python();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let berth = secure(&data);
    let mut cmd = Command::new(&python);
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/harbor_client/scenario.py"
    ))
    .args(["--url", &berth.url(), "--username", "admin"])
    .args(["--password", ADMIN_PASSWORD])
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .env("PYTHONUNBUFFERED", "1")
    .stdin(Stdio::null());
    require_tool("skopeo");
    let layout = work.path().join("layout");
    let digest = image::write_layout(&layout, &["amd64"]);
    cmd.arg("--layout").arg(&layout).args(["--digest", &digest]);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the harborapi scenario failed ({}):\n{}\n{}\n--- berth's log ---\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

#[test]
fn harborapi_drives_the_whole_api() {
    scenario();
}
