//! Harbor's clients against a secure Berth: `harborapi`, the Python client whose
//! pydantic models validate Harbor's JSON, runs `harbor_client/scenario.py` against the
//! `berth` binary, and schemathesis generates requests from Harbor's swagger. Both are
//! installed once, pinned, in a virtualenv under the cargo target directory.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{Berth, free_port, image, require_tool};

/// The Python packages the tests drive Berth with, pinned: the Harbor client the
/// scenario is written against, and the property-based tester driven by Harbor's
/// swagger.
const PACKAGES: &[&str] = &["harborapi==0.26.2", "schemathesis==4.32.5"];
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

/// The virtualenv's `bin` directory, with [`PACKAGES`] installed: made once under the
/// target directory, then reused. A lock keeps concurrent tests from building it twice.
fn venv_bin() -> PathBuf {
    require_tool("python3");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(tmp).unwrap();
    let venv = tmp.join("harbor-clients-venv");
    let bin = venv.join("bin");
    let python = bin.join("python");
    let stamp = venv.join("berth-installed");
    let wanted = PACKAGES.join(" ");
    let lock = File::create(tmp.join("harbor-clients-venv.lock")).unwrap();
    lock.lock().unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return bin;
    }
    let _ = std::fs::remove_dir_all(&venv);
    setup(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "`python3 -m venv` needs Debian's python3-venv package (and python3-pip); \
         ./scripts/test installs both",
    );
    setup(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PACKAGES),
        "pip could not install the Harbor clients from PyPI",
    );
    std::fs::write(&stamp, wanted).unwrap();
    bin
}

/// Runs `cmd`; fails with its output and Berth's log (from `data`) unless it
/// succeeds.
fn expect_success(cmd: &mut Command, data: &Path, what: &str) {
    let out = cmd
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}\n--- berth's log ---\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// The operations of Harbor's swagger that Berth answers (by `operationId`).
const IMPLEMENTED: &str = "^(listUsers|createUser|getUser|updateUserProfile|deleteUser|\
    updateUserPassword|setUserSysAdmin|getCurrentUserInfo|getCurrentUserPermissions|\
    searchUsers|listProjects|headProject|createProject|getProject|updateProject|\
    deleteProject|getProjectDeletable|getProjectSummary|listProjectMetadatas|\
    addProjectMetadatas|getProjectMetadata|updateProjectMetadata|deleteProjectMetadata|\
    listProjectMembers|createProjectMember|getProjectMember|updateProjectMember|\
    deleteProjectMember|ListRobot|CreateRobot|GetRobotByID|UpdateRobot|RefreshSec|\
    DeleteRobot|listAllRepositories|listRepositories|getRepository|updateRepository|\
    deleteRepository|listArtifacts|getArtifact|deleteArtifact|listTags|createTag|\
    deleteTag|listAccessories|listAuditLogs|listAuditLogExts|listAuditLogEventTypes|\
    getLogs|getLogExts|getConfigurations|updateConfigurations|search|getStatistic|\
    getSystemInfo|getPing|getHealth)$";

/// schemathesis generates requests from Harbor's swagger for every operation Berth
/// answers (valid and invalid ones, then stateful sequences) as the administrator:
/// none may answer with a server error.
#[test]
fn schemathesis_finds_no_server_error_in_the_api() {
    let bin = venv_bin();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let berth = secure(&data);
    let mut cmd = Command::new(bin.join("st"));
    cmd.current_dir(work.path())
        .arg("run")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../api/tests/data/harbor-swagger.json"
        ))
        .args(["--url", &format!("{}/api/v2.0", berth.url())])
        .args(["--auth", &format!("admin:{ADMIN_PASSWORD}")])
        .args(["--include-operation-id-regex", IMPLEMENTED])
        .args(["--checks", "not_a_server_error", "--max-examples", "20"])
        .args(["--workers", "1", "--seed", "7", "--no-color"]);
    expect_success(&mut cmd, &data, "schemathesis");
}

/// Runs the whole scenario against a fresh secure Berth; fails with the
/// scenario's output (and Berth's log) when it exits non-zero.
fn scenario() {
    let python = venv_bin().join("python");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let berth = secure(&data);
    let mut cmd = Command::new(&python);
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/harbor_client/scenario.py"
    ))
    .args(["--url", &berth.url(), "--username", "admin"])
    .args(["--password", ADMIN_PASSWORD]);
    require_tool("skopeo");
    let layout = work.path().join("layout");
    let digest = image::write_layout(&layout, &["amd64"]);
    cmd.arg("--layout").arg(&layout).args(["--digest", &digest]);
    expect_success(&mut cmd, &data, "the harborapi scenario");
}

#[test]
fn harborapi_drives_the_whole_api() {
    scenario();
}
