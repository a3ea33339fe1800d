//! Finding the `llama-server` binary (§4.2, §8.11): the operator's path when given, else
//! `llama-server` on `PATH`, else the usual install places. Never `llama-cli`: it is not an
//! HTTP server, and the reference node's fallback to it starts a process that never answers.
//!
//! A candidate must be an executable file; an explicit path that is not one is an error (no
//! silent fallback to another binary). Candidates are not run here: the supervisor's first
//! start is the probe, with its output drained and its health checked.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The places looked in after `PATH`.
pub const WELL_KNOWN: [&str; 3] = [
    "/usr/local/bin/llama-server",
    "/opt/homebrew/bin/llama-server",
    "/opt/sgl/bin/llama-server",
];

/// The binary to run: `explicit` (from `--llama-server` or `SGL_LLAMA_SERVER`) when given,
/// else the first executable `llama-server` in `path` (a `PATH`-style list), else in
/// [`WELL_KNOWN`].
///
/// # Errors
/// [`Error::InvalidInput`] when `explicit` is not an executable file, or names `llama-cli`;
/// when nothing is found, saying where it looked and how to point at one.
pub fn find_llama_server(explicit: Option<&Path>, path: Option<&OsStr>) -> Result<PathBuf> {
    if let Some(explicit) = explicit {
        if explicit
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("llama-cli"))
        {
            return Err(Error::InvalidInput(format!(
                "{} is llama-cli, which is not an HTTP server; point --llama-server at llama-server",
                explicit.display()
            )));
        }
        return match is_executable(explicit) {
            true => Ok(explicit.to_path_buf()),
            false => Err(Error::InvalidInput(format!(
                "{} is not an executable file; point --llama-server (or SGL_LLAMA_SERVER) at a llama-server binary",
                explicit.display()
            ))),
        };
    }
    let on_path = path
        .map(|path| {
            std::env::split_paths(path)
                // A relative entry (`.`, or an empty one) would run whatever is in the
                // current directory.
                .filter(|dir| dir.is_absolute())
                .map(|dir| dir.join("llama-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(WELL_KNOWN.iter().map(PathBuf::from))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "no llama-server found on PATH or in {}; install llama.cpp's server, or give its path with --llama-server (or SGL_LLAMA_SERVER)",
                WELL_KNOWN.join(", ")
            ))
        })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn an_explicit_path_must_be_an_executable_llama_server() {
        let dir = tempfile::tempdir().unwrap();
        let good = file(dir.path(), "my-llama-server", 0o755);
        assert_eq!(find_llama_server(Some(&good), None).unwrap(), good);
        let plain = file(dir.path(), "not-exec", 0o644);
        let error = find_llama_server(Some(&plain), None).unwrap_err();
        assert!(error.to_string().contains("not an executable"), "{error}");
        let cli = file(dir.path(), "llama-cli", 0o755);
        let error = find_llama_server(Some(&cli), None).unwrap_err();
        assert!(error.to_string().contains("not an HTTP server"), "{error}");
        let error = find_llama_server(Some(dir.path()), None).unwrap_err();
        assert!(error.to_string().contains("not an executable"), "{error}");
    }

    #[test]
    fn path_is_searched_in_order_and_llama_cli_is_never_taken() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        file(first.path(), "llama-cli", 0o755);
        file(first.path(), "llama-server", 0o644);
        let found = file(second.path(), "llama-server", 0o755);
        let path = std::env::join_paths([first.path(), second.path()]).unwrap();
        assert_eq!(find_llama_server(None, Some(&path)).unwrap(), found);
        let only_cli = std::env::join_paths([first.path()]).unwrap();
        if WELL_KNOWN.iter().all(|p| !is_executable(Path::new(p))) {
            let error = find_llama_server(None, Some(&only_cli)).unwrap_err();
            assert!(error.to_string().contains("--llama-server"), "{error}");
        }
    }
}
