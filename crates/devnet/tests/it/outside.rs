//! A payer who spends their own authorization behind the facilitator's back gets nothing:
//! only the facilitator's own transaction proves that a payment moved money. The chain
//! answers are made deterministic by turning anvil's automine off, so the facilitator's
//! transaction waits in the mempool while the payer acts, and the next block orders the
//! payer's transactions (higher tip) before it.

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{Client, Now};
use x402_core::{LocalEvmSigner, Network, PaymentPayload, PaymentPolicy, evm};

alloy::sol! {
    #[sol(rpc)]
    #[allow(clippy::too_many_arguments)]
    interface PayerCalls {
        function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external;
        function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;
        function approve(address spender, uint256 value) external returns (bool);
    }

    struct CancelAuthorization {
        address authorizer;
        bytes32 nonce;
    }
}

/// A payer's key in both forms: x402-core's signer for payments, alloy's for its own
/// transactions. Funded with $10 (and gas) on every EVM chain.
async fn payer(devnet: &devnet::Devnet) -> (LocalEvmSigner, PrivateKeySigner) {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).unwrap();
    let x402 = LocalEvmSigner::from_bytes(&secret).unwrap();
    let alloy = PrivateKeySigner::from_bytes(&secret.into()).unwrap();
    devnet
        .chains()
        .fund_evm(alloy.address(), 10_000_000)
        .await
        .unwrap();
    (x402, alloy)
}

async fn anvil(chain: &devnet::chains::evm::EvmChain, method: &str, params: Value) -> Value {
    let provider = ProviderBuilder::new().connect_http(chain.rpc_url().parse().unwrap());
    provider
        .raw_request::<_, Value>(method.to_owned().into(), params)
        .await
        .unwrap()
}

/// The token's calls as `payer` sends them on `chain` (see [`ahead`]).
fn payer_calls(
    chain: &devnet::chains::evm::EvmChain,
    payer: &PrivateKeySigner,
) -> PayerCalls::PayerCallsInstance<impl Provider + use<>> {
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(payer.clone()))
        .connect_http(chain.rpc_url().parse().unwrap());
    PayerCalls::new(chain.token().address, provider)
}

const TIP: u128 = 50_000_000_000;
/// Set, not estimated: an estimate against the pending block (which holds the
/// facilitator's transaction) would refuse the payer's.
const GAS: u64 = 200_000;

/// Sends a payer's `call` with a tip that puts it ahead of the facilitator's transactions in
/// the next block.
async fn ahead<P: Provider, D: alloy::contract::CallDecoder>(
    call: alloy::contract::CallBuilder<P, D>,
) -> B256 {
    *call
        .max_priority_fee_per_gas(TIP)
        .max_fee_per_gas(TIP * 4)
        .gas(GAS)
        .send()
        .await
        .unwrap()
        .tx_hash()
}

fn split(signature: &str) -> (u8, B256, B256) {
    let bytes = alloy::hex::decode(signature).unwrap();
    let v = if bytes[64] < 27 {
        bytes[64] + 27
    } else {
        bytes[64]
    };
    (
        v,
        B256::from_slice(&bytes[..32]),
        B256::from_slice(&bytes[32..64]),
    )
}

/// Sends `header` for a $2 top-up: the devnet holds confirmation, so it answers pending.
async fn pay_pending(api: &Client, header: &x402_core::PaymentHeader, body: &[u8]) -> String {
    let pending = api
        .post("/compute/credits/topup", body)
        .header(header.name(), header.value())
        .send()
        .await
        .unwrap();
    assert_eq!(pending.status(), StatusCode::PAYMENT_REQUIRED);
    let receipt = test_support::receipt(&pending).unwrap().unwrap();
    assert_eq!(receipt.error_reason.as_deref(), Some("settlement_pending"));
    receipt.transaction
}

async fn receipt_status(chain: &devnet::chains::evm::EvmChain, transaction: &str) -> Value {
    anvil(chain, "eth_getTransactionReceipt", json!([transaction])).await["status"].clone()
}

/// The answer to the same payment sent again after the reconciler ran, and the payer's
/// credits.
async fn afterwards(
    devnet: &devnet::Devnet,
    api: &Client,
    payer: &LocalEvmSigner,
    header: &x402_core::PaymentHeader,
    body: &[u8],
) -> (StatusCode, Option<x402_core::Receipt>, Value) {
    devnet.facilitator().reconcile().await.unwrap();
    let again = api
        .post("/compute/credits/topup", body)
        .header(header.name(), header.value())
        .send()
        .await
        .unwrap();
    let status = again.status();
    let receipt = test_support::receipt(&again).unwrap();
    let balance = api.credits(payer).await.unwrap();
    (status, receipt, balance["balance"].clone())
}

#[tokio::test]
async fn an_authorization_the_payer_cancels_is_never_credited() {
    let faults = devnet::FaultConfig {
        hold_confirmation: true,
        ..devnet::FaultConfig::default()
    };
    let devnet = test_support::start_with(|config| devnet::Config { faults, ..config })
        .await
        .unwrap();
    let (payer, key) = payer(&devnet).await;
    let api = Client::of(&devnet);
    let base = devnet.base();
    let body = br#"{"amount":2,"network":"base"}"#;
    let header = api
        .base_payment(&payer, "/compute/credits/topup", body)
        .await
        .unwrap();
    let payload = PaymentPayload::from_header_value(header.value()).unwrap();
    let payload: Value = serde_json::from_str(payload.payload_json().get()).unwrap();
    let nonce: B256 = payload["authorization"]["nonce"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    anvil(base, "evm_setAutomine", json!([false])).await;
    let ours = pay_pending(&api, &header, body).await;

    // The payer cancels the authorization, ahead of the facilitator's transaction.
    let token = base.token();
    let domain = Eip712Domain::new(
        Some(token.name.into()),
        Some(token.version.into()),
        Some(U256::from(base.chain_id())),
        Some(token.address),
        None,
    );
    let cancel = CancelAuthorization {
        authorizer: key.address(),
        nonce,
    };
    let signature = key
        .sign_hash_sync(&cancel.eip712_signing_hash(&domain))
        .unwrap();
    let (v, r, s) = split(&alloy::hex::encode(signature.as_bytes()));
    ahead(payer_calls(base, &key).cancelAuthorization(key.address(), nonce, v, r, s)).await;
    anvil(base, "evm_mine", json!([])).await;
    anvil(base, "evm_setAutomine", json!([true])).await;
    assert_eq!(
        receipt_status(base, &ours).await,
        "0x0",
        "the facilitator's transaction came after the cancellation"
    );
    assert!(base.authorization_used(key.address(), nonce).await.unwrap());

    let (status, receipt, credits) = afterwards(&devnet, &api, &payer, &header, body).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert!(!receipt.is_some_and(|r| r.success), "never told it paid");
    assert!(credits == 0 || credits == "0.00", "credited {credits}");
    assert_eq!(base.balance_of(devnet::TREASURY).await.unwrap(), U256::ZERO);
    assert_eq!(
        devnet.store().settlement_count().unwrap(),
        0,
        "no settlement"
    );
}

#[tokio::test]
async fn a_permit_whose_allowance_the_payer_revokes_is_never_credited() {
    let faults = devnet::FaultConfig {
        hold_confirmation: true,
        ..devnet::FaultConfig::default()
    };
    let devnet = test_support::start_with(|config| devnet::Config { faults, ..config })
        .await
        .unwrap();
    let (payer, key) = payer(&devnet).await;
    let api = Client::of(&devnet);
    let megaeth = devnet.megaeth().unwrap();
    let body = br#"{"amount":2,"network":"megaeth"}"#;
    let challenge = api
        .quote(&payer, "/compute/credits/topup", body)
        .await
        .unwrap();
    let selected = PaymentPolicy::default()
        .networks([Network::MEGAETH])
        .select(&challenge)
        .unwrap();
    let nonce = megaeth.permit_nonce(key.address()).await.unwrap();
    let header = evm::permit::pay(&selected, &payer, nonce, &Now).unwrap();
    let payload = PaymentPayload::from_header_value(header.value()).unwrap();
    let payload: Value = serde_json::from_str(payload.payload_json().get()).unwrap();
    let permit = &payload["permit"];
    let number = |field: &str| U256::from_str_radix(permit[field].as_str().unwrap(), 10).unwrap();
    let spender: Address = permit["spender"].as_str().unwrap().parse().unwrap();

    anvil(megaeth, "evm_setAutomine", json!([false])).await;
    let ours = pay_pending(&api, &header, body).await;

    // The payer submits the permit themselves and then revokes the allowance, both ahead of
    // the facilitator's permit.
    let (v, r, s) = split(payload["signature"].as_str().unwrap());
    let calls = payer_calls(megaeth, &key);
    ahead(calls.permit(
        key.address(),
        spender,
        number("value"),
        number("deadline"),
        v,
        r,
        s,
    ))
    .await;
    ahead(calls.approve(spender, U256::ZERO)).await;
    anvil(megaeth, "evm_mine", json!([])).await;
    anvil(megaeth, "evm_setAutomine", json!([true])).await;
    assert_eq!(
        receipt_status(megaeth, &ours).await,
        "0x0",
        "the facilitator's permit came after the payer's"
    );
    assert!(megaeth.permit_nonce(key.address()).await.unwrap() > nonce);

    let (status, receipt, credits) = afterwards(&devnet, &api, &payer, &header, body).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert!(!receipt.is_some_and(|r| r.success), "never told it paid");
    assert!(credits == 0 || credits == "0.00", "credited {credits}");
    assert_eq!(
        megaeth.balance_of(devnet::TREASURY).await.unwrap(),
        U256::ZERO
    );
    assert_eq!(devnet.store().settlement_count().unwrap(), 0);
}
