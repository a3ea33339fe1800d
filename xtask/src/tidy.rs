//! Tidy checks that plain `cargo test` enforces: the layering of the workspace, module docs,
//! and the absence of IO in x402-core.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::{Path, PathBuf};

    const WORKSPACE_CRATES: [&str; 6] = [
        "x402-core",
        "compute-api",
        "grid-api",
        "sgl-node",
        "cli",
        "xtask",
    ];

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    fn manifest_dir(name: &str) -> PathBuf {
        if name == "xtask" {
            root().join("xtask")
        } else {
            root().join("crates").join(name)
        }
    }

    /// Workspace crates each crate depends on, in any dependency section.
    fn workspace_dependencies(name: &str) -> Vec<String> {
        let text = fs::read_to_string(manifest_dir(name).join("Cargo.toml")).unwrap();
        let mut in_dependencies = false;
        let mut found = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_dependencies = line.contains("dependencies");
                continue;
            }
            if !in_dependencies {
                continue;
            }
            let key = line.split(['=', '.', ' ']).next().unwrap_or("");
            if WORKSPACE_CRATES.contains(&key) {
                found.push(key.to_owned());
            }
        }
        found
    }

    #[test]
    fn dependencies_point_down_only() {
        let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
            ("x402-core", &[][..]),
            ("compute-api", &["x402-core"][..]),
            ("grid-api", &["x402-core"][..]),
            ("sgl-node", &["x402-core", "grid-api"][..]),
            ("cli", &["x402-core", "compute-api", "grid-api"][..]),
            ("devnet", &["x402-core"][..]),
            ("xtask", &[][..]),
        ]);
        for (name, allowed) in allowed {
            for dependency in workspace_dependencies(name) {
                assert!(
                    allowed.contains(&dependency.as_str()),
                    "{name} must not depend on {dependency} (see ARCHITECTURE.md)"
                );
            }
        }
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_module_starts_with_a_doc_comment() {
        for name in WORKSPACE_CRATES {
            let mut files = Vec::new();
            rust_files(&manifest_dir(name).join("src"), &mut files);
            for file in files {
                if file.file_name().is_some_and(|f| f == "tests.rs") {
                    continue;
                }
                let text = fs::read_to_string(&file).unwrap();
                assert!(
                    text.starts_with("//!"),
                    "{} must start with a `//!` module doc",
                    file.display()
                );
            }
        }
    }

    #[test]
    fn x402_core_does_no_io() {
        let mut files = Vec::new();
        rust_files(&manifest_dir("x402-core").join("src"), &mut files);
        let forbidden = [
            "std::env",
            "std::fs",
            "std::net",
            "std::process",
            "SystemTime",
            "Instant::now",
            "tokio",
            "reqwest",
            "getrandom",
            "OsRng",
            "thread_rng",
        ];
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            for word in forbidden {
                assert!(
                    !text.contains(word),
                    "{} mentions `{word}`: x402-core performs no IO",
                    file.display()
                );
            }
        }
    }

    #[test]
    fn only_binaries_print() {
        for name in ["x402-core", "compute-api", "grid-api"] {
            let mut files = Vec::new();
            rust_files(&manifest_dir(name).join("src"), &mut files);
            for file in files {
                let text = fs::read_to_string(&file).unwrap();
                for word in ["println!", "eprintln!", "dbg!"] {
                    let in_code = text
                        .lines()
                        .any(|l| l.contains(word) && !l.trim_start().starts_with("//"));
                    assert!(
                        !in_code,
                        "{} uses {word}: libraries emit tracing events, binaries print",
                        file.display()
                    );
                }
            }
        }
    }
}
