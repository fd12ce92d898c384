//! What the tests need from the machine: Debian packages installed on first
//! use, and a Python virtual environment with independent libraries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Makes sure `command` runs, installing Debian's `package` if it does not.
pub fn ensure_command(command: &str, package: &str) {
    if runs(command) {
        return;
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-q", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        let status = Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("running apt-get");
        assert!(status.success(), "installing {package} failed");
    }
    assert!(
        runs(command),
        "{command} does not run after installing {package}"
    );
}

fn runs(command: &str) -> bool {
    Command::new(command)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A Python virtual environment under the target directory with the given
/// PyPI packages, made once and reused. Returns its python.
pub fn python_with(packages: &[&str]) -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    let python = VENV
        .get_or_init(|| {
            let venv = crate::target_dir().join("palisade-test-venv");
            let python = venv.join("bin").join("python");
            if !python.exists() {
                run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
            }
            python
        })
        .clone();
    install(&python, packages);
    python
}

fn install(python: &Path, packages: &[&str]) {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| !has_module(python, package))
        .collect();
    if missing.is_empty() {
        return;
    }
    run(Command::new(python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(&missing));
}

fn has_module(python: &Path, package: &str) -> bool {
    let module = match package {
        "pyjwt" => "jwt",
        "grpcio" => "grpc",
        "grpcio-health-checking" => "grpc_health",
        "grpcio-csds" => "grpc_csds",
        other => other,
    };
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(command: &mut Command) {
    let status = command.status().expect("running a setup command");
    assert!(status.success(), "setup command failed: {command:?}");
}
