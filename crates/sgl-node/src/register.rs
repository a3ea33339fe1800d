//! Joining the grid (§3.3, §3.4): register with a wallet and a single-use registration code
//! (from `--code` or from device login), and keep the answer in `node.json`.

use std::time::Duration;

use grid_proto::node::{DeviceStart, RegisterRequest};

use crate::coordinator::Coordinator;
use crate::files::{ConfigDir, NodeFile};
use crate::hardware::Hardware;
use crate::{Error, Result};

/// What `init`/`login` register with.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Registration {
    /// The operator's Solana wallet.
    pub wallet_address: String,
    /// The single-use code (the devnet coordinator requires one).
    pub registration_code: Option<String>,
    /// The TEE type to register ([`crate::hardware::default_tee_type`] by default).
    pub tee_type: String,
    /// Models to seed the registration with.
    pub models: Vec<String>,
}

impl Registration {
    /// A registration for `wallet_address` with this platform's TEE type, no code, no models.
    pub fn new(wallet_address: impl Into<String>) -> Registration {
        Registration {
            wallet_address: wallet_address.into(),
            registration_code: None,
            tee_type: crate::hardware::default_tee_type().to_owned(),
            models: Vec::new(),
        }
    }
}

/// Registers the node and writes `node.json` (the key in `keypair.json` is made first, or
/// reused). Refuses when `node.json` exists.
///
/// # Errors
/// [`Error::AlreadyRegistered`], the coordinator's refusal, [`Error::Io`].
pub async fn register(
    coordinator: &Coordinator,
    dir: &ConfigDir,
    registration: &Registration,
    hardware: &Hardware,
) -> Result<NodeFile> {
    dir.ensure_unregistered()?;
    let wallet = registration.wallet_address.trim();
    if wallet.is_empty() {
        return Err(Error::InvalidInput("the wallet address is empty".into()));
    }
    let keypair = dir.load_or_create_keypair()?;
    let request = RegisterRequest {
        wallet_address: wallet.to_owned(),
        registration_code: registration.registration_code.clone(),
        tee_type: registration.tee_type.clone(),
        available_models: registration.models.clone(),
        public_key: keypair.public_b58(),
        cpu_cores: hardware.cpu_cores,
        ram_gb: hardware.ram_gb(),
        gpu_model: hardware.gpu_model.clone(),
        supported_runtimes: vec!["llama.cpp".into()],
    };
    let answer = coordinator.register(&request).await?;
    let node = NodeFile {
        node_id: answer.node_id,
        auth_token: crate::identity::AuthToken::new(answer.auth_token),
        wallet_address: wallet.to_owned(),
        tee_type: registration.tee_type.clone(),
        orchestrator_url: coordinator.url().to_string(),
        keypair_path: dir.keypair_path(),
    };
    dir.save_node(&node)?;
    Ok(node)
}

/// A device login's approval: the wallet that approved and its code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The wallet.
    pub wallet_address: String,
    /// The single-use registration code.
    pub registration_code: String,
}

/// The poll interval and the most polls for a device login (§3.4): `max(interval, 2)`
/// seconds, at most `expires_in / interval + 2` polls (200 when `expires_in` is 0).
pub fn poll_schedule(start: &DeviceStart) -> (Duration, u64) {
    let interval = start.interval.max(2);
    let polls = match start.expires_in {
        0 => 200,
        expires => expires / interval + 2,
    };
    (Duration::from_secs(interval), polls)
}

/// Polls a started device login until it is approved (`show` was already given the user
/// code and URL by the caller).
///
/// # Errors
/// [`Error::Login`] when it expired or ran out of polls; the coordinator's errors.
pub async fn wait_for_approval(coordinator: &Coordinator, start: &DeviceStart) -> Result<Approval> {
    let (interval, polls) = poll_schedule(start);
    for _ in 0..polls {
        tokio::time::sleep(interval).await;
        let poll = match coordinator.device_poll(&start.device_code).await {
            Ok(poll) => poll,
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, "device login poll failed; polling on");
                continue;
            }
            Err(error) => return Err(error),
        };
        match poll.status.as_str() {
            "approved" => {
                let (Some(wallet_address), Some(registration_code)) =
                    (poll.wallet_address, poll.registration_code)
                else {
                    return Err(Error::Login(
                        "was approved without a wallet and a registration code".into(),
                    ));
                };
                return Ok(Approval {
                    wallet_address,
                    registration_code,
                });
            }
            "expired" => {
                return Err(Error::Login(
                    "expired before it was approved; run `sgl login` again".into(),
                ));
            }
            _ => {}
        }
    }
    Err(Error::Login(
        "was not approved in time; run `sgl login` again".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(interval: u64, expires_in: u64) -> DeviceStart {
        DeviceStart {
            device_code: "d".into(),
            user_code: "u".into(),
            verify_url: "https://x".into(),
            interval,
            expires_in,
        }
    }

    #[test]
    fn polls_at_least_two_seconds_apart_and_stop_with_the_codes() {
        assert_eq!(poll_schedule(&start(3, 600)), (Duration::from_secs(3), 202));
        assert_eq!(poll_schedule(&start(1, 10)), (Duration::from_secs(2), 7));
        assert_eq!(poll_schedule(&start(0, 0)), (Duration::from_secs(2), 200));
    }
}
