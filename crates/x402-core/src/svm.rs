//! The `exact` scheme on Solana: a partially signed v0 transaction that moves the SPL token
//! with `TransferChecked`, with the facilitator as fee payer (feature `solana`).
//!
//! The transaction has exactly these instructions, in order (reference `x402.md` §8.2):
//! `SetComputeUnitLimit`, `SetComputeUnitPrice`, `TransferChecked` (source ATA, mint,
//! destination = ATA(payTo, mint), owner) on SPL Token or Token-2022, and a Memo (the offer's
//! `extra.memo`, else 16 random bytes as 32 hex characters, so that identical concurrent
//! payments stay distinct). Account 0 is `extra.feePayer`, whose signature slot is left as 64
//! zero bytes for the facilitator.
//!
//! Chain state (recent blockhash, the mint's decimals and owning token program) is an input:
//! [`SolanaChainState`].
//!
//! Token-2022 shares SPL Token's `TransferChecked` encoding (tag 12, same accounts), so the
//! instruction is built with `spl-token`'s builder and addressed to the Token-2022 program;
//! this avoids pulling the Token-2022 crate's confidential-transfer stack into every build.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use solana_hash::Hash;
use solana_message::{VersionedMessage, v0};
use solana_pubkey::Pubkey;
use solana_signature::Signature;
use solana_transaction::versioned::VersionedTransaction;

use crate::address::{PayTo, SolanaAddress};
use crate::challenge::{Requirement, Scheme};
use crate::clock::Entropy;
use crate::encoding;
use crate::error::InvalidReason;
use crate::money::{AssetId, TokenAmount};
use crate::payload::{self, PaymentHeader, PaymentPayload};
use crate::policy::Selected;
use crate::signer::SolanaSigner;
use crate::{Error, Result};

/// SPL Token program.
pub const TOKEN_PROGRAM: Pubkey =
    Pubkey::from_str_const("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA");
/// SPL Token-2022 program.
pub const TOKEN_2022_PROGRAM: Pubkey =
    Pubkey::from_str_const("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb");
/// Compute Budget program.
pub const COMPUTE_BUDGET_PROGRAM: Pubkey =
    Pubkey::from_str_const("ComputeBudget111111111111111111111111111111");
/// SPL Memo program (v3).
pub const MEMO_PROGRAM: Pubkey =
    Pubkey::from_str_const("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");
/// Lighthouse, whose guard instructions some wallets append.
pub const LIGHTHOUSE_PROGRAM: Pubkey =
    Pubkey::from_str_const("L2TExMFKdjpN9kozasaurPirfHy9P8sbXoAN1qA3S95");

/// Compute unit limit the client requests.
pub const COMPUTE_UNIT_LIMIT: u32 = 20_000;
/// Compute unit price the client offers, in micro-lamports.
pub const COMPUTE_UNIT_PRICE: u64 = 1;
/// Longest `extra.memo` accepted, in bytes.
pub const MAX_MEMO_LEN: usize = 256;

/// Which token program owns the mint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenProgram {
    /// SPL Token.
    Token,
    /// SPL Token-2022.
    Token2022,
}

impl TokenProgram {
    /// The program id.
    pub fn id(self) -> Pubkey {
        match self {
            TokenProgram::Token => TOKEN_PROGRAM,
            TokenProgram::Token2022 => TOKEN_2022_PROGRAM,
        }
    }

    fn from_id(id: &Pubkey) -> Option<TokenProgram> {
        match *id {
            TOKEN_PROGRAM => Some(TokenProgram::Token),
            TOKEN_2022_PROGRAM => Some(TokenProgram::Token2022),
            _ => None,
        }
    }
}

impl FromStr for TokenProgram {
    type Err = Error;

    /// The program id in base58.
    fn from_str(text: &str) -> Result<TokenProgram> {
        let address: SolanaAddress = text.parse()?;
        TokenProgram::from_id(&address.into()).ok_or_else(|| Error::InvalidAddress {
            input: text.to_owned(),
            kind: "SPL token program",
        })
    }
}

/// What the client must read from the chain before paying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SolanaChainState {
    /// A recent blockhash (`getLatestBlockhash`).
    pub recent_blockhash: [u8; 32],
    /// The mint's decimals.
    pub decimals: u8,
    /// The program that owns the mint.
    pub token_program: TokenProgram,
}

/// Parses a base58 blockhash.
///
/// # Errors
/// [`Error::Malformed`] unless it is 32 bytes of base58.
pub fn parse_blockhash(text: &str) -> Result<[u8; 32]> {
    let address: SolanaAddress = text
        .parse()
        .map_err(|_| Error::malformed("blockhash", "expected 32 bytes of base58"))?;
    Ok(address.to_bytes())
}

/// The scheme payload: `{ transaction }`, standard base64 of the wire transaction. `Debug`
/// hides the signed transaction.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactSvmPayload {
    /// Base64 of the serialized, partially signed versioned transaction.
    pub transaction: String,
}

impl std::fmt::Debug for ExactSvmPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactSvmPayload")
            .field("transaction", &"<redacted>")
            .finish()
    }
}

/// The associated token account of `owner` for `mint` under `program`, memoized.
///
/// Deriving it searches for a program address (a SHA-256 and an off-curve check per bump),
/// about 11 µs: as much as half the cost of a payment. A client pays from the same wallet to
/// the same few recipients again and again, so results are kept in a small bounded memo (pure
/// computation, no IO; cleared when it reaches [`ATA_MEMO_CAPACITY`] entries).
pub fn associated_token_address(
    owner: &SolanaAddress,
    mint: &SolanaAddress,
    program: TokenProgram,
) -> SolanaAddress {
    type Memo = Mutex<HashMap<([u8; 32], [u8; 32], TokenProgram), SolanaAddress>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let memo = MEMO.get_or_init(Memo::default);
    let key = (owner.to_bytes(), mint.to_bytes(), program);
    if let Some(hit) = memo.lock().ok().and_then(|m| m.get(&key).copied()) {
        return hit;
    }
    let derived = derive_associated_token_address(owner, mint, program);
    if let Ok(mut memo) = memo.lock() {
        if memo.len() >= ATA_MEMO_CAPACITY {
            memo.clear();
        }
        memo.insert(key, derived);
    }
    derived
}

/// Entries kept by [`associated_token_address`]'s memo.
pub const ATA_MEMO_CAPACITY: usize = 1024;

/// [`associated_token_address`] without the memo.
pub fn derive_associated_token_address(
    owner: &SolanaAddress,
    mint: &SolanaAddress,
    program: TokenProgram,
) -> SolanaAddress {
    spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
        &Pubkey::from(*owner),
        &Pubkey::from(*mint),
        &program.id(),
    )
    .into()
}

struct Offer {
    fee_payer: Pubkey,
    pay_to: Pubkey,
    mint: Pubkey,
    amount: u64,
    memo: Option<Vec<u8>>,
}

fn read_offer(requirement: &Requirement) -> Result<Offer> {
    if requirement.scheme() != &Scheme::Exact || !requirement.network().is_solana() {
        return Err(Error::UnsupportedScheme {
            scheme: requirement.scheme().to_string(),
            network: requirement.network().to_string(),
        });
    }
    let fee_payer: SolanaAddress = requirement
        .extra_str("feePayer")
        .ok_or(Error::MissingField {
            field: "extra.feePayer",
            hint: "a Solana offer must name the facilitator's fee payer",
        })?
        .parse()?;
    let PayTo::Solana(pay_to) = requirement.pay_to() else {
        return Err(Error::InvalidAddress {
            input: requirement.pay_to().to_string(),
            kind: "Solana",
        });
    };
    let AssetId::Solana(mint) = requirement.asset() else {
        return Err(Error::InvalidAddress {
            input: requirement.asset().to_string(),
            kind: "Solana mint",
        });
    };
    let amount = requirement
        .amount()
        .to_u64()
        .ok_or_else(|| Error::InvalidAmount {
            input: requirement.amount().to_string(),
            reason: "SPL token amounts must fit in 64 bits",
        })?;
    let memo = match requirement.extra().get("memo") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(memo)) if memo.len() <= MAX_MEMO_LEN => {
            Some(memo.as_bytes().to_vec())
        }
        Some(_) => {
            return Err(Error::MissingField {
                field: "extra.memo",
                hint: "a memo must be a string of at most 256 bytes",
            });
        }
    };
    Ok(Offer {
        fee_payer: fee_payer.into(),
        pay_to: pay_to.into(),
        mint: mint.into(),
        amount,
        memo,
    })
}

/// Builds the unsigned payment transaction for `requirement` paid by `payer`.
///
/// # Errors
/// [`Error::UnsupportedScheme`], [`Error::MissingField`] (`extra.feePayer`, `extra.memo`),
/// [`Error::InvalidAmount`] above `u64`.
pub fn build_transaction(
    requirement: &Requirement,
    payer: SolanaAddress,
    chain: &SolanaChainState,
    random_memo: [u8; 16],
) -> Result<VersionedTransaction> {
    let offer = read_offer(requirement)?;
    let payer = Pubkey::from(payer);
    if payer == offer.fee_payer {
        return Err(Error::MissingField {
            field: "extra.feePayer",
            hint: "the fee payer must be the facilitator, not the paying wallet",
        });
    }
    let program = chain.token_program;
    let source = associated_token_address(&payer.into(), &offer.mint.into(), program);
    let destination = associated_token_address(&offer.pay_to.into(), &offer.mint.into(), program);
    let mut transfer = spl_token::instruction::transfer_checked(
        &spl_token::id(),
        &source.into(),
        &offer.mint,
        &destination.into(),
        &payer,
        &[],
        offer.amount,
        chain.decimals,
    )
    .map_err(|e| Error::Signing(format!("building TransferChecked: {e}")))?;
    transfer.program_id = program.id();
    let memo = offer
        .memo
        .unwrap_or_else(|| alloy_primitives::hex::encode(random_memo).into_bytes());
    let instructions = [
        solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_limit(
            COMPUTE_UNIT_LIMIT,
        ),
        solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_price(
            COMPUTE_UNIT_PRICE,
        ),
        transfer,
        spl_memo_interface::instruction::build_memo(&MEMO_PROGRAM, &memo, &[]),
    ];
    let message = v0::Message::try_compile(
        &offer.fee_payer,
        &instructions,
        &[],
        Hash::new_from_array(chain.recent_blockhash),
    )
    .map_err(|e| Error::Signing(format!("compiling the message: {e}")))?;
    let message = VersionedMessage::V0(message);
    let signatures =
        vec![Signature::default(); usize::from(message.header().num_required_signatures)];
    Ok(VersionedTransaction {
        signatures,
        message,
    })
}

/// Signs `transaction` as `signer`, in `signer`'s slot; the other slots are untouched.
///
/// # Errors
/// [`Error::Signing`] when `signer` is not a required signer, when the transaction has fewer
/// signature slots than required signers, or when the signer fails.
pub fn sign_transaction(
    transaction: &mut VersionedTransaction,
    signer: &dyn SolanaSigner,
) -> Result<()> {
    let key = Pubkey::from(signer.pubkey());
    let required = usize::from(transaction.message.header().num_required_signatures);
    let slot = transaction.message.static_account_keys()
        [..required.min(transaction.message.static_account_keys().len())]
        .iter()
        .position(|k| *k == key)
        .ok_or_else(|| {
            Error::Signing(format!(
                "{key} is not a required signer of this transaction"
            ))
        })?;
    let signature = signer.sign_message(&transaction.message.serialize())?;
    let slots = transaction.signatures.len();
    let place = transaction.signatures.get_mut(slot).ok_or_else(|| {
        Error::Signing(format!(
            "the transaction has {slots} signature slots but {required} required signers"
        ))
    })?;
    *place = Signature::from(signature);
    Ok(())
}

/// Builds, signs (payer only) and encodes the payment header for a selected Solana offer.
///
/// # Errors
/// As [`build_transaction`] and [`sign_transaction`].
pub fn pay(
    selected: &Selected<'_>,
    signer: &dyn SolanaSigner,
    chain: &SolanaChainState,
    rng: &mut dyn Entropy,
) -> Result<PaymentHeader> {
    let mut random_memo = [0u8; 16];
    rng.fill(&mut random_memo);
    let mut transaction =
        build_transaction(selected.requirement(), signer.pubkey(), chain, random_memo)?;
    sign_transaction(&mut transaction, signer)?;
    payload::encode(
        selected,
        &ExactSvmPayload {
            transaction: encode_transaction(&transaction)?,
        },
    )
}

/// Standard base64 of the transaction's wire bytes.
///
/// # Errors
/// [`Error::Malformed`] if it cannot be serialized (it always can).
pub fn encode_transaction(transaction: &VersionedTransaction) -> Result<String> {
    let bytes = bincode::serialize(transaction).map_err(|e| Error::malformed("transaction", e))?;
    Ok(encoding::encode(&bytes))
}

/// Decodes the base64 wire form of a versioned transaction.
///
/// # Errors
/// [`Error::InvalidPayment`] with `invalid_exact_svm_payload_transaction`.
pub fn decode_transaction(text: &str) -> Result<VersionedTransaction> {
    let invalid = |detail: String| Error::invalid(InvalidReason::SvmTransaction, detail);
    let bytes = encoding::decode("transaction", text).map_err(|e| invalid(e.to_string()))?;
    if bytes.len() > 1232 {
        return Err(invalid(format!(
            "{} bytes is larger than a Solana packet",
            bytes.len()
        )));
    }
    let transaction: VersionedTransaction = bincode::deserialize(&bytes)
        .map_err(|e| invalid(format!("not a versioned transaction: {e}")))?;
    if bincode::serialized_size(&transaction).ok() != Some(bytes.len() as u64) {
        return Err(invalid("trailing bytes after the transaction".to_owned()));
    }
    Ok(transaction)
}

/// Limits a facilitator applies to Solana payments.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    /// The fee payers this facilitator manages; `extra.feePayer` must be one of them.
    pub fee_payers: Vec<SolanaAddress>,
    /// The mint's decimals, when known (a mismatch would fail on chain anyway).
    pub decimals: Option<u8>,
    /// Highest compute unit limit accepted.
    pub max_compute_unit_limit: u32,
    /// Highest compute unit price accepted, micro-lamports.
    pub max_compute_unit_price: u64,
}

impl VerifyConfig {
    /// Defaults: 400,000 CU and 5,000,000 µL (the reference caps) for these fee payers.
    pub fn new(fee_payers: Vec<SolanaAddress>) -> VerifyConfig {
        VerifyConfig {
            fee_payers,
            decimals: None,
            max_compute_unit_limit: 400_000,
            max_compute_unit_price: 5_000_000,
        }
    }
}

/// A Solana payment that passed [`verify`]. `Debug` hides the signed transaction.
#[derive(Clone)]
pub struct Verified {
    /// The paying wallet (transfer authority).
    pub payer: SolanaAddress,
    /// The fee payer named in the transaction.
    pub fee_payer: SolanaAddress,
    /// Amount moved.
    pub amount: TokenAmount,
    /// The transaction, with the fee payer's slot still empty.
    pub transaction: VersionedTransaction,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("payer", &self.payer)
            .field("fee_payer", &self.fee_payer)
            .field("amount", &self.amount)
            .finish_non_exhaustive()
    }
}

impl Verified {
    /// Adds the fee payer's signature, making the transaction ready to send.
    ///
    /// # Errors
    /// [`Error::Signing`] when `fee_payer` is not this transaction's fee payer.
    pub fn cosign(&mut self, fee_payer: &dyn SolanaSigner) -> Result<()> {
        if fee_payer.pubkey() != self.fee_payer {
            return Err(Error::Signing(
                "that key is not this transaction's fee payer".to_owned(),
            ));
        }
        sign_transaction(&mut self.transaction, fee_payer)
    }
}

/// Verifies a Solana `exact` payment against the server's requirement.
///
/// # Errors
/// [`Error::InvalidPayment`] with the matching [`InvalidReason`].
pub fn verify(
    payment: &PaymentPayload,
    requirement: &Requirement,
    config: &VerifyConfig,
) -> Result<Verified> {
    payment.check_answers(requirement)?;
    let payload: ExactSvmPayload = payment.scheme_payload()?;
    verify_payload(&payload, requirement, config)
}

/// [`verify`] for a scheme payload already taken out of its envelope.
///
/// Checks: v0 message without lookup tables; instructions `[SetComputeUnitLimit,
/// SetComputeUnitPrice, TransferChecked]` then only Memo or Lighthouse (3 to 7 in all), with
/// compute caps; `TransferChecked` on Token or Token-2022 with `mint == asset`, destination =
/// ATA(payTo), amount exactly the offer's; fee payer = `extra.feePayer`, managed by this
/// facilitator, and absent from every instruction's accounts; memo equal to `extra.memo` when
/// set; the payer's signature valid.
///
/// # Errors
/// As [`verify`].
pub fn verify_payload(
    payload: &ExactSvmPayload,
    requirement: &Requirement,
    config: &VerifyConfig,
) -> Result<Verified> {
    use InvalidReason::*;
    let offer = read_offer(requirement).map_err(|e| Error::invalid(Requirements, e.to_string()))?;
    if !config
        .fee_payers
        .iter()
        .any(|k| Pubkey::from(*k) == offer.fee_payer)
    {
        return Err(Error::invalid(
            SvmFeePayerNotManaged,
            format!(
                "fee payer {} is not managed by this facilitator",
                offer.fee_payer
            ),
        ));
    }
    let transaction = decode_transaction(&payload.transaction)?;
    let VersionedMessage::V0(message) = &transaction.message else {
        return Err(Error::invalid(
            SvmTransaction,
            "the message must be a v0 message",
        ));
    };
    if !message.address_table_lookups.is_empty() {
        return Err(Error::invalid(
            SvmTransaction,
            "address lookup tables are not accepted",
        ));
    }
    let keys = &message.account_keys;
    let required = usize::from(message.header.num_required_signatures);
    if transaction.signatures.len() != required || required > keys.len() || required < 2 {
        return Err(Error::invalid(
            SvmTransaction,
            "signature count does not match the message header",
        ));
    }
    if keys.first() != Some(&offer.fee_payer) {
        return Err(Error::invalid(
            SvmFeePayerNotManaged,
            "account 0 (fee payer) is not the offer's feePayer",
        ));
    }
    let instructions = &message.instructions;
    if !(3..=7).contains(&instructions.len()) {
        return Err(Error::invalid(
            SvmInstructionsLength,
            format!("{} instructions; expected 3 to 7", instructions.len()),
        ));
    }
    let key = |index: u8| {
        keys.get(usize::from(index)).ok_or_else(|| {
            Error::invalid(SvmTransaction, "instruction refers to a missing account")
        })
    };
    for instruction in instructions {
        for account in &instruction.accounts {
            if key(*account)? == &offer.fee_payer {
                return Err(Error::invalid(
                    SvmFeePayerTransferring,
                    "the fee payer appears in an instruction's accounts",
                ));
            }
        }
    }
    // 1 and 2: compute budget.
    let limit = &instructions[0];
    let price = &instructions[1];
    if key(limit.program_id_index)? != &COMPUTE_BUDGET_PROGRAM
        || limit.data.len() != 5
        || limit.data[0] != 2
    {
        return Err(Error::invalid(
            SvmInstructions,
            "instruction 1 must be SetComputeUnitLimit",
        ));
    }
    if key(price.program_id_index)? != &COMPUTE_BUDGET_PROGRAM
        || price.data.len() != 9
        || price.data[0] != 3
    {
        return Err(Error::invalid(
            SvmInstructions,
            "instruction 2 must be SetComputeUnitPrice",
        ));
    }
    let units = u32::from_le_bytes([limit.data[1], limit.data[2], limit.data[3], limit.data[4]]);
    let mut price_bytes = [0u8; 8];
    price_bytes.copy_from_slice(&price.data[1..9]);
    let micro_lamports = u64::from_le_bytes(price_bytes);
    if units > config.max_compute_unit_limit || micro_lamports > config.max_compute_unit_price {
        return Err(Error::invalid(
            SvmComputeBudget,
            format!("compute budget {units} CU at {micro_lamports} µL is above the caps"),
        ));
    }
    // 3: the transfer.
    let transfer = &instructions[2];
    let program = TokenProgram::from_id(key(transfer.program_id_index)?).ok_or_else(|| {
        Error::invalid(
            SvmInstructions,
            "instruction 3 must be on SPL Token or Token-2022",
        )
    })?;
    let spl_token::instruction::TokenInstruction::TransferChecked { amount, decimals } =
        spl_token::instruction::TokenInstruction::unpack(&transfer.data).map_err(|_| {
            Error::invalid(SvmInstructions, "instruction 3 is not a token instruction")
        })?
    else {
        return Err(Error::invalid(
            SvmInstructions,
            "instruction 3 must be TransferChecked",
        ));
    };
    if transfer.accounts.len() != 4 {
        return Err(Error::invalid(
            SvmInstructions,
            "TransferChecked must have exactly source, mint, destination and owner",
        ));
    }
    let (mint, destination, authority) = (
        key(transfer.accounts[1])?,
        key(transfer.accounts[2])?,
        key(transfer.accounts[3])?,
    );
    if mint != &offer.mint {
        return Err(Error::invalid(
            SvmMintMismatch,
            format!(
                "transfer mint {mint} is not the offer's asset {}",
                offer.mint
            ),
        ));
    }
    let expected_destination = Pubkey::from(associated_token_address(
        &offer.pay_to.into(),
        &offer.mint.into(),
        program,
    ));
    if destination != &expected_destination {
        return Err(Error::invalid(
            SvmRecipientMismatch,
            format!(
                "transfer destination {destination} is not payTo's token account {expected_destination}"
            ),
        ));
    }
    if amount != offer.amount {
        return Err(Error::invalid(
            SvmAmountMismatch,
            format!(
                "transfer moves {amount} atomic units, the offer asks exactly {}",
                offer.amount
            ),
        ));
    }
    if let Some(expected) = config.decimals
        && decimals != expected
    {
        return Err(Error::invalid(
            SvmInstructions,
            format!("transfer says {decimals} decimals, the mint has {expected}"),
        ));
    }
    // 4..: memo and wallet guards only.
    let mut memos = Vec::new();
    for instruction in &instructions[3..] {
        let program = key(instruction.program_id_index)?;
        if program == &MEMO_PROGRAM {
            memos.push(instruction.data.as_slice());
        } else if program != &LIGHTHOUSE_PROGRAM {
            return Err(Error::invalid(
                SvmInstructions,
                format!("unexpected instruction on program {program}"),
            ));
        }
    }
    if let Some(expected) = &offer.memo
        && (memos.len() != 1 || memos[0] != expected.as_slice())
    {
        return Err(Error::invalid(
            SvmMemoMismatch,
            "the transaction must carry exactly one memo equal to extra.memo",
        ));
    }
    // The payer's signature.
    let slot = keys[..required]
        .iter()
        .position(|k| k == authority)
        .ok_or_else(|| Error::invalid(SvmSignature, "the transfer owner is not a signer"))?;
    if slot == 0 {
        return Err(Error::invalid(
            SvmFeePayerTransferring,
            "the fee payer is the transfer owner",
        ));
    }
    let message_bytes = transaction.message.serialize();
    if !transaction.signatures[slot].verify(authority.as_ref(), &message_bytes) {
        return Err(Error::invalid(
            SvmSignature,
            "the payer's signature does not verify",
        ));
    }
    Ok(Verified {
        payer: (*authority).into(),
        fee_payer: offer.fee_payer.into(),
        amount: TokenAmount::from_u64(amount),
        transaction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::Challenge;
    use crate::policy::PaymentPolicy;
    use crate::signer::LocalSolanaSigner;

    const USDC_DEVNET: &str = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU";
    const PAY_TO: &str = "2wKupLR9q6wXYppw8Gr2NvWxKBUqm4PPJKkQfoxHDBg4";

    fn fee_payer() -> LocalSolanaSigner {
        LocalSolanaSigner::from_secret([9; 32])
    }

    fn challenge(amount: u64, memo: Option<&str>) -> Challenge {
        let memo = memo
            .map(|m| format!(r#","memo":"{m}""#))
            .unwrap_or_default();
        let json = format!(
            r#"{{"x402Version":2,"resource":{{"url":"u"}},"accepts":[{{"scheme":"exact","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1","amount":"{amount}","asset":"{USDC_DEVNET}","payTo":"{PAY_TO}","maxTimeoutSeconds":60,"extra":{{"feePayer":"{}"{memo}}}}}]}}"#,
            fee_payer().pubkey()
        );
        Challenge::from_v2_header(&encoding::encode(json.as_bytes())).unwrap()
    }

    fn chain(program: TokenProgram) -> SolanaChainState {
        SolanaChainState {
            recent_blockhash: [5; 32],
            decimals: 6,
            token_program: program,
        }
    }

    fn pay_and_decode(
        challenge: &Challenge,
        payer: &LocalSolanaSigner,
        program: TokenProgram,
    ) -> PaymentPayload {
        let selected = PaymentPolicy::default().select(challenge).unwrap();
        let header = pay(&selected, payer, &chain(program), &mut |b: &mut [u8]| {
            b.fill(0xab)
        })
        .unwrap();
        PaymentPayload::from_header_value(header.value()).unwrap()
    }

    fn config() -> VerifyConfig {
        VerifyConfig {
            decimals: Some(6),
            ..VerifyConfig::new(vec![fee_payer().pubkey()])
        }
    }

    #[test]
    fn reference_byte_vectors() {
        let limit =
            solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_limit(
                20_000,
            );
        assert_eq!(limit.data, [0x02, 0x20, 0x4e, 0x00, 0x00]);
        let price =
            solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_price(1);
        assert_eq!(price.data, [0x03, 1, 0, 0, 0, 0, 0, 0, 0]);
        let any = Pubkey::new_unique();
        let transfer = spl_token::instruction::transfer_checked(
            &spl_token::id(),
            &any,
            &any,
            &any,
            &any,
            &[],
            1000,
            6,
        )
        .unwrap();
        assert_eq!(transfer.data, [0x0c, 0xe8, 0x03, 0, 0, 0, 0, 0, 0, 0x06]);
        let owner: SolanaAddress = PAY_TO.parse().unwrap();
        let mint: SolanaAddress = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
            .parse()
            .unwrap();
        assert_eq!(
            associated_token_address(&owner, &mint, TokenProgram::Token).to_string(),
            "3XZXfFJHF5ox3yPop16oqYfSWxLpkjsEuvTe2S67G2rj"
        );
        assert_eq!(
            associated_token_address(&owner, &mint, TokenProgram::Token2022).to_string(),
            "H7BrdQ48x8XkXh3UXs7pvPxxF8Z5Ej1WyBwU2ZryzTBL"
        );
    }

    #[test]
    fn signing_a_transaction_without_enough_signature_slots_is_an_error() {
        let payer = LocalSolanaSigner::from_secret([1; 32]);
        let selected_challenge = challenge(1000, None);
        let requirement = selected_challenge.offers()[0].requirement().unwrap();
        let mut transaction = build_transaction(
            requirement,
            payer.pubkey(),
            &chain(TokenProgram::Token),
            [7; 16],
        )
        .unwrap();
        transaction.signatures.clear();
        assert!(matches!(
            sign_transaction(&mut transaction, &payer),
            Err(Error::Signing(_))
        ));
        assert!(transaction.signatures.is_empty(), "nothing was written");
    }

    #[test]
    fn builds_the_documented_layout_and_verifies() {
        let payer = LocalSolanaSigner::from_secret([1; 32]);
        for program in [TokenProgram::Token, TokenProgram::Token2022] {
            let c = challenge(1000, None);
            let payment = pay_and_decode(&c, &payer, program);
            let verified =
                verify(&payment, c.offers()[0].requirement().unwrap(), &config()).unwrap();
            assert_eq!(verified.payer, payer.pubkey());
            assert_eq!(verified.amount, TokenAmount::from_u64(1000));
            let payload: ExactSvmPayload = payment.scheme_payload().unwrap();
            for debug in [
                format!("{verified:?}"),
                format!("{payload:?}"),
                format!("{payment:?}"),
            ] {
                assert!(
                    !debug.contains(&payload.transaction[..24]),
                    "Debug leaks the transaction: {debug}"
                );
                assert!(!debug.contains(&verified.transaction.signatures[1].to_string()[..16]));
            }
            let message = &verified.transaction.message;
            assert_eq!(
                message.static_account_keys()[0],
                Pubkey::from(fee_payer().pubkey())
            );
            assert_eq!(
                verified.transaction.signatures[0],
                Signature::default(),
                "fee payer slot stays empty"
            );
            let memo = &message.instructions()[3];
            assert_eq!(memo.data, b"abababababababababababababababab");
            assert_eq!(
                message.static_account_keys()
                    [usize::from(message.instructions()[2].program_id_index)],
                program.id()
            );
            // The facilitator can complete it.
            let mut verified = verified;
            verified.cosign(&fee_payer()).unwrap();
            assert!(
                verified
                    .transaction
                    .verify_with_results()
                    .iter()
                    .all(|ok| *ok)
            );
            assert!(verified.cosign(&payer).is_err());
        }
    }

    #[test]
    fn extra_memo_is_used_and_enforced() {
        let payer = LocalSolanaSigner::from_secret([1; 32]);
        let with_memo = challenge(1000, Some("pi_3abc123def456"));
        let payment = pay_and_decode(&with_memo, &payer, TokenProgram::Token);
        assert!(
            verify(
                &payment,
                with_memo.offers()[0].requirement().unwrap(),
                &config()
            )
            .is_ok()
        );
        let other_memo = challenge(1000, Some("pi_other"));
        let err = verify_payload(
            &payment.scheme_payload().unwrap(),
            other_memo.offers()[0].requirement().unwrap(),
            &config(),
        )
        .unwrap_err();
        assert_eq!(err.invalid_reason(), Some(InvalidReason::SvmMemoMismatch));
    }

    #[test]
    fn rejects_mismatches_and_bad_signatures() {
        let payer = LocalSolanaSigner::from_secret([1; 32]);
        let c = challenge(1000, None);
        let payload: ExactSvmPayload = pay_and_decode(&c, &payer, TokenProgram::Token)
            .scheme_payload()
            .unwrap();
        let reason = |payload: &ExactSvmPayload,
                      requirement_challenge: &Challenge,
                      config: &VerifyConfig| {
            verify_payload(
                payload,
                requirement_challenge.offers()[0].requirement().unwrap(),
                config,
            )
            .unwrap_err()
            .invalid_reason()
            .unwrap()
        };
        assert_eq!(
            reason(&payload, &challenge(1001, None), &config()),
            InvalidReason::SvmAmountMismatch
        );
        assert_eq!(
            reason(&payload, &challenge(999, None), &config()),
            InvalidReason::SvmAmountMismatch
        );
        assert_eq!(
            reason(&payload, &c, &VerifyConfig::new(vec![payer.pubkey()])),
            InvalidReason::SvmFeePayerNotManaged
        );
        assert_eq!(
            reason(
                &payload,
                &c,
                &VerifyConfig {
                    decimals: Some(9),
                    ..config()
                }
            ),
            InvalidReason::SvmInstructions
        );
        assert_eq!(
            reason(
                &payload,
                &c,
                &VerifyConfig {
                    max_compute_unit_limit: 100,
                    ..config()
                }
            ),
            InvalidReason::SvmComputeBudget
        );
        let other_pay_to = c.offers()[0]
            .raw_json()
            .replace(PAY_TO, "EwWqGE4ZFKLofuestmU4LDdK7XM1N4ALgdZccwYugwGd");
        let json =
            format!(r#"{{"x402Version":2,"resource":{{"url":"u"}},"accepts":[{other_pay_to}]}}"#);
        let elsewhere = Challenge::from_v2_header(&encoding::encode(json.as_bytes())).unwrap();
        assert_eq!(
            reason(&payload, &elsewhere, &config()),
            InvalidReason::SvmRecipientMismatch
        );
        // A flipped bit in the payer's signature.
        let mut transaction = decode_transaction(&payload.transaction).unwrap();
        let mut bytes: [u8; 64] = transaction.signatures[1].into();
        bytes[0] ^= 1;
        transaction.signatures[1] = Signature::from(bytes);
        let forged = ExactSvmPayload {
            transaction: encode_transaction(&transaction).unwrap(),
        };
        assert_eq!(reason(&forged, &c, &config()), InvalidReason::SvmSignature);
        // Garbage.
        for garbage in ["", "AAAA", "!!!", &encoding::encode(&[0x80; 300])] {
            let bad = ExactSvmPayload {
                transaction: garbage.to_owned(),
            };
            assert_eq!(
                reason(&bad, &c, &config()),
                InvalidReason::SvmTransaction,
                "{garbage}"
            );
        }
    }

    #[test]
    fn refuses_to_build_what_it_cannot_pay() {
        let payer = LocalSolanaSigner::from_secret([1; 32]);
        let c = challenge(1000, None);
        let requirement = c.offers()[0].requirement().unwrap();
        assert!(
            build_transaction(
                requirement,
                fee_payer().pubkey(),
                &chain(TokenProgram::Token),
                [0; 16]
            )
            .is_err()
        );
        let huge = challenge(1, None).offers()[0]
            .raw_json()
            .replace("\"amount\":\"1\"", "\"amount\":\"18446744073709551616\"");
        let json = format!(r#"{{"x402Version":2,"resource":{{"url":"u"}},"accepts":[{huge}]}}"#);
        let huge = Challenge::from_v2_header(&encoding::encode(json.as_bytes())).unwrap();
        assert!(matches!(
            build_transaction(
                huge.offers()[0].requirement().unwrap(),
                payer.pubkey(),
                &chain(TokenProgram::Token),
                [0; 16]
            ),
            Err(Error::InvalidAmount { .. })
        ));
        assert!(
            "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
                .parse::<TokenProgram>()
                .is_ok()
        );
        assert!(PAY_TO.parse::<TokenProgram>().is_err());
    }
}
