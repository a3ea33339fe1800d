"""Independent cross-check of the payment headers that x402-core's `pay` example prints.

Run by `cargo xtask interop` (part of `cargo xtask ci`) inside a venv with pinned
eth-account and solders. For each challenge below it writes a saved 402 response, runs the
example with a fresh random key, and checks the printed header with these libraries only:

- EVM `exact` (v1 Base, v2 Base Sepolia): the EIP-3009 signature recovers, under the
  challenge's EIP-712 domain, to the key's address; `to`, `value` and the time window match.
- EVM `permit` (v2 MegaETH): the ERC-2612 signature recovers to the key's address; spender,
  value, nonce and deadline match.
- Solana `exact` (v2 and v1 devnet, SPL Token and Token-2022): the transaction deserializes,
  the payer's signature verifies, the fee-payer slot is empty, TransferChecked carries the
  amount, decimals, mint and destination ATA, and the memo is there.
- The example exits non-zero, printing nothing, for a 402 without a challenge and for an
  offer above the spend cap.

Prints `N passed, N failed` and exits non-zero on any failure.
"""

import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

from eth_account import Account
from eth_account.messages import encode_typed_data
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

PAY_BIN = sys.argv[1]
PAY_TO_EVM = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
PAY_TO_SOL = "2wKupLR9q6wXYppw8Gr2NvWxKBUqm4PPJKkQfoxHDBg4"
FEE_PAYER = "EwWqGE4ZFKLofuestmU4LDdK7XM1N4ALgdZccwYugwGd"
FACILITATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
USDC_DEVNET = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"
TOKEN = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022 = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
COMPUTE_BUDGET = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")

results = []


def check(name, condition, detail=""):
    results.append((name, bool(condition)))
    print(f"{'ok  ' if condition else 'FAIL'} {name}{'' if condition else ': ' + str(detail)}")


def b64json(obj):
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def run_pay(response, env, extra_args=()):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(response, f)
        path = f.name
    full_env = {k: v for k, v in os.environ.items() if k not in ("PRIVATE_KEY", "SOLANA_SECRET_KEY")}
    full_env.update(env)
    proc = subprocess.run([PAY_BIN, "--response", path, *extra_args], env=full_env, capture_output=True, text=True)
    os.unlink(path)
    return proc


def header_of(proc, case):
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != 1 or ": " not in lines[0]:
        check(f"{case}: example printed one header line", False, f"rc={proc.returncode} out={proc.stdout!r} err={proc.stderr!r}")
        return None, None
    name, value = lines[0].split(": ", 1)
    return name, json.loads(base64.b64decode(value, validate=True))


def v2_response(offer, resource="https://compute.example/compute/credits/topup"):
    challenge = {"x402Version": 2, "error": "PAYMENT-SIGNATURE header is required", "resource": {"url": resource}, "accepts": [offer]}
    return {"status": 402, "headers": {"PAYMENT-REQUIRED": b64json(challenge)}, "body": {}}


def v1_response(offer):
    return {"status": 402, "headers": {}, "body": {"x402Version": 1, "error": "X-PAYMENT header is required", "accepts": [offer]}}


def check_evm_exact(case, response, offer, version):
    account = Account.create()
    proc = run_pay(response, {"PRIVATE_KEY": account.key.hex()})
    name, payment = header_of(proc, case)
    if payment is None:
        return
    check(f"{case}: header name", name == ("X-PAYMENT" if version == 1 else "PAYMENT-SIGNATURE"), name)
    if version == 2:
        check(f"{case}: accepted echoes the offer", payment["accepted"] == offer, payment.get("accepted"))
        network = offer["network"]
        amount = offer["amount"]
    else:
        check(f"{case}: v1 envelope", payment["scheme"] == "exact" and payment["network"] == offer["network"], payment)
        network = offer["network"]
        amount = offer["maxAmountRequired"]
    chain_id = {"base": 8453, "base-sepolia": 84532}.get(network) or int(network.split(":")[1])
    auth = payment["payload"]["authorization"]
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "TransferWithAuthorization": [
                {"name": "from", "type": "address"},
                {"name": "to", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "validAfter", "type": "uint256"},
                {"name": "validBefore", "type": "uint256"},
                {"name": "nonce", "type": "bytes32"},
            ],
        },
        "primaryType": "TransferWithAuthorization",
        "domain": {"name": offer["extra"]["name"], "version": offer["extra"]["version"], "chainId": chain_id, "verifyingContract": offer["asset"]},
        "message": {
            "from": auth["from"],
            "to": auth["to"],
            "value": int(auth["value"]),
            "validAfter": int(auth["validAfter"]),
            "validBefore": int(auth["validBefore"]),
            "nonce": bytes.fromhex(auth["nonce"][2:]),
        },
    }
    recovered = Account.recover_message(encode_typed_data(full_message=typed), signature=payment["payload"]["signature"])
    check(f"{case}: eth-account recovers the payer", recovered == account.address, (recovered, account.address))
    check(f"{case}: from is the payer", auth["from"] == account.address, auth["from"])
    check(f"{case}: to is payTo", auth["to"].lower() == offer["payTo"].lower(), auth["to"])
    check(f"{case}: value is the amount", auth["value"] == amount, auth["value"])
    now = int(time.time())
    window_ok = int(auth["validAfter"]) <= now <= int(auth["validBefore"]) and int(auth["validBefore"]) - int(auth["validAfter"]) == offer["maxTimeoutSeconds"] + 600
    check(f"{case}: validity window", window_ok, auth)
    check(f"{case}: 32-byte nonce", len(bytes.fromhex(auth["nonce"][2:])) == 32, auth["nonce"])
    sig = bytes.fromhex(payment["payload"]["signature"][2:])
    check(f"{case}: 65-byte signature with v in 27/28", len(sig) == 65 and sig[64] in (27, 28), len(sig))


def check_permit(case):
    offer = {
        "scheme": "permit", "network": "eip155:4326", "amount": "1500000000000000000",
        "asset": "0xFAfDdbb3FC7688494971a79cc65DCa3EF82079E7", "payTo": PAY_TO_EVM, "maxTimeoutSeconds": 120,
        "extra": {"name": "MegaUSD", "version": "1", "facilitatorAddress": FACILITATOR},
    }
    account = Account.create()
    proc = run_pay(v2_response(offer), {"PRIVATE_KEY": account.key.hex()}, ["--permit-nonce", "7"])
    name, payment = header_of(proc, case)
    if payment is None:
        return
    check(f"{case}: header name", name == "PAYMENT-SIGNATURE", name)
    check(f"{case}: accepted echoes the offer", payment["accepted"] == offer, payment.get("accepted"))
    permit = payment["payload"]["permit"]
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {"name": "MegaUSD", "version": "1", "chainId": 4326, "verifyingContract": offer["asset"]},
        "message": {
            "owner": permit["owner"], "spender": permit["spender"], "value": int(permit["value"]),
            "nonce": int(permit["nonce"]), "deadline": int(permit["deadline"]),
        },
    }
    recovered = Account.recover_message(encode_typed_data(full_message=typed), signature=payment["payload"]["signature"])
    check(f"{case}: eth-account recovers the owner", recovered == account.address, (recovered, account.address))
    check(f"{case}: spender is the facilitator", permit["spender"] == FACILITATOR, permit["spender"])
    check(f"{case}: value is the amount (18 decimals, exact)", permit["value"] == offer["amount"], permit["value"])
    check(f"{case}: nonce is the one given", permit["nonce"] == "7", permit["nonce"])
    now = int(time.time())
    check(f"{case}: deadline is now + maxTimeoutSeconds", abs(int(permit["deadline"]) - (now + 120)) <= 5, permit["deadline"])


def ata(owner, mint, program):
    return Pubkey.find_program_address([bytes(owner), bytes(program), bytes(mint)], ATA_PROGRAM)[0]


def check_solana(case, version, program, memo=None, decimals=6):
    extra = {"feePayer": FEE_PAYER}
    if memo is not None:
        extra["memo"] = memo
    offer = {"scheme": "exact", "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1" if version == 2 else "solana-devnet",
             "asset": USDC_DEVNET, "payTo": PAY_TO_SOL, "maxTimeoutSeconds": 60, "extra": extra}
    if version == 2:
        offer["amount"] = "1234567"
        response = v2_response(offer)
    else:
        offer.update({"maxAmountRequired": "1234567", "resource": "https://compute.example/x", "description": ""})
        response = v1_response(offer)
    payer = Keypair()
    blockhash = Hash.new_unique()
    secret = json.dumps(list(bytes(payer))) if program == TOKEN else str(payer)
    args = ["--blockhash", str(blockhash), "--decimals", str(decimals), "--token-program", str(program)]
    proc = run_pay(response, {"SOLANA_SECRET_KEY": secret}, args)
    name, payment = header_of(proc, case)
    if payment is None:
        return
    check(f"{case}: header name", name == ("PAYMENT-SIGNATURE" if version == 2 else "X-PAYMENT"), name)
    if version == 2:
        check(f"{case}: accepted echoes the offer", payment["accepted"] == offer, payment.get("accepted"))
    raw = base64.b64decode(payment["payload"]["transaction"], validate=True)
    tx = VersionedTransaction.from_bytes(raw)
    check(f"{case}: solders re-serializes the same bytes", bytes(tx) == raw)
    msg = tx.message
    keys = list(msg.account_keys)
    check(f"{case}: v0 message without lookup tables", type(msg).__name__ == "MessageV0" and len(msg.address_table_lookups) == 0, type(msg).__name__)
    check(f"{case}: fee payer is account 0", keys[0] == Pubkey.from_string(FEE_PAYER), keys[0])
    check(f"{case}: recent blockhash", msg.recent_blockhash == blockhash)
    check(f"{case}: fee-payer signature slot is empty", tx.signatures[0] == Signature.default())
    index = keys.index(payer.pubkey())
    signed = to_bytes_versioned(msg)
    check(f"{case}: payer signature verifies", tx.signatures[index].verify(payer.pubkey(), signed))
    ixs = msg.instructions
    programs = [keys[ix.program_id_index] for ix in ixs]
    check(f"{case}: instruction programs", programs == [COMPUTE_BUDGET, COMPUTE_BUDGET, program, MEMO], programs)
    check(f"{case}: SetComputeUnitLimit(20000)", bytes(ixs[0].data) == bytes([2]) + struct.pack("<I", 20000), bytes(ixs[0].data))
    check(f"{case}: SetComputeUnitPrice(1)", bytes(ixs[1].data) == bytes([3]) + struct.pack("<Q", 1), bytes(ixs[1].data))
    data = bytes(ixs[2].data)
    accounts = [keys[i] for i in bytes(ixs[2].accounts)]
    mint = Pubkey.from_string(USDC_DEVNET)
    check(f"{case}: TransferChecked amount and decimals", data == bytes([12]) + struct.pack("<Q", 1234567) + bytes([decimals]), data.hex())
    check(f"{case}: TransferChecked source ATA", accounts[0] == ata(payer.pubkey(), mint, program), accounts[0])
    check(f"{case}: TransferChecked mint", accounts[1] == mint, accounts[1])
    check(f"{case}: TransferChecked destination ATA", accounts[2] == ata(Pubkey.from_string(PAY_TO_SOL), mint, program), accounts[2])
    check(f"{case}: TransferChecked owner is the payer", accounts[3] == payer.pubkey(), accounts[3])
    check(f"{case}: fee payer in no instruction", all(keys[i] != keys[0] for ix in ixs for i in bytes(ix.accounts)))
    memo_data = bytes(ixs[3].data)
    if memo is None:
        check(f"{case}: random memo of 32 hex chars", len(memo_data) == 32 and all(c in b"0123456789abcdef" for c in memo_data), memo_data)
    else:
        check(f"{case}: memo is extra.memo", memo_data == memo.encode(), memo_data)


def check_refusals():
    account = Account.create()
    proc = run_pay({"status": 402, "headers": {}, "body": {"error": "insufficient credits", "shortfall": "3.50"}}, {"PRIVATE_KEY": account.key.hex()})
    check("no challenge: non-zero exit, nothing printed, server message shown",
          proc.returncode != 0 and proc.stdout == "" and "insufficient credits" in proc.stderr, (proc.returncode, proc.stdout, proc.stderr))
    dear = {"scheme": "exact", "network": "eip155:84532", "amount": "900000000", "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "payTo": PAY_TO_EVM, "maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2"}}
    proc = run_pay(v2_response(dear), {"PRIVATE_KEY": account.key.hex()})
    check("above the $500 cap: refused before signing", proc.returncode != 0 and proc.stdout == "" and "cap" in proc.stderr, (proc.returncode, proc.stderr))
    proc = run_pay(v2_response(dear), {})
    check("no key: refused with a hint", proc.returncode != 0 and "PRIVATE_KEY" in proc.stderr, proc.stderr)


def main():
    base = {"scheme": "exact", "network": "base", "maxAmountRequired": "90000000", "asset": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
            "payTo": PAY_TO_EVM, "resource": "https://compute.example/compute/provision", "description": "", "maxTimeoutSeconds": 300,
            "extra": {"name": "USD Coin", "version": "2"}}
    check_evm_exact("base v1", v1_response(base), base, 1)
    sepolia = {"scheme": "exact", "network": "eip155:84532", "amount": "10000", "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
               "payTo": PAY_TO_EVM, "maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2"}}
    check_evm_exact("base-sepolia v2", v2_response(sepolia), sepolia, 2)
    check_permit("megaeth permit v2")
    check_solana("solana-devnet v2 token", 2, TOKEN)
    check_solana("solana-devnet v2 token-2022 memo", 2, TOKEN_2022, memo="pi_3abc123def456")
    check_solana("solana-devnet v1 token", 1, TOKEN)
    check_refusals()
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print(f"interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
