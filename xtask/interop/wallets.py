"""Independent cross-check of x402c's wallet files (run by `cargo xtask interop`).

- A keystore written by `x402c wallet new` decrypts with eth-account to the address x402c
  printed, and a Solana keypair file it wrote loads in solders to the printed address.
- A keystore written by eth-account (scrypt) opens in x402c (`wallet address --verify`) and
  a keypair file written by solders reads in x402c, both giving the libraries' addresses.

Prints `N passed, N failed` and exits non-zero on any failure.
"""

import json
import os
import subprocess
import sys
import tempfile

from eth_account import Account
from solders.keypair import Keypair

X402C = sys.argv[1]
PASSWORD = "interop password"
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))


def x402c(wallets, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("PRIVATE_KEY", "SOLANA_SECRET_KEY")}
    env.update({"X402C_WALLETS": wallets, "X402C_PASSWORD": PASSWORD,
                "X402C_CONFIG": os.path.join(wallets, "none.toml"),
                "X402C_JOURNAL": os.path.join(wallets, "journal.sqlite")})
    out = subprocess.run([X402C, *args, "--json"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"x402c {' '.join(args)}: {out.stderr}")
    return json.loads(out.stdout)


with tempfile.TemporaryDirectory() as wallets:
    made = x402c(wallets, "wallet", "new", "--solana")
    with open(os.path.join(wallets, "default.json")) as f:
        keystore = json.load(f)
    key = Account.decrypt(keystore, PASSWORD)
    check("eth-account decrypts x402c's keystore to its address",
          Account.from_key(key).address.lower() == made["evm"].lower(),
          f"{Account.from_key(key).address} vs {made['evm']}")
    check("x402c's keystore uses scrypt", keystore["crypto"]["kdf"] == "scrypt")
    with open(os.path.join(wallets, "default.solana.json")) as f:
        pair = Keypair.from_json(f.read())
    check("solders reads x402c's keypair file to its address", str(pair.pubkey()) == made["solana"],
          f"{pair.pubkey()} vs {made['solana']}")

    theirs = Account.create()
    encrypted = Account.encrypt(theirs.key, PASSWORD, kdf="scrypt")
    with open(os.path.join(wallets, "eth.json"), "w") as f:
        json.dump(encrypted, f)
    verified = x402c(wallets, "--wallet", "eth", "wallet", "address", "--verify")
    check("x402c opens eth-account's keystore", verified["evm"].lower() == theirs.address.lower(),
          f"{verified['evm']} vs {theirs.address}")
    keypair = Keypair()
    with open(os.path.join(wallets, "sol.solana.json"), "w") as f:
        f.write(keypair.to_json())
    os.chmod(os.path.join(wallets, "sol.solana.json"), 0o600)
    read = x402c(wallets, "--wallet", "sol", "wallet", "address")
    check("x402c reads solders' keypair file", read["solana"] == str(keypair.pubkey()),
          f"{read['solana']} vs {keypair.pubkey()}")

passed = sum(results)
print(f"wallets: {passed} passed, {len(results) - passed} failed")
sys.exit(0 if all(results) else 1)
