//! The service unit `sgl service install` writes (§5.3): a systemd user unit on Linux, hardened
//! as the reference's, with one deliberate difference: `ProtectHome=tmpfs` with the config,
//! log and model paths bound back in, instead of `ProtectHome=true`, which hides an `sgl` or a
//! model kept under `$HOME` (the reference's documented pitfall) while still keeping the rest
//! of the home directory (SSH keys, wallets) out of the node's sight. The llama-server's
//! directory is bound in read-only too. `KillMode=mixed`: SIGTERM reaches `sgl` alone, which
//! lets running jobs finish (30 s) and hands back the rest before it stops llama-server;
//! `TimeoutStopSec=180` covers that drain and the hand-back posts. `Type=notify`: `sgl start` says when it is ready
//! (`sd-notify`) and keeps a `STATUS=` line with its engine's phase for `systemctl status`.
//! A plain function, tested on every OS; `systemd-analyze verify` checks it where systemd is
//! installed.
//!
//! On macOS a launchd agent (`~/Library/LaunchAgents/<LABEL>.plist`): `caffeinate -i` keeps
//! the machine awake, `RunAtLoad`, `KeepAlive`, `ThrottleInterval` 15, `ProcessType`
//! Interactive, logs in `~/Library/Logs/sgl-node.log`; written with the `plist` library.

use std::path::{Path, PathBuf};

/// The service's label (the reference's).
pub const LABEL: &str = "cc.x402compute.sglnode";

/// What the unit runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceSpec {
    /// The `sgl` executable.
    pub exe: PathBuf,
    /// The arguments after the executable (`--orchestrator-url …`, `--config-dir …`, `start`,
    /// its flags).
    pub args: Vec<String>,
    /// The model file, made readable inside the sandbox.
    pub model_path: Option<PathBuf>,
    /// The directories of the `llama-server` the node runs (its own, and its libraries'),
    /// made readable inside the sandbox.
    pub engine_dirs: Vec<PathBuf>,
}

impl ServiceSpec {
    /// A unit running `exe` with `args`.
    pub fn new(exe: PathBuf, args: Vec<String>) -> ServiceSpec {
        ServiceSpec {
            exe,
            args,
            model_path: None,
            engine_dirs: Vec::new(),
        }
    }
}

/// Where the user unit goes: `$XDG_CONFIG_HOME/systemd/user/<LABEL>.service` (the config home
/// is passed in: only the binary reads the environment).
pub fn systemd_unit_path(config_home: &Path) -> PathBuf {
    config_home
        .join("systemd/user")
        .join(format!("{LABEL}.service"))
}

/// One word of an `ExecStart=` line: quoted, with `\` and `"` escaped, and systemd's
/// specifiers (`%`) and variables (`$`) doubled so they stay literal.
fn exec_word(word: &str) -> String {
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('"');
    for c in word.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '%' => quoted.push_str("%%"),
            '$' => quoted.push_str("$$"),
            '\n' | '\r' => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A path in a `*Paths=` list: `-` (skip when missing) and spaces escaped.
fn path_item(path: &Path) -> String {
    let text = path.display().to_string().replace('%', "%%");
    format!("-{}", text.replace(' ', "\\x20"))
}

/// The systemd user unit for `spec`.
pub fn systemd_unit(spec: &ServiceSpec) -> String {
    let exec: Vec<String> = std::iter::once(spec.exe.display().to_string())
        .chain(spec.args.iter().cloned())
        .map(|w| exec_word(&w))
        .collect();
    let mut read_only = vec![path_item(&spec.exe)];
    if let Some(model) = &spec.model_path {
        read_only.push(path_item(model));
    }
    read_only.extend(spec.engine_dirs.iter().map(|dir| path_item(dir)));
    format!(
        "# Written by `sgl service install`; `sgl service uninstall` removes it.
[Unit]
Description=SGL grid node (sgl)
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec}
Restart=always
RestartSec=15
KillMode=mixed
TimeoutStopSec=180
StandardOutput=append:%h/.local/share/sgl-node/sgl-node.log
StandardError=append:%h/.local/share/sgl-node/sgl-node.log
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=tmpfs
BindPaths=-%h/.config/sgl-node -%h/.local/share/sgl-node
BindReadOnlyPaths={read_only}
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
LockPersonality=yes
RemoveIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @obsolete @mount @reboot @swap @raw-io @cpu-emulation
SystemCallErrorNumber=EPERM

[Install]
WantedBy=default.target
",
        exec = exec.join(" "),
        read_only = read_only.join(" "),
    )
}

/// Where the launchd agent goes, under the user's home.
pub fn launchd_plist_path(home: &Path) -> PathBuf {
    home.join("Library/LaunchAgents")
        .join(format!("{LABEL}.plist"))
}

/// The launchd agent for `spec` (XML property list), logging under `home`.
///
/// # Errors
/// [`crate::Error::InvalidInput`] when the property list cannot be written (it always can
/// for these values).
pub fn launchd_plist(spec: &ServiceSpec, home: &Path) -> crate::Result<String> {
    use plist::{Dictionary, Value};
    let program: Vec<Value> = ["/usr/bin/caffeinate".to_owned(), "-i".to_owned()]
        .into_iter()
        .chain(std::iter::once(spec.exe.display().to_string()))
        .chain(spec.args.iter().cloned())
        .map(Value::String)
        .collect();
    let log = home.join("Library/Logs/sgl-node.log").display().to_string();
    let mut agent = Dictionary::new();
    agent.insert("Label".into(), Value::String(LABEL.into()));
    agent.insert("ProgramArguments".into(), Value::Array(program));
    agent.insert("RunAtLoad".into(), Value::Boolean(true));
    agent.insert("KeepAlive".into(), Value::Boolean(true));
    agent.insert("ThrottleInterval".into(), Value::Integer(15.into()));
    agent.insert("ProcessType".into(), Value::String("Interactive".into()));
    agent.insert("StandardOutPath".into(), Value::String(log.clone()));
    agent.insert("StandardErrorPath".into(), Value::String(log));
    agent.insert(
        "WorkingDirectory".into(),
        Value::String(home.display().to_string()),
    );
    let mut xml = Vec::new();
    Value::Dictionary(agent)
        .to_writer_xml(&mut xml)
        .map_err(|e| crate::Error::InvalidInput(format!("cannot write the launchd agent: {e}")))?;
    String::from_utf8(xml)
        .map_err(|e| crate::Error::InvalidInput(format!("cannot write the launchd agent: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec() -> ServiceSpec {
        let mut spec = ServiceSpec::new(
            PathBuf::from("/opt/sgl/bin/sgl"),
            vec![
                "--orchestrator-url".into(),
                "https://grid.x402compute.cc".into(),
                "start".into(),
                "--model-name".into(),
                "odd \"name\" 100% $HOME".into(),
            ],
        );
        spec.model_path = Some(PathBuf::from("/models/my model.gguf"));
        spec.engine_dirs = vec![PathBuf::from("/opt/llama/bin")];
        spec
    }

    #[test]
    fn the_unit_is_hardened_and_its_words_stay_literal() {
        let unit = systemd_unit(&spec());
        for line in [
            "Restart=always",
            "RestartSec=15",
            "KillMode=mixed",
            "TimeoutStopSec=180",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=tmpfs",
            "CapabilityBoundingSet=",
            "SystemCallErrorNumber=EPERM",
            "WantedBy=default.target",
            "After=network-online.target",
            "BindReadOnlyPaths=-/opt/sgl/bin/sgl -/models/my\\x20model.gguf -/opt/llama/bin",
            "Type=notify",
            "NotifyAccess=main",
        ] {
            assert!(unit.lines().any(|l| l == line), "missing {line}:\n{unit}");
        }
        let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        assert_eq!(
            exec,
            r#"ExecStart="/opt/sgl/bin/sgl" "--orchestrator-url" "https://grid.x402compute.cc" "start" "--model-name" "odd \"name\" 100%% $$HOME""#
        );
        assert!(!unit.contains("PrivateDevices"), "GPUs must stay reachable");
        assert_eq!(
            systemd_unit_path(Path::new("/home/op/.config")),
            PathBuf::from("/home/op/.config/systemd/user/cc.x402compute.sglnode.service")
        );
    }

    #[test]
    fn the_launchd_agent_has_the_keys_launchd_reads() {
        let home = Path::new("/Users/op");
        let xml = launchd_plist(&spec(), home).unwrap();
        let agent = plist::Value::from_reader_xml(xml.as_bytes()).unwrap();
        let agent = agent.as_dictionary().unwrap();
        assert_eq!(agent["Label"].as_string(), Some(LABEL));
        let program: Vec<&str> = agent["ProgramArguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_string().unwrap())
            .collect();
        assert_eq!(
            program[..4],
            [
                "/usr/bin/caffeinate",
                "-i",
                "/opt/sgl/bin/sgl",
                "--orchestrator-url"
            ]
        );
        // Arguments are list items: nothing to quote, the odd name arrives whole.
        assert_eq!(program.last(), Some(&"odd \"name\" 100% $HOME"));
        assert_eq!(agent["RunAtLoad"].as_boolean(), Some(true));
        assert_eq!(agent["KeepAlive"].as_boolean(), Some(true));
        assert_eq!(agent["ThrottleInterval"].as_signed_integer(), Some(15));
        assert_eq!(agent["ProcessType"].as_string(), Some("Interactive"));
        assert_eq!(
            agent["StandardErrorPath"].as_string(),
            Some("/Users/op/Library/Logs/sgl-node.log")
        );
        assert_eq!(
            launchd_plist_path(home),
            PathBuf::from("/Users/op/Library/LaunchAgents/cc.x402compute.sglnode.plist")
        );
    }
}
