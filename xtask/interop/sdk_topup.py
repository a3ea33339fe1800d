"""The official x402 Python SDK pays the devnet.

Run by `cargo xtask interop` with the devnet running at argv[1]. The script:
1. makes a fresh EVM account and funds it through the devnet's admin route;
2. creates an API key with the compute API's wallet-signature auth, signed here with
   eth-account (an independent check of the devnet's X-Auth-* verifier);
3. lets the SDK's own requests client (default $1 spend cap, so a $1 top-up) (`x402_requests` with `ExactEvmScheme`) pay
   `POST /compute/credits/topup`, answering the devnet's 402 by itself;
4. checks the 200, the PAYMENT-RESPONSE receipt and that the credit balance rose.

Prints `sdk: N passed, N failed` and exits non-zero on any failure.
"""

import base64
import hashlib
import json
import secrets
import sys
import time

import requests
from eth_account import Account
from eth_account.messages import encode_defunct
from x402 import x402ClientSync
from x402.http.clients import x402_requests
from x402.mechanisms.evm.exact import ExactEvmScheme
from x402.mechanisms.evm.signers import EthAccountSigner

URL = sys.argv[1].rstrip("/")
results = []


def check(name, condition, detail=""):
    results.append(bool(condition))
    print(f"{'ok  ' if condition else 'FAIL'} sdk: {name}{'' if condition else ': ' + str(detail)}")


def wallet_auth_headers(account, method, path, body):
    address = account.address.lower()
    timestamp = str(int(time.time() * 1000))
    nonce = secrets.token_hex(16)
    lines = ["X402-COMPUTE-AUTH", "v1", "base", address, method, path, hashlib.sha256(body).hexdigest(), timestamp, nonce]
    signature = Account.sign_message(encode_defunct(text="\n".join(lines)), private_key=account.key).signature.hex()
    if not signature.startswith("0x"):
        signature = "0x" + signature
    return {
        "X-Auth-Address": address, "X-Auth-Chain": "base", "X-Auth-Signature": signature,
        "X-Auth-Timestamp": timestamp, "X-Auth-Nonce": nonce, "X-Auth-Sig-Encoding": "hex",
    }


def main():
    account = Account.create()
    funded = requests.post(f"{URL}/devnet/fund", json={"address": account.address, "usdc": "20"}, timeout=30)
    check("devnet funds the SDK's wallet", funded.status_code == 200, funded.text)

    body = json.dumps({"label": "python-sdk"}, separators=(",", ":")).encode()
    created = requests.post(f"{URL}/compute/api-keys", data=body, headers={"Content-Type": "application/json", **wallet_auth_headers(account, "POST", "/compute/api-keys", body)}, timeout=30)
    check("eth-account wallet auth creates an API key (201)", created.status_code == 201, created.text)
    api_key = created.json().get("api_key", "")

    client = x402ClientSync()
    client.register("eip155:84532", ExactEvmScheme(signer=EthAccountSigner(account)))
    session = x402_requests(client)
    session.headers["X-API-Key"] = api_key
    before = requests.get(f"{URL}/compute/credits/balance", headers={"X-API-Key": api_key}, timeout=30).json()
    paid = session.post(f"{URL}/compute/credits/topup", json={"amount": 1, "network": "base"}, timeout=60)
    check("the SDK pays the top-up (200)", paid.status_code == 200, f"{paid.status_code} {paid.text}")
    receipt_header = paid.headers.get("PAYMENT-RESPONSE")
    check("a PAYMENT-RESPONSE receipt comes back", receipt_header is not None, dict(paid.headers))
    if receipt_header:
        receipt = json.loads(base64.b64decode(receipt_header))
        check("the receipt says success on eip155:84532", receipt.get("success") is True and receipt.get("network") == "eip155:84532", receipt)
        check("the receipt names the SDK's wallet", receipt.get("payer", "").lower() == account.address.lower(), receipt)
    after = requests.get(f"{URL}/compute/credits/balance", headers={"X-API-Key": api_key}, timeout=30).json()
    check("the credit balance rose by $1", before.get("balance") in (0, "0.00") and after.get("balance") == "1.00", (before, after))

    passed = sum(results)
    print(f"sdk: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
