//! A Solana JSON-RPC subset over the devnet's litesvm ledger (`POST /solana`), enough for
//! `solana-client`'s `RpcClient` and other standard clients to pay and check balances:
//! `getHealth`, `getSlot`, `getLatestBlockhash`, `getBalance`, `getAccountInfo`,
//! `getMultipleAccounts`, `getTokenAccountBalance`, `getMinimumBalanceForRentExemption`,
//! `simulateTransaction`, `sendTransaction`, `getSignatureStatuses`, `requestAirdrop`.
//! Accounts are returned base64-encoded; transactions are accepted in base64 (and base58).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use solana_program_pack::Pack;
use solana_transaction_v4::versioned::VersionedTransaction;
use x402_core::SolanaAddress;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::chains::solana::{AccountInfo, SendError, Simulation, SolanaChain, USDC_DECIMALS};

/// The RPC route.
pub fn routes(chain: Arc<SolanaChain>) -> Router {
    Router::new()
        .route("/solana", post(handle))
        .with_state(chain)
}

struct RpcError {
    code: i64,
    message: String,
}

fn invalid_params(message: impl Into<String>) -> RpcError {
    RpcError {
        code: -32602,
        message: message.into(),
    }
}

async fn handle(State(chain): State<Arc<SolanaChain>>, body: axum::body::Bytes) -> Json<Value> {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return Json(
                json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32700, "message": format!("parse error: {e}") } }),
            );
        }
    };
    if let Some(batch) = request.as_array() {
        return Json(Value::Array(batch.iter().map(|r| one(&chain, r)).collect()));
    }
    Json(one(&chain, &request))
}

fn one(chain: &SolanaChain, request: &Value) -> Value {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let params = request.get("params").cloned().unwrap_or_else(|| json!([]));
    match call(chain, method, &params) {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(error) => {
            json!({ "jsonrpc": "2.0", "id": id, "error": { "code": error.code, "message": error.message } })
        }
    }
}

fn param(params: &Value, index: usize) -> Option<&Value> {
    params.as_array().and_then(|p| p.get(index))
}

fn key(params: &Value, index: usize) -> Result<SolanaAddress, RpcError> {
    param(params, index)
        .and_then(Value::as_str)
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| invalid_params(format!("param {index} must be a base58 public key")))
}

fn with_context(chain: &SolanaChain, value: Value) -> Value {
    json!({ "context": { "slot": chain.slot(), "apiVersion": "2.2.0" }, "value": value })
}

fn account_json(chain: &SolanaChain, key: &SolanaAddress) -> Value {
    match chain.account(key) {
        None => Value::Null,
        Some(AccountInfo {
            lamports,
            data,
            owner,
            executable,
        }) => json!({
            "lamports": lamports,
            "data": [BASE64.encode(&data), "base64"],
            "owner": owner.to_string(),
            "executable": executable,
            "rentEpoch": u64::MAX,
            "space": data.len(),
        }),
    }
}

fn transaction(params: &Value) -> Result<VersionedTransaction, RpcError> {
    let text = param(params, 0)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("param 0 must be an encoded transaction"))?;
    let base58 = param(params, 1)
        .and_then(|c| c.get("encoding"))
        .and_then(Value::as_str)
        == Some("base58");
    let bytes = if base58 {
        bs58::decode(text)
            .into_vec()
            .map_err(|_| invalid_params("transaction is not base58"))?
    } else {
        BASE64
            .decode(text)
            .map_err(|_| invalid_params("transaction is not base64"))?
    };
    bincode::deserialize(&bytes).map_err(|e| invalid_params(format!("not a transaction: {e}")))
}

fn call(chain: &SolanaChain, method: &str, params: &Value) -> Result<Value, RpcError> {
    match method {
        "getHealth" => Ok(json!("ok")),
        "getSlot" | "getBlockHeight" => Ok(json!(chain.slot())),
        "getLatestBlockhash" => {
            let blockhash = bs58_encode(&chain.latest_blockhash());
            Ok(with_context(
                chain,
                json!({ "blockhash": blockhash, "lastValidBlockHeight": chain.slot() + 150 }),
            ))
        }
        "getBalance" => Ok(with_context(
            chain,
            json!(chain.account(&key(params, 0)?).map_or(0, |a| a.lamports)),
        )),
        "getAccountInfo" => Ok(with_context(chain, account_json(chain, &key(params, 0)?))),
        "getMultipleAccounts" => {
            let keys = param(params, 0)
                .and_then(Value::as_array)
                .ok_or_else(|| invalid_params("param 0 must be an array of keys"))?;
            let mut values = Vec::new();
            for k in keys {
                let k: SolanaAddress = k
                    .as_str()
                    .and_then(|k| k.parse().ok())
                    .ok_or_else(|| invalid_params("keys must be base58"))?;
                values.push(account_json(chain, &k));
            }
            Ok(with_context(chain, Value::Array(values)))
        }
        "getTokenAccountBalance" => {
            let account = chain
                .account(&key(params, 0)?)
                .ok_or_else(|| invalid_params("could not find account"))?;
            let state = spl_token::state::Account::unpack(&account.data)
                .map_err(|_| invalid_params("not a token account"))?;
            let text =
                x402_core::TokenAmount::from_u64(state.amount).to_decimal_string(USDC_DECIMALS);
            let ui: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            Ok(with_context(
                chain,
                json!({ "amount": state.amount.to_string(), "decimals": USDC_DECIMALS, "uiAmount": ui, "uiAmountString": text }),
            ))
        }
        "getMinimumBalanceForRentExemption" => {
            let len = param(params, 0)
                .and_then(Value::as_u64)
                .ok_or_else(|| invalid_params("param 0 must be a data length"))?;
            Ok(json!(chain.rent_exempt_minimum(
                usize::try_from(len).unwrap_or(usize::MAX)
            )))
        }
        "simulateTransaction" => {
            let Simulation {
                error,
                logs,
                compute_units,
            } = chain.simulate(transaction(params)?);
            Ok(with_context(
                chain,
                json!({ "err": error, "logs": logs, "accounts": null, "unitsConsumed": compute_units, "returnData": null }),
            ))
        }
        "sendTransaction" => chain
            .send(transaction(params)?)
            .map(Value::String)
            .map_err(|error| match error {
                SendError::Refused(refused) => RpcError {
                    code: -32002,
                    message: format!("Transaction simulation failed: {}", refused.reason),
                },
                other => RpcError {
                    code: -32603,
                    message: other.to_string(),
                },
            }),
        "getSignatureStatuses" => {
            let signatures = param(params, 0)
                .and_then(Value::as_array)
                .ok_or_else(|| invalid_params("param 0 must be an array of signatures"))?;
            let statuses: Vec<Value> = signatures
                .iter()
                .map(|s| match s.as_str().and_then(|s| chain.signature_status(s)) {
                    None => Value::Null,
                    Some(err) => json!({ "slot": chain.slot(), "confirmations": null, "err": err, "status": if err.is_none() { json!({ "Ok": null }) } else { json!({ "Err": err }) }, "confirmationStatus": "finalized" }),
                })
                .collect();
            Ok(with_context(chain, Value::Array(statuses)))
        }
        "isBlockhashValid" => {
            let text = param(params, 0)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_params("param 0 must be a blockhash"))?;
            let hash = x402_core::svm::parse_blockhash(text)
                .map_err(|_| invalid_params("param 0 is not a base58 blockhash"))?;
            Ok(with_context(
                chain,
                json!(chain.blockhash_valid_until(&hash).is_some()),
            ))
        }
        "getSignaturesForAddress" => {
            let limit = param(params, 1)
                .and_then(|c| c.get("limit"))
                .and_then(Value::as_u64)
                .unwrap_or(1000)
                .min(1000);
            let found: Vec<Value> = chain
                .transactions_of(&key(params, 0)?, usize::try_from(limit).unwrap_or(1000))
                .into_iter()
                .map(|landed| json!({ "signature": landed.signature, "slot": landed.slot, "err": null, "memo": null, "blockTime": null, "confirmationStatus": "finalized" }))
                .collect();
            Ok(Value::Array(found))
        }
        "getTransaction" => {
            let signature = param(params, 0)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_params("param 0 must be a signature"))?;
            let encoding = param(params, 1)
                .and_then(|c| c.get("encoding").or(Some(c)))
                .and_then(Value::as_str)
                .unwrap_or("json");
            if encoding != "base64" {
                return Err(invalid_params(format!(
                    "the devnet serves getTransaction in base64 only, not {encoding}"
                )));
            }
            Ok(chain.transaction(signature).map_or(Value::Null, |landed| {
                json!({ "slot": landed.slot, "transaction": [landed.transaction, "base64"], "meta": null, "blockTime": null, "version": 0 })
            }))
        }
        "requestAirdrop" => {
            let to = key(params, 0)?;
            let lamports = param(params, 1)
                .and_then(Value::as_u64)
                .ok_or_else(|| invalid_params("param 1 must be lamports"))?;
            chain
                .airdrop(&to, lamports)
                .map(Value::String)
                .map_err(|e| RpcError {
                    code: -32603,
                    message: e.to_string(),
                })
        }
        other => Err(RpcError {
            code: -32601,
            message: format!("method `{other}` is not in the devnet's subset"),
        }),
    }
}

fn bs58_encode(bytes: &[u8; 32]) -> String {
    SolanaAddress::new(*bytes).to_string()
}
