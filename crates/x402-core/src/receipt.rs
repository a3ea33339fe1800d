//! Settlement receipts: `PAYMENT-RESPONSE` (v2) and `X-PAYMENT-RESPONSE` (v1).

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::encoding;
use crate::money::TokenAmount;
use crate::{Error, Result};

/// v2 receipt header.
pub const PAYMENT_RESPONSE: &str = "PAYMENT-RESPONSE";
/// v1 receipt header.
pub const X_PAYMENT_RESPONSE: &str = "X-PAYMENT-RESPONSE";

/// The outcome of a settlement, as a server reports it.
///
/// `network` is kept as written (a v1 name or CAIP-2); unknown keys are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// Whether the payment settled.
    pub success: bool,
    /// Transaction hash (EVM) or signature (Solana); empty on failure.
    #[serde(default)]
    pub transaction: String,
    /// The network the payment settled on.
    pub network: String,
    /// The payer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// Reason code when `success` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    /// The settled amount, where the server reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<TokenAmount>,
}

impl Receipt {
    /// Reads the receipt of a response: `PAYMENT-RESPONSE` first, then `X-PAYMENT-RESPONSE`.
    /// `Ok(None)` when there is neither.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the header is there but unreadable.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Receipt>> {
        for name in [PAYMENT_RESPONSE, X_PAYMENT_RESPONSE] {
            if let Some(value) = headers.get(name) {
                let text = value
                    .to_str()
                    .map_err(|_| Error::malformed(name, "header is not ASCII"))?;
                return Receipt::from_header_value(text).map(Some);
            }
        }
        Ok(None)
    }

    /// Reads a receipt header value (base64 JSON).
    ///
    /// # Errors
    /// [`Error::Malformed`].
    pub fn from_header_value(value: &str) -> Result<Receipt> {
        let bytes = encoding::decode("payment receipt", value)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::malformed("payment receipt", e))
    }

    /// The header value (standard base64 of compact JSON).
    pub fn to_header_value(&self) -> String {
        encoding::encode(&serde_json::to_vec(self).unwrap_or_default())
    }
}
