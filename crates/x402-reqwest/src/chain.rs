//! Asking the chain about a journalled payment whose outcome is unknown: the second way
//! `x402c payments reconcile` resolves one (the first is resending it to the server).
//!
//! The rule (`x402.md` §13): a payment is proven **unpaid** only when the chain never saw it
//! *and* it can no longer land: an EIP-3009 authorization past `validBefore` with its nonce
//! unused, a permit past its deadline with the owner's nonce unmoved, a Solana transaction
//! whose blockhash expired and that no transaction of the payer's carries. Times are the
//! chain's (its latest block's timestamp), never this machine's clock.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider as _;
use serde_json::Value;
use x402_core::{Network, PaymentPayload};

use crate::{Entry, Error, endpoint_for, install_crypto_provider};

/// What the chain says about a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnChain {
    /// The chain used it: money moved (the transaction, where the chain names it). For a
    /// permit, the allowance was granted and the payee can pull it.
    Used {
        /// The transaction, when found.
        transaction: Option<String>,
    },
    /// It can no longer land and the chain never used it: nothing moved, nothing will.
    Expired {
        /// Why, with the chain's time.
        why: String,
    },
    /// Not used yet, and still valid: it may still land. Ask again after `until` (unix
    /// seconds, on the chain's clock).
    Open {
        /// When it stops being able to land.
        until: u64,
    },
}

alloy::sol! {
    #[sol(rpc)]
    interface Eip3009 {
        function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);
        event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    }
}

alloy::sol! {
    #[sol(rpc)]
    interface Erc2612Nonces {
        function nonces(address owner) external view returns (uint256);
    }
}

/// The most of a payer's recent Solana transactions searched for a payment's signature; a
/// payer with more gets no proof of absence (the payment stays pending).
#[cfg(feature = "solana")]
const SIGNATURE_SEARCH_LIMIT: usize = 1000;

/// How far back [`ChainCheck`] looks for an authorization's transaction (blocks): about five
/// hours on Base. A longer range is refused by many public endpoints; the payment is still
/// proven used without it, only its transaction is not named.
const LOG_LOOKBACK_BLOCKS: u64 = 10_000;

/// Asks chains about payments: one JSON-RPC endpoint per network.
#[derive(Clone, Debug, Default)]
pub struct ChainCheck {
    evm: Vec<(Network, reqwest::Url)>,
    solana: Vec<(Network, String)>,
    http: Option<reqwest::Client>,
}

fn unreadable(entry: &Entry, what: &str) -> Error {
    Error::Journal(format!("payment {}: {what}", entry.id))
}

fn rpc_failed(network: &Network, error: impl std::fmt::Display) -> Error {
    Error::Chain(format!("asking {network}: {error}"))
}

impl ChainCheck {
    /// No endpoints yet.
    pub fn new() -> ChainCheck {
        ChainCheck::default()
    }

    /// Asks `network` (EVM) at `url`.
    #[must_use]
    pub fn evm(mut self, network: Network, url: reqwest::Url) -> ChainCheck {
        self.evm.push((network, url));
        self
    }

    /// Asks `network` (Solana) at `url`.
    #[must_use]
    pub fn solana(mut self, network: Network, url: impl Into<String>) -> ChainCheck {
        self.solana.push((network, url.into()));
        self
    }

    /// Calls EVM endpoints through `http` (a [`crate::Transport`]'s client).
    #[must_use]
    pub fn client(mut self, http: reqwest::Client) -> ChainCheck {
        self.http = Some(http);
        self
    }

    /// What the chain says about `entry`'s payment.
    ///
    /// # Errors
    /// [`Error::Chain`] when no endpoint serves its network or the chain cannot be asked;
    /// [`Error::Journal`] when the journalled payment is unreadable.
    pub async fn check(&self, entry: &Entry) -> Result<OnChain, Error> {
        let payload = PaymentPayload::from_header_value(&entry.payment.header_value)
            .map_err(|e| unreadable(entry, &format!("its signed payment is unreadable: {e}")))?;
        let network = payload.network().clone();
        let json: Value = serde_json::from_str(payload.payload_json().get())
            .map_err(|e| unreadable(entry, &format!("its payload is not JSON: {e}")))?;
        if network.is_solana() {
            return self.solana_check(entry, &network, &json).await;
        }
        let url = endpoint_for(&self.evm, &network, "asking the chain").map_err(|_| {
            Error::Chain(format!(
                "no RPC endpoint for {network}: give one (`--rpc {network}=URL`) to ask the chain"
            ))
        })?;
        install_crypto_provider();
        let provider = match &self.http {
            Some(http) => {
                alloy::providers::ProviderBuilder::new().connect_reqwest(http.clone(), url)
            }
            None => alloy::providers::ProviderBuilder::new().connect_http(url),
        };
        // The endpoint must serve the payment's chain: another chain's answer proves nothing.
        if let Some(expected) = network.chain_id() {
            let served = provider
                .get_chain_id()
                .await
                .map_err(|e| rpc_failed(&network, e))?;
            if served != expected {
                return Err(Error::Chain(format!(
                    "the RPC endpoint for {network} serves chain {served}, not {expected}: fix `--rpc {network}=URL`"
                )));
            }
        }
        let token: Address = entry
            .payment
            .asset
            .parse()
            .map_err(|_| unreadable(entry, "its asset is not an EVM address"))?;
        let latest = provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| rpc_failed(&network, e))?
            .ok_or_else(|| rpc_failed(&network, "no latest block"))?;
        let (now, head) = (latest.header.timestamp, latest.header.number);
        let number = |value: &Value, what: &str| -> Result<U256, Error> {
            value
                .as_str()
                .and_then(|s| s.parse::<U256>().ok())
                .ok_or_else(|| unreadable(entry, &format!("its {what} is not a number")))
        };
        let address = |value: &Value, what: &str| -> Result<Address, Error> {
            value
                .as_str()
                .and_then(|s| s.parse::<Address>().ok())
                .ok_or_else(|| unreadable(entry, &format!("its {what} is not an address")))
        };
        if let Some(authorization) = json.get("authorization") {
            let from = address(&authorization["from"], "payer")?;
            let nonce: B256 = authorization["nonce"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| unreadable(entry, "its nonce is not 32 bytes of hex"))?;
            let valid_before = number(&authorization["validBefore"], "validBefore")?;
            let contract = Eip3009::new(token, &provider);
            let used = contract
                .authorizationState(from, nonce)
                .call()
                .await
                .map_err(|e| rpc_failed(&network, e))?;
            if used {
                let filter = alloy::rpc::types::Filter::new()
                    .address(token)
                    .event_signature(
                        <Eip3009::AuthorizationUsed as alloy::sol_types::SolEvent>::SIGNATURE_HASH,
                    )
                    .topic1(from.into_word())
                    .topic2(nonce)
                    .from_block(head.saturating_sub(LOG_LOOKBACK_BLOCKS))
                    .to_block(head);
                let transaction = match provider.get_logs(&filter).await {
                    Ok(logs) => logs
                        .first()
                        .and_then(|log| log.transaction_hash)
                        .map(|hash| hash.to_string()),
                    Err(error) => {
                        tracing::debug!(%error, "cannot search the authorization's log");
                        None
                    }
                };
                return Ok(OnChain::Used { transaction });
            }
            // receiveWithAuthorization needs `block.timestamp < validBefore`.
            return Ok(if U256::from(now) >= valid_before {
                OnChain::Expired {
                    why: format!(
                        "its authorization is unused and expired at {valid_before} (the chain's time is {now})"
                    ),
                }
            } else {
                OnChain::Open {
                    until: u64::try_from(valid_before).unwrap_or(u64::MAX),
                }
            });
        }
        if let Some(permit) = json.get("permit") {
            let owner = address(&permit["owner"], "permit owner")?;
            let nonce = number(&permit["nonce"], "permit nonce")?;
            let deadline = number(&permit["deadline"], "permit deadline")?;
            let current = Erc2612Nonces::new(token, &provider)
                .nonces(owner)
                .call()
                .await
                .map_err(|e| rpc_failed(&network, e))?;
            if current > nonce {
                return Ok(OnChain::Used { transaction: None });
            }
            // permit() needs `block.timestamp <= deadline`.
            return Ok(if U256::from(now) > deadline {
                OnChain::Expired {
                    why: format!(
                        "its permit (nonce {nonce}) is unused and its deadline {deadline} passed (the chain's time is {now})"
                    ),
                }
            } else {
                OnChain::Open {
                    until: u64::try_from(deadline).unwrap_or(u64::MAX),
                }
            });
        }
        Err(unreadable(
            entry,
            "its payload is neither an EIP-3009 authorization nor a permit",
        ))
    }

    #[cfg(not(feature = "solana"))]
    async fn solana_check(
        &self,
        _entry: &Entry,
        network: &Network,
        _json: &Value,
    ) -> Result<OnChain, Error> {
        Err(Error::Chain(format!(
            "asking {network} needs this crate's `solana` feature"
        )))
    }

    #[cfg(feature = "solana")]
    async fn solana_check(
        &self,
        entry: &Entry,
        network: &Network,
        json: &Value,
    ) -> Result<OnChain, Error> {
        use solana_rpc_client::nonblocking::rpc_client::RpcClient;
        let url = endpoint_for(&self.solana, network, "asking the chain").map_err(|_| {
            Error::Chain(format!(
                "no RPC endpoint for {network}: give one (`--rpc {network}=URL`) to ask the chain"
            ))
        })?;
        let transaction = json["transaction"]
            .as_str()
            .and_then(|text| x402_core::svm::decode_transaction(text).ok())
            .ok_or_else(|| unreadable(entry, "its transaction is unreadable"))?;
        // The fee payer's slot (first) is empty until the facilitator signs; ours is the
        // signed one, and the key at its index is the paying wallet.
        let (index, ours) = transaction
            .signatures
            .iter()
            .enumerate()
            .find(|(_, s)| **s != solana_signature::Signature::default())
            .map(|(i, s)| (i, *s))
            .ok_or_else(|| unreadable(entry, "its transaction is not signed"))?;
        let payer = *transaction
            .message
            .static_account_keys()
            .get(index)
            .ok_or_else(|| unreadable(entry, "its transaction's signer is missing"))?;
        let blockhash = *transaction.message.recent_blockhash();
        let rpc = RpcClient::new(url);
        // Ask whether the blockhash is still valid first: a transaction that lands after the
        // search below would otherwise be missed.
        let valid = rpc
            .is_blockhash_valid(&blockhash, solana_commitment())
            .await
            .map_err(|e| rpc_failed(network, e))?;
        match self.find_solana(&rpc, network, &payer, &ours).await? {
            Some((signature, true)) => {
                return Ok(OnChain::Used {
                    transaction: Some(signature),
                });
            }
            // Processed and failed: nothing moved (the fee is the fee payer's), and the same
            // transaction cannot be processed again.
            Some((signature, false)) => {
                return Ok(OnChain::Expired {
                    why: format!("its transaction {signature} failed on chain"),
                });
            }
            None => {}
        }
        Ok(if valid {
            OnChain::Open { until: 0 }
        } else {
            OnChain::Expired {
                why: format!(
                    "its blockhash {blockhash} expired and no transaction of {payer} carries its signature"
                ),
            }
        })
    }

    /// The transaction among `payer`'s recent ones that carries `ours` (the payer's own
    /// signature; the transaction's id is the fee payer's, which only the facilitator knows),
    /// and whether it succeeded.
    #[cfg(feature = "solana")]
    async fn find_solana(
        &self,
        rpc: &solana_rpc_client::nonblocking::rpc_client::RpcClient,
        network: &Network,
        payer: &solana_pubkey::Pubkey,
        ours: &solana_signature::Signature,
    ) -> Result<Option<(String, bool)>, Error> {
        // At `confirmed`, as the blockhash check: a transfer that landed in the last valid
        // slots is confirmed before it is finalized, and must not be missed.
        let config = solana_rpc_client::rpc_client::GetConfirmedSignaturesForAddress2Config {
            before: None,
            until: None,
            limit: Some(SIGNATURE_SEARCH_LIMIT),
            commitment: Some(solana_commitment()),
        };
        let recent = rpc
            .get_signatures_for_address_with_config(payer, config)
            .await
            .map_err(|e| rpc_failed(network, e))?;
        let complete = recent.len() < SIGNATURE_SEARCH_LIMIT;
        for found in recent {
            let Ok(signature) = found.signature.parse::<solana_signature::Signature>() else {
                continue;
            };
            if signature == *ours {
                return Ok(Some((found.signature, found.err.is_none())));
            }
            let config = solana_rpc_client_api::config::RpcTransactionConfig {
                encoding: Some(
                    solana_transaction_status_client_types::UiTransactionEncoding::Base64,
                ),
                commitment: Some(solana_commitment()),
                max_supported_transaction_version: Some(0),
            };
            let transaction = rpc
                .get_transaction_with_config(&signature, config)
                .await
                .map_err(|e| rpc_failed(network, e))?;
            let Some(decoded) = transaction.transaction.transaction.decode() else {
                continue;
            };
            if decoded.signatures.contains(ours) {
                return Ok(Some((found.signature, found.err.is_none())));
            }
        }
        if !complete {
            // More history than one page: absence here proves nothing.
            return Err(Error::Chain(format!(
                "{payer} has more than {SIGNATURE_SEARCH_LIMIT} recent transactions on {network}: cannot prove this payment is not among them; resend it to the server instead"
            )));
        }
        Ok(None)
    }
}

#[cfg(feature = "solana")]
fn solana_commitment() -> solana_commitment_config::CommitmentConfig {
    solana_commitment_config::CommitmentConfig::confirmed()
}
