//! The offers a paid endpoint makes, and the 402 that carries them in both forms (a v1 JSON
//! body and a v2 `PAYMENT-REQUIRED` header).

use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use x402_core::challenge::{PaymentRequired, RequirementSpec, ResourceInfo, Scheme};
use x402_core::{AssetId, PayTo, TokenAmount, UsdMicros};

use super::{Cashier, Family, Price};
use crate::chains::evm::EvmChain;
use crate::chains::solana::USDC_DECIMALS;

/// How long a signed payment may take to arrive, in every offer.
const MAX_TIMEOUT_SECONDS: u64 = 300;

impl Cashier {
    /// The offers for `price` on every running chain (or the one family asked for).
    pub(crate) fn offers(&self, uri: &Uri, price: &Price<'_>) -> PaymentRequired {
        let wanted = |family: Family| price.family.is_none_or(|only| only == family);
        let chains = self.facilitator.chains();
        let mut accepts = Vec::new();
        if wanted(Family::BaseExact) {
            accepts.push(self.evm_offer(&chains.base, Scheme::Exact, price.amount));
        }
        if let Some(megaeth) = &chains.megaeth
            && wanted(Family::MegaethPermit)
        {
            accepts.push(self.evm_offer(megaeth, Scheme::Permit, price.amount));
        }
        if let Some(solana) = &chains.solana
            && wanted(Family::Solana)
        {
            let mut extra = serde_json::Map::new();
            extra.insert(
                "feePayer".into(),
                json!(x402_core::SolanaSigner::pubkey(solana.fee_payer()).to_string()),
            );
            accepts.push(RequirementSpec {
                scheme: Scheme::Exact,
                network: x402_core::Network::SOLANA_DEVNET,
                amount: token_amount(price.amount, USDC_DECIMALS),
                asset: AssetId::Solana(solana.mint()),
                pay_to: PayTo::Solana(self.facilitator.payees().solana),
                max_timeout_seconds: MAX_TIMEOUT_SECONDS,
                extra,
            });
        }
        PaymentRequired {
            resource: ResourceInfo {
                url: format!("{}{}", self.public_url, uri.path()),
                description: Some(price.description.to_owned()),
                mime_type: Some("application/json".into()),
            },
            error: String::new(),
            accepts,
            extensions: serde_json::Map::from_iter([(
                x402_core::extensions::PAYMENT_IDENTIFIER.to_owned(),
                x402_core::extensions::payment_identifier_offer(false),
            )]),
        }
    }

    fn evm_offer(&self, chain: &EvmChain, scheme: Scheme, price: UsdMicros) -> RequirementSpec {
        let token = chain.token();
        let mut extra = serde_json::Map::new();
        extra.insert("name".into(), json!(token.name));
        extra.insert("version".into(), json!(token.version));
        if scheme == Scheme::Permit {
            extra.insert(
                x402_core::evm::permit::FACILITATOR_KEY.into(),
                json!(chain.facilitator().to_checksum(None)),
            );
        }
        RequirementSpec {
            scheme,
            network: x402_core::Network::evm(chain.chain_id()),
            amount: token_amount(price, token.decimals),
            asset: AssetId::Evm(token.address),
            pay_to: PayTo::Evm(self.facilitator.payees().evm),
            max_timeout_seconds: MAX_TIMEOUT_SECONDS,
            extra,
        }
    }
}

/// `price` in atomic units of a dollar stablecoin with `decimals` (6 or more).
fn token_amount(price: UsdMicros, decimals: u8) -> TokenAmount {
    let scale = 10u64
        .checked_pow(u32::from(decimals.saturating_sub(6)))
        .unwrap_or(1);
    TokenAmount::from_u64(price.0)
        .checked_mul(scale)
        .unwrap_or(TokenAmount::ZERO)
}

/// A 402 with both challenge forms and `error` as its message.
pub(crate) fn payment_required(required: &PaymentRequired, error: &str) -> Response {
    let mut required = required.clone();
    required.error = error.to_owned();
    let mut response = (StatusCode::PAYMENT_REQUIRED, required.to_v1_body()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(&required.to_v2_header()) {
        headers.insert(x402_core::challenge::PAYMENT_REQUIRED, value);
    }
    headers.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"),
    );
    response
}
