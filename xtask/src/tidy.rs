//! Tidy checks that plain `cargo test` enforces: the layering of the workspace, module docs,
//! the absence of IO in x402-core, and that libraries do not print. Every workspace crate is
//! covered: the list is read from the root manifest's `members`, so a new crate cannot slip
//! past these checks.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::{Path, PathBuf};

    /// Which workspace crates each crate may depend on, as normal and as dev-dependencies
    /// (ARCHITECTURE.md, "Invariants"). Every workspace crate must have a row.
    const LAYERS: &[(&str, &[&str], &[&str])] = &[
        ("x402-core", &[], &[]),
        ("x402-reqwest", &["x402-core"], &["test-support", "devnet"]),
        (
            "compute-api",
            &["x402-core", "x402-reqwest"],
            &["test-support", "devnet"],
        ),
        ("grid-proto", &[], &[]),
        (
            "grid-api",
            &["x402-core", "x402-reqwest", "grid-proto"],
            &["test-support", "devnet"],
        ),
        (
            "sgl-node",
            &["x402-core", "grid-proto"],
            &["test-support", "devnet"],
        ),
        (
            "cli",
            &[
                "x402-core",
                "x402-reqwest",
                "compute-api",
                "grid-api",
                "grid-proto",
            ],
            // The grid's end-to-end tests run a node in process with a test engine.
            &["test-support", "devnet", "sgl-node"],
        ),
        ("devnet", &["x402-core", "grid-proto"], &["test-support"]),
        ("test-support", &["x402-core", "devnet"], &[]),
        ("xtask", &[], &[]),
    ];

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    /// A workspace member: its package name and directory.
    struct Member {
        name: String,
        dir: PathBuf,
    }

    /// The members listed in the root manifest, with the package names their manifests give.
    fn members() -> Vec<Member> {
        let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
        let start = manifest.find("members = [").expect("a `members` list");
        let list = &manifest[start..start + manifest[start..].find(']').unwrap()];
        let members: Vec<Member> = list
            .split('"')
            .skip(1)
            .step_by(2)
            .map(|path| {
                let dir = root().join(path);
                let text = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
                let name = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("name = \""))
                    .and_then(|rest| rest.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("{path}/Cargo.toml has no package name"))
                    .to_owned();
                Member { name, dir }
            })
            .collect();
        assert!(members.len() >= 8, "the members list was not read");
        members
    }

    /// Workspace crates a manifest depends on: `(normal, dev)`.
    fn workspace_dependencies(member: &Member, names: &[String]) -> (Vec<String>, Vec<String>) {
        let text = fs::read_to_string(member.dir.join("Cargo.toml")).unwrap();
        let mut section = "";
        let (mut normal, mut dev) = (Vec::new(), Vec::new());
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
                continue;
            }
            let key = line.split(['=', '.', ' ']).next().unwrap_or("");
            if !names.iter().any(|n| n == key) {
                continue;
            }
            if section.contains("dev-dependencies") {
                dev.push(key.to_owned());
            } else if section.contains("dependencies") {
                normal.push(key.to_owned());
            }
        }
        (normal, dev)
    }

    #[test]
    fn dependencies_point_down_only() {
        let members = members();
        let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        let layers: BTreeMap<&str, (&[&str], &[&str])> = LAYERS
            .iter()
            .map(|(name, normal, dev)| (*name, (*normal, *dev)))
            .collect();
        for member in &members {
            let Some((allowed, allowed_dev)) = layers.get(member.name.as_str()) else {
                panic!(
                    "{} has no row in LAYERS: say which crates it may depend on (and ARCHITECTURE.md)",
                    member.name
                );
            };
            let (normal, dev) = workspace_dependencies(member, &names);
            for dependency in normal {
                assert!(
                    allowed.contains(&dependency.as_str()),
                    "{} must not depend on {dependency} (see ARCHITECTURE.md)",
                    member.name
                );
            }
            for dependency in dev {
                assert!(
                    allowed.contains(&dependency.as_str())
                        || allowed_dev.contains(&dependency.as_str()),
                    "{} must not dev-depend on {dependency} (see ARCHITECTURE.md)",
                    member.name
                );
            }
        }
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
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
        for member in members() {
            let mut files = Vec::new();
            rust_files(&member.dir.join("src"), &mut files);
            assert!(!files.is_empty(), "{} has no sources", member.name);
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
        let core = members()
            .into_iter()
            .find(|m| m.name == "x402-core")
            .unwrap();
        let mut files = Vec::new();
        rust_files(&core.dir.join("src"), &mut files);
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
        for member in members() {
            let src = member.dir.join("src");
            let mut files = Vec::new();
            rust_files(&src, &mut files);
            // Binary code: `src/main.rs`, `src/bin/`, and crates that are only binaries.
            let is_binary_crate = !src.join("lib.rs").exists();
            for file in files {
                if is_binary_crate
                    || file == src.join("main.rs")
                    || file.starts_with(src.join("bin"))
                {
                    continue;
                }
                let text = fs::read_to_string(&file).unwrap();
                for word in ["println!", "eprintln!", "print!", "eprint!", "dbg!"] {
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
