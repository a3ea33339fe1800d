//! What the node says about its machine: only what it can read (§8.1, §8.5). No hardware root
//! of trust is claimed without evidence: the TEE type is `none` unless the operator's
//! platform has one the node can name, and `hardware_attested` is true only with a TDX or
//! SEV-SNP report from configfs-tsm ([`crate::tsm`]) bound to the node's keys and the
//! challenge.

use std::path::Path;

use grid_proto::node::{AttestationVerdict, HardwareReport, TeeEvidence, VerifyAttestation};
use sha2::{Digest, Sha256};

use crate::coordinator::NodeClient;
use crate::identity::Keypair;
use crate::{Error, Result};

/// The machine's facts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hardware {
    /// `linux`, `macos`, ...
    pub os: String,
    /// The kernel release (`/proc/sys/kernel/osrelease`), or empty.
    pub kernel_version: String,
    /// Cores available to the process.
    pub cpu_cores: u32,
    /// RAM in bytes (`/proc/meminfo`), or 0 when unreadable.
    pub memory_bytes: u64,
    /// The GPU model, or `none`.
    pub gpu_model: String,
}

impl Hardware {
    /// Reads the facts from the OS.
    pub fn detect() -> Hardware {
        Hardware {
            os: std::env::consts::OS.to_owned(),
            kernel_version: read_trimmed(Path::new("/proc/sys/kernel/osrelease")),
            cpu_cores: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            memory_bytes: memory_bytes(),
            gpu_model: gpu_model(),
        }
    }

    /// RAM in GB (10⁹ bytes), as registration sends it.
    pub fn ram_gb(&self) -> f64 {
        // Exact for any RAM below 2^53 bytes.
        #[allow(clippy::cast_precision_loss)]
        let bytes = self.memory_bytes as f64;
        (bytes / 1e9 * 100.0).round() / 100.0
    }

    /// The report for an attestation `challenge`, with a hardware TEE report when the
    /// machine gave one (its TEE type is then the report's: `tdx`, `sev-snp`).
    pub fn report(
        &self,
        challenge: &str,
        binary_hash: &str,
        evidence: Option<TeeEvidence>,
    ) -> HardwareReport {
        let tee_type = evidence
            .as_ref()
            .and_then(|e| crate::tsm::tee_type(&e.provider))
            .unwrap_or(default_tee_type());
        HardwareReport {
            challenge: challenge.to_owned(),
            tee_type: tee_type.to_owned(),
            os: self.os.clone(),
            kernel_version: self.kernel_version.clone(),
            cpu_cores: self.cpu_cores,
            memory_bytes: self.memory_bytes,
            gpu_model: self.gpu_model.clone(),
            binary_hash: binary_hash.to_owned(),
            hardware_attested: evidence.is_some(),
            tee_evidence: evidence,
        }
    }
}

/// The TEE type this platform can honestly name: `apple_se` on Apple silicon (which has a
/// Secure Enclave), `none` elsewhere. No hardware attestation is produced either way.
pub fn default_tee_type() -> &'static str {
    match cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        true => "apple_se",
        false => "none",
    }
}

/// Hex SHA-256 of the running executable, or `None` when it cannot be read.
pub fn binary_hash() -> Option<String> {
    let path = std::env::current_exe().ok()?;
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).ok()?;
    Some(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, byte| {
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02x}");
        text
    })
}

/// `sgl attest`: asks for a challenge, signs it, and sends the report signed and bound to it
/// (`grid_proto::envelope::report_message`).
///
/// # Errors
/// The coordinator's refusal or a network error.
pub async fn attest(
    client: &NodeClient,
    keypair: &Keypair,
    hardware: &Hardware,
    binary_hash: &str,
) -> Result<(HardwareReport, AttestationVerdict)> {
    let challenge = client.challenge().await?;
    // A TDX or SEV-SNP guest attaches a hardware report binding both keys and the challenge;
    // without configfs-tsm there is none, and the report says `none`.
    let keys = (
        grid_proto::seal::key_from_b58(&keypair.public_b58()),
        grid_proto::seal::key_from_b58(&keypair.encryption_public_b58()),
    );
    let evidence = match keys {
        (Ok(ed25519), Ok(x25519)) => {
            let data =
                grid_proto::envelope::tee_report_data(&ed25519, &x25519, &challenge.challenge);
            let entry = format!(
                "sgl-{}",
                &hex(&Sha256::digest(challenge.challenge.as_bytes()))[..16]
            );
            match crate::tsm::report(Path::new(crate::tsm::CONFIGFS_TSM_REPORT), &entry, &data) {
                Ok(evidence) => evidence,
                Err(error) => {
                    tracing::warn!(%error, "no TEE report: attesting without one");
                    None
                }
            }
        }
        _ => None,
    };
    let report = hardware.report(&challenge.challenge, binary_hash, evidence);
    let signed = report.signed_json();
    let report_signature = keypair
        .sign(grid_proto::envelope::report_message(&challenge.challenge, &signed).as_bytes());
    let hardware_report =
        serde_json::from_str(&signed).map_err(|e| Error::Protocol(e.to_string()))?;
    let body = VerifyAttestation {
        signature: keypair.sign(challenge.challenge.as_bytes()),
        encryption_public_key: keypair.encryption_public_b58(),
        hardware_report,
        report_signature: Some(report_signature),
    };
    let verdict = client.verify_attestation(&body).await?;
    Ok((report, verdict))
}

fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

fn memory_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    parse_meminfo(&meminfo).unwrap_or(0)
}

/// `MemTotal:  16318480 kB` → bytes.
fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line.split_whitespace().skip(1);
    let number: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => number.checked_mul(1024),
        Some(_) => None,
    }
}

/// The first NVIDIA GPU the driver lists (`/proc/driver/nvidia/gpus/*/information`), an
/// Apple GPU on Apple silicon, else `none`.
fn gpu_model() -> String {
    if let Ok(entries) = std::fs::read_dir("/proc/driver/nvidia/gpus") {
        let mut dirs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let info = read_trimmed(&dir.join("information"));
            if let Some(model) = parse_nvidia_model(&info) {
                return model;
            }
        }
    }
    if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        return "apple_metal".into();
    }
    "none".into()
}

fn parse_nvidia_model(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("Model:"))
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_read_from_the_os_formats() {
        assert_eq!(
            parse_meminfo("MemTotal:       16318480 kB\nMemFree: 1 kB\n"),
            Some(16_318_480 * 1024)
        );
        assert_eq!(parse_meminfo("MemFree: 1 kB"), None);
        assert_eq!(
            parse_nvidia_model("Model: \t\t NVIDIA H100 80GB HBM3\nIRQ: 1"),
            Some("NVIDIA H100 80GB HBM3".into())
        );
        assert_eq!(parse_nvidia_model("IRQ: 1"), None);
        let hardware = Hardware::detect();
        assert!(hardware.cpu_cores >= 1);
        let report = hardware.report("c", "h", None);
        assert!(!report.hardware_attested && report.tee_evidence.is_none());
        assert_eq!(report.challenge, "c");
        let with = hardware.report(
            "c",
            "h",
            Some(TeeEvidence {
                provider: "sev_guest".into(),
                report_data: "00".into(),
                report: "00".into(),
            }),
        );
        assert!(with.hardware_attested);
        assert_eq!(with.tee_type, "sev-snp");
        if cfg!(target_os = "linux") {
            assert_eq!(report.tee_type, "none");
            assert!(hardware.memory_bytes > 0);
            assert!(!hardware.kernel_version.is_empty());
        }
        let hardware = Hardware {
            memory_bytes: 16_318_480 * 1024,
            ..hardware
        };
        assert_eq!(hardware.ram_gb(), 16.71);
    }

    #[test]
    fn the_binary_hash_is_hex_sha256() {
        let hash = binary_hash().unwrap_or_default();
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
