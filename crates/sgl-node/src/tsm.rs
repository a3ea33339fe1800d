//! Hardware TEE evidence through Linux configfs-tsm (`/sys/kernel/config/tsm/report`, Linux
//! 6.7+), for a node running in a TDX or SEV-SNP guest (§6, §8.1). A report entry is a
//! directory: write 64 bytes of report data to `inblob`, read the signed report from
//! `outblob`; `provider` names the TEE and `generation` counts writes (a count other than one
//! means another writer raced ours). The report data binds the node's two keys and the
//! coordinator's challenge ([`grid_proto::envelope::tee_report_data`]), so the quote cannot be
//! replayed for another node or challenge.
//!
//! On a machine without configfs-tsm there is no evidence, and the node says so (`none`).

use std::path::Path;

use grid_proto::envelope::report_data_offset;
use grid_proto::node::TeeEvidence;

use crate::hardware::hex;
use crate::{Error, Result};

/// Where the kernel exposes configfs-tsm reports.
pub const CONFIGFS_TSM_REPORT: &str = "/sys/kernel/config/tsm/report";

/// The TEE type a configfs-tsm provider stands for.
pub fn tee_type(provider: &str) -> Option<&'static str> {
    match provider {
        "tdx_guest" => Some("tdx"),
        "sev_guest" => Some("sev-snp"),
        _ => None,
    }
}

/// The configfs-tsm provider at `root` (`tdx_guest`, `sev_guest`), read from a scratch
/// entry that is removed again; `None` without configfs-tsm.
pub fn provider(root: &Path) -> Option<String> {
    if !root.is_dir() {
        return None;
    }
    let dir = root.join("sgl-detect");
    let created = std::fs::create_dir(&dir).is_ok();
    let provider = std::fs::read_to_string(dir.join("provider"))
        .ok()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty());
    if created {
        let _ = std::fs::remove_dir(&dir);
    }
    provider
}

/// A report with `report_data` from the configfs-tsm tree at `root`, in the entry `entry`;
/// `None` when the machine has no configfs-tsm.
///
/// # Errors
/// [`Error::Attestation`] when the tree is there but the report cannot be made: an unknown
/// provider, a raced write, or a report that does not carry the report data.
pub fn report(root: &Path, entry: &str, report_data: &[u8; 64]) -> Result<Option<TeeEvidence>> {
    if !root.is_dir() {
        return Ok(None);
    }
    let dir = root.join(entry);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(error) => {
            return Err(Error::Attestation(format!(
                "cannot create a configfs-tsm report entry in {}: {error}",
                root.display()
            )));
        }
    }
    let made = make(&dir, report_data);
    // configfs removes the entry with its attributes; elsewhere this may fail harmlessly.
    let _ = std::fs::remove_dir(&dir);
    made.map(Some)
}

fn make(dir: &Path, report_data: &[u8; 64]) -> Result<TeeEvidence> {
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .map_err(|e| Error::Attestation(format!("configfs-tsm `{name}` cannot be read: {e}")))
    };
    let provider = String::from_utf8_lossy(&read("provider")?)
        .trim()
        .to_owned();
    let offset = report_data_offset(&provider).ok_or_else(|| {
        Error::Attestation(format!(
            "configfs-tsm provider `{}` is not one the node knows (tdx_guest, sev_guest)",
            provider.escape_debug()
        ))
    })?;
    std::fs::write(dir.join("inblob"), report_data)
        .map_err(|e| Error::Attestation(format!("configfs-tsm `inblob` cannot be written: {e}")))?;
    let outblob = read("outblob")?;
    let generation = String::from_utf8_lossy(&read("generation")?)
        .trim()
        .to_owned();
    if generation != "1" {
        return Err(Error::Attestation(format!(
            "configfs-tsm generation is {generation}, not 1: another writer raced this report; retry"
        )));
    }
    if outblob.get(offset..offset + 64) != Some(&report_data[..]) {
        return Err(Error::Attestation(
            "the TEE report does not carry the report data written: refusing it".into(),
        ));
    }
    Ok(TeeEvidence {
        provider,
        report_data: hex(report_data),
        report: hex(&outblob),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A fake configfs-tsm entry as the kernel would present it once `inblob` is written:
    /// `provider`, `generation` 1, and an `outblob` carrying `data` at the provider's offset.
    fn fake(root: &Path, entry: &str, provider: &str, data: &[u8; 64]) {
        let dir = root.join(entry);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("provider"), format!("{provider}\n")).unwrap();
        std::fs::write(dir.join("generation"), "1\n").unwrap();
        let offset = report_data_offset(provider).unwrap_or(0);
        let mut outblob = vec![0xa5u8; offset + 64 + 100];
        outblob[offset..offset + 64].copy_from_slice(data);
        std::fs::write(dir.join("outblob"), outblob).unwrap();
    }

    #[test]
    fn a_tdx_report_binds_both_keys_and_the_challenge() {
        let root = tempfile::tempdir().unwrap();
        let data = grid_proto::envelope::tee_report_data(&[1; 32], &[2; 32], "challenge-1");
        fake(root.path(), "sgl-1", "tdx_guest", &data);
        let evidence = report(root.path(), "sgl-1", &data).unwrap().unwrap();
        // The exact bytes written to inblob: SHA-512(ed25519 ‖ X25519 ‖ challenge).
        let written = std::fs::read(root.path().join("sgl-1/inblob")).unwrap();
        assert_eq!(written, data.to_vec());
        assert_eq!(evidence.provider, "tdx_guest");
        assert_eq!(evidence.report_data, hex(&data));
        assert_eq!(tee_type(&evidence.provider), Some("tdx"));
        // SEV-SNP too, at its own offset.
        fake(root.path(), "sgl-2", "sev_guest", &data);
        let evidence = report(root.path(), "sgl-2", &data).unwrap().unwrap();
        assert_eq!(tee_type(&evidence.provider), Some("sev-snp"));
    }

    #[test]
    fn the_provider_is_read_from_the_tree() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(provider(&root.path().join("absent")), None);
        fake(root.path(), "sgl-detect", "sev_guest", &[0; 64]);
        assert_eq!(provider(root.path()).as_deref(), Some("sev_guest"));
    }

    #[test]
    fn no_tree_is_no_evidence_and_a_bad_report_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let data = [7u8; 64];
        assert_eq!(
            report(&root.path().join("absent"), "e", &data).unwrap(),
            None
        );
        // A report carrying other report data (a replay) is refused.
        fake(root.path(), "other", "tdx_guest", &[8u8; 64]);
        assert!(report(root.path(), "other", &data).is_err());
        // An unknown provider, and a raced generation.
        fake(root.path(), "odd", "arm_cca_guest", &data);
        assert!(report(root.path(), "odd", &data).is_err());
        fake(root.path(), "raced", "tdx_guest", &data);
        std::fs::write(root.path().join("raced/generation"), "2").unwrap();
        let error = report(root.path(), "raced", &data).unwrap_err();
        assert!(error.to_string().contains("raced"), "{error}");
    }
}
