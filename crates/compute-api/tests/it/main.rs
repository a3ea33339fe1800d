//! compute-api against the devnet on its real chains: every endpoint, paid on Base Sepolia,
//! Solana devnet and MegaETH or from credits, with the balances checked after each payment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use alloy::primitives::U256;
use compute_api::{Auth, Client, Config, Error, Pay, PlanType, ProvisionRequest};
use x402_core::auth::AuthChain;
use x402_core::{EvmSigner, LocalEvmSigner, LocalSolanaSigner, SolanaSigner, UsdMicros};
use x402_reqwest::MemoryJournal;

/// 24 hours of `vc2-1c-1gb` at $0.008 an hour, in USDC atomic units.
const DAY_OF_SMALLEST: u64 = 192_000;

fn entropy() -> x402_reqwest::SharedEntropy {
    Arc::new(test_support::os_random)
}

/// A client for `devnet` authenticated by `auth`, paying with `evm` and `solana` when given.
fn client(
    devnet: &devnet::Devnet,
    auth: Auth,
    evm: Option<&Arc<LocalEvmSigner>>,
    solana: Option<&Arc<LocalSolanaSigner>>,
    journal: Arc<MemoryJournal>,
) -> Client {
    let clock: Arc<dyn x402_core::Clock + Send + Sync> = Arc::new(test_support::Now);
    let mut payers = x402_reqwest::Payers::new();
    if let Some(signer) = evm {
        let mut nonces = x402_reqwest::PermitNonces::new();
        if let Some(megaeth) = devnet.megaeth() {
            nonces = nonces.endpoint(
                x402_core::Network::evm(megaeth.chain_id()),
                megaeth.rpc_url().parse().unwrap(),
            );
        }
        payers = payers.evm(Arc::new(
            x402_reqwest::EvmPayer::new(signer.clone(), clock.clone(), entropy()).permits(nonces),
        ));
    }
    if let Some(signer) = solana {
        payers = payers.solana(Arc::new(
            x402_reqwest::SolanaPayer::new(signer.clone(), entropy()).endpoint(
                x402_core::Network::SOLANA_DEVNET,
                format!("{}/solana", devnet.url()),
            ),
        ));
    }
    let paying = evm.is_some() || solana.is_some();
    Client::new(
        Config::new(devnet.url().parse().unwrap()),
        compute_api::Parts {
            http: x402_reqwest::Transport::default().client().unwrap(),
            payer: paying.then(|| Arc::new(payers) as Arc<dyn x402_reqwest::Payer>),
            journal,
            auth,
            clock,
            entropy: entropy(),
            before_sign: None,
        },
    )
}

fn evm_auth(signer: &Arc<LocalEvmSigner>, chain: AuthChain) -> Auth {
    Auth::Evm {
        signer: signer.clone(),
        chain,
    }
}

async fn usdc(devnet: &devnet::Devnet, owner: alloy::primitives::Address) -> U256 {
    devnet.base().balance_of(owner).await.unwrap()
}

#[tokio::test]
async fn the_catalog_reads_plans_regions_and_images() {
    let devnet = test_support::start().await.unwrap();
    let api = client(&devnet, Auth::None, None, None, Arc::default());
    let standard = api.plans(None).await.unwrap();
    assert!(!standard.is_empty());
    // Without a type, the standard plans only (Vultr's and DigitalOcean's).
    assert!(
        standard
            .iter()
            .all(|p| p.id.starts_with("vc2-") || p.id.starts_with("do:s-")),
        "{standard:?}"
    );
    let gpus = api.plans(Some(PlanType::Vcg)).await.unwrap();
    assert!(
        gpus.iter()
            .all(|p| p.id.starts_with("vcg-") || p.id.starts_with("do:gpu"))
    );
    assert!(gpus.iter().all(|p| p.monthly().is_some()));
    assert!(api.regions().await.unwrap().iter().any(|r| r.id == "ewr"));
    assert!(api.os_images().await.unwrap().iter().any(|o| o.id == 2284));
}

#[tokio::test]
async fn an_instance_lives_its_whole_life_paid_on_base_sepolia() {
    let devnet = test_support::start().await.unwrap();
    let wallet = Arc::new(test_support::funded_wallet(&devnet, 5).await.unwrap());
    let journal = Arc::new(MemoryJournal::new());
    let api = client(
        &devnet,
        evm_auth(&wallet, AuthChain::Base),
        Some(&wallet),
        None,
        journal.clone(),
    );
    let before = usdc(&devnet, wallet.address()).await;

    // Provision: the paid retry carries no wallet auth (the devnet answers 401 to a spent
    // nonce), and the instance belongs to the signed-in wallet.
    let bought = api
        .provision(
            &ProvisionRequest::new("vc2-1c-1gb", "ewr", 24),
            &Pay::X402("base".into()),
        )
        .await
        .unwrap();
    let id = bought.order.id.clone();
    assert!(
        bought
            .tx_hash
            .as_deref()
            .is_some_and(|t| t.starts_with("0x"))
    );
    assert_eq!(
        before - usdc(&devnet, wallet.address()).await,
        U256::from(DAY_OF_SMALLEST)
    );
    assert_eq!(
        usdc(&devnet, devnet::TREASURY).await,
        U256::from(DAY_OF_SMALLEST)
    );
    let entries = x402_reqwest::PaymentJournal::entries(&*journal).unwrap();
    assert_eq!(entries.len(), 1, "journaled");
    assert!(matches!(
        entries[0].state,
        x402_reqwest::PaymentState::Settled { .. }
    ));

    let listed = api.instances().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    let one = api.instance(&id).await.unwrap();
    assert!(one.status.is_up(), "{:?}", one.status);
    assert!(one.ip().is_some());
    let expires = one.expires_unix().unwrap();

    // The one-time password, once.
    let access = api.password(&id).await.unwrap();
    assert_eq!(access.username.as_deref(), Some("root"));
    assert!(!access.password.is_empty());
    let again = api.password(&id).await.unwrap_err();
    assert!(
        matches!(&again, Error::Conflict(m) if m.contains("already retrieved")),
        "{again}"
    );

    // Extend by a day, paid again.
    let extended = api
        .extend(&id, 24, &Pay::X402("base".into()))
        .await
        .unwrap();
    assert_eq!(extended.order.expires_unix().unwrap() - expires, 24 * 3600);
    assert_eq!(
        before - usdc(&devnet, wallet.address()).await,
        U256::from(2 * DAY_OF_SMALLEST)
    );

    // Resize: never paid; the remaining dollars carry over at the new plan's rate, so the
    // instance expires sooner.
    let resized = api.resize(&id, "vc2-1c-2gb", false).await.unwrap();
    assert!(resized.success);
    assert_eq!(resized.to_plan.as_deref(), Some("vc2-1c-2gb"));
    let old = time::OffsetDateTime::parse(
        resized.old_expires_at.as_deref().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let new = time::OffsetDateTime::parse(
        resized.new_expires_at.as_deref().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(new < old, "a dearer plan, the same dollars: fewer hours");
    assert_eq!(
        api.instance(&id).await.unwrap().expires_unix(),
        Some(new.unix_timestamp())
    );
    assert_eq!(
        before - usdc(&devnet, wallet.address()).await,
        U256::from(2 * DAY_OF_SMALLEST),
        "resizing paid nothing"
    );

    // Destroy: listed as destroyed afterwards.
    api.destroy(&id).await.unwrap();
    let after = api.instance(&id).await.unwrap();
    assert!(!after.status.is_live(), "{:?}", after.status);
    assert!(after.destroyed_at.is_some());
    let missing = api.instance("no-such-instance").await.unwrap_err();
    assert!(matches!(missing, Error::NotFound(_)), "{missing}");
}

#[tokio::test]
async fn solana_pays_and_signs_in_and_megaeth_pays_with_a_permit() {
    let devnet = test_support::start().await.unwrap();
    let payer = Arc::new(test_support::funded_solana_wallet(&devnet, 5).unwrap());
    let ledger = devnet.solana().unwrap();
    let api = client(
        &devnet,
        Auth::Solana(payer.clone()),
        None,
        Some(&payer),
        Arc::default(),
    );
    let bought = api
        .provision(
            &ProvisionRequest::new("vc2-1c-1gb", "ewr", 24),
            &Pay::X402("solana".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        ledger.token_balance(&payer.pubkey()),
        5_000_000 - DAY_OF_SMALLEST
    );
    assert_eq!(
        ledger.token_balance(&devnet::SOLANA_TREASURY),
        DAY_OF_SMALLEST
    );
    // Listed under Solana auth.
    let listed = api.instances().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, bought.order.id);

    let wallet = Arc::new(test_support::funded_wallet(&devnet, 5).await.unwrap());
    let megaeth = devnet.megaeth().unwrap();
    let api = client(
        &devnet,
        evm_auth(&wallet, AuthChain::Megaeth),
        Some(&wallet),
        None,
        Arc::default(),
    );
    let before = megaeth.balance_of(devnet::TREASURY).await.unwrap();
    let bought = api
        .provision(
            &ProvisionRequest::new("vc2-1c-1gb", "ewr", 24),
            &Pay::X402("megaeth".into()),
        )
        .await
        .unwrap();
    // 18 decimals: $0.192 is 192 × 10^15.
    let paid = megaeth.balance_of(devnet::TREASURY).await.unwrap() - before;
    assert_eq!(
        paid,
        U256::from(DAY_OF_SMALLEST) * U256::from(10u64).pow(U256::from(12u64))
    );
    assert_eq!(api.instances().await.unwrap()[0].id, bought.order.id);

    // Asked on solana, an EVM-only payer signs nothing.
    let refused = api
        .provision(
            &ProvisionRequest::new("vc2-1c-1gb", "ewr", 24),
            &Pay::X402("solana".into()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Payment(_) | Error::Refused(_)),
        "{refused}"
    );
}

#[tokio::test]
async fn credits_are_topped_up_spent_and_short() {
    let devnet = test_support::start().await.unwrap();
    let wallet = Arc::new(test_support::funded_wallet(&devnet, 5).await.unwrap());
    let api = client(
        &devnet,
        evm_auth(&wallet, AuthChain::Base),
        Some(&wallet),
        None,
        Arc::default(),
    );
    let empty = api.credits().await.unwrap();
    assert_eq!(empty.balance.usd(), Some(UsdMicros(0)));

    // The top-up's paid retry is signed afresh (its first nonce was spent).
    let topped = api
        .top_up(UsdMicros::from_dollars(1), "base")
        .await
        .unwrap();
    assert!(topped.tx_hash.is_some());
    assert_eq!(
        api.credits().await.unwrap().balance.usd(),
        Some(UsdMicros::from_dollars(1))
    );
    assert_eq!(
        usdc(&devnet, devnet::TREASURY).await,
        U256::from(1_000_000u64)
    );

    let bought = api
        .provision(
            &ProvisionRequest::new("vc2-1c-1gb", "ewr", 24),
            &Pay::Credits,
        )
        .await
        .unwrap();
    api.extend(&bought.order.id, 24, &Pay::Credits)
        .await
        .unwrap();
    assert_eq!(
        api.credits().await.unwrap().balance.usd(),
        Some(UsdMicros(1_000_000 - 2 * DAY_OF_SMALLEST))
    );
    assert_eq!(
        usdc(&devnet, devnet::TREASURY).await,
        U256::from(1_000_000u64),
        "credits moved no USDC"
    );

    // A GPU month is far beyond the balance: the shortfall is named.
    let short = api
        .provision(
            &ProvisionRequest::new("vcg-a100-1c-2g-6gb", "ewr", 720),
            &Pay::Credits,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(short, Error::InsufficientCredits { .. }),
        "{short}"
    );
    assert!(short.to_string().contains("short"), "{short}");

    // Under $1, or without auth: refused before anything is sent.
    assert!(matches!(
        api.top_up(UsdMicros(500_000), "base").await.unwrap_err(),
        Error::Invalid(_)
    ));
    let anonymous = client(&devnet, Auth::None, Some(&wallet), None, Arc::default());
    assert!(matches!(
        anonymous.credits().await.unwrap_err(),
        Error::Auth(_)
    ));
}

#[tokio::test]
async fn api_keys_are_created_used_and_revoked() {
    let devnet = test_support::start().await.unwrap();
    let wallet = Arc::new(test_support::funded_wallet(&devnet, 5).await.unwrap());
    let signed = client(
        &devnet,
        evm_auth(&wallet, AuthChain::Base),
        Some(&wallet),
        None,
        Arc::default(),
    );
    signed
        .provision(
            &ProvisionRequest::new("vc2-1c-1gb", "ewr", 24),
            &Pay::X402("base".into()),
        )
        .await
        .unwrap();
    let created = signed.create_api_key(Some("agent")).await.unwrap();
    assert!(created.api_key.starts_with("x402c_"));
    assert!(!format!("{created:?}").contains(&created.api_key));

    let key = compute_api::ApiKey::new(created.api_key.clone()).unwrap();
    let keyed = client(
        &devnet,
        Auth::ApiKey(key.clone()),
        None,
        None,
        Arc::default(),
    );
    assert_eq!(
        keyed.instances().await.unwrap().len(),
        1,
        "the key sees the wallet's instances"
    );
    let listed = signed.api_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key_last4.as_deref(), Some(key.last4()));
    // A key cannot make or revoke keys.
    assert!(matches!(
        keyed.create_api_key(None).await.unwrap_err(),
        Error::Auth(_)
    ));

    signed.revoke_api_key(&created.id).await.unwrap();
    let refused = keyed.instances().await.unwrap_err();
    assert!(matches!(refused, Error::Auth(_)), "{refused}");
}

#[tokio::test]
async fn the_spend_cap_refuses_before_signing() {
    let devnet = test_support::start().await.unwrap();
    let wallet = Arc::new(test_support::funded_wallet(&devnet, 50).await.unwrap());
    let journal = Arc::new(MemoryJournal::new());
    let clock: Arc<dyn x402_core::Clock + Send + Sync> = Arc::new(test_support::Now);
    let api = Client::new(
        Config {
            max_spend: UsdMicros::from_dollars(1),
            ..Config::new(devnet.url().parse().unwrap())
        },
        compute_api::Parts {
            http: x402_reqwest::Transport::default().client().unwrap(),
            payer: Some(Arc::new(x402_reqwest::EvmPayer::new(
                wallet.clone(),
                clock.clone(),
                entropy(),
            ))),
            journal: journal.clone(),
            auth: Auth::None,
            clock,
            entropy: entropy(),
            before_sign: None,
        },
    );
    // A GPU for a month is ~$400, over the $1 cap.
    let refused = api
        .provision(
            &ProvisionRequest::new("vcg-a100-1c-2g-6gb", "ewr", 720),
            &Pay::X402("base".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Refused(_)), "{refused}");
    assert!(
        x402_reqwest::PaymentJournal::entries(&*journal)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        usdc(&devnet, wallet.address()).await,
        U256::from(50_000_000u64)
    );
    // Fewer than 24 hours: refused before anything is sent.
    assert!(matches!(
        api.provision(
            &ProvisionRequest::new("vc2-1c-1gb", "ewr", 23),
            &Pay::X402("base".into())
        )
        .await
        .unwrap_err(),
        Error::Invalid(_)
    ));
}

#[tokio::test]
async fn an_ows_wallet_signs_requests_through_the_ows_binary() {
    use std::os::unix::fs::PermissionsExt as _;
    let devnet = test_support::start().await.unwrap();
    let wallet = Arc::new(test_support::funded_wallet(&devnet, 5).await.unwrap());
    // The instance to list, bought by the same wallet.
    let signed = client(
        &devnet,
        evm_auth(&wallet, AuthChain::Base),
        Some(&wallet),
        None,
        Arc::default(),
    );
    signed
        .provision(
            &ProvisionRequest::new("vc2-1c-1gb", "ewr", 24),
            &Pay::X402("base".into()),
        )
        .await
        .unwrap();

    // A fake `ows`: it lists the wallet, and answers `sign message` for exactly the message
    // this request will sign (fixed clock and nonce), with the wallet's real signature.
    let now = test_support::Now.now_ms();
    let nonce = "07070707070707070707070707070707";
    let address = format!("{:#x}", wallet.address());
    let message = x402_core::auth::message(
        AuthChain::Base,
        &address,
        "GET",
        "/compute/instances",
        b"",
        now,
        nonce,
    );
    let signature = wallet.sign_personal_message(message.as_bytes()).unwrap();
    let dir = std::env::temp_dir().join(format!("fake-ows-{}-{now}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = dir.join("args");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{log}'\nif [ \"$1\" = wallet ]; then\n  printf 'Name:    agent\\nID:      1\\n  eip155:8453 → {checksummed}\\n'\n  exit 0\nfi\nif [ \"$1 $2 $4 $6\" = 'sign message eip155:8453 agent' ] && [ \"$8\" = '{message}' ]; then\n  printf '{{\"signature\":\"{hex}\"}}'\n  exit 0\nfi\nexit 3\n",
        log = log.display(),
        checksummed = wallet.address().to_checksum(None),
        message = message,
        hex = alloy::hex::encode(signature.as_bytes()),
    );
    let bin = dir.join("ows");
    std::fs::write(&bin, script).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();

    let ows = compute_api::Ows::new(&bin, "agent").unwrap();
    let ows_address = ows.address(AuthChain::Base).unwrap();
    assert_eq!(ows_address, address);
    let clock: Arc<dyn x402_core::Clock + Send + Sync> =
        Arc::new(x402_core::clock::FixedClock::from_unix_ms(now));
    let api = Client::new(
        Config::new(devnet.url().parse().unwrap()),
        compute_api::Parts {
            http: x402_reqwest::Transport::default().client().unwrap(),
            payer: None,
            journal: Arc::new(MemoryJournal::new()),
            auth: Auth::Ows {
                ows,
                chain: AuthChain::Base,
                address: ows_address,
            },
            clock,
            entropy: Arc::new(|buf: &mut [u8]| buf.fill(7)),
            before_sign: None,
        },
    );
    let listed = api.instances().await.unwrap();
    assert_eq!(listed.len(), 1, "signed by OWS, accepted by the devnet");
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(args.contains("--json"), "{args}");
    // OWS never pays: without a payer, provision is refused before signing anything.
    let refused = api
        .provision(
            &ProvisionRequest::new("vc2-1c-1gb", "ewr", 24),
            &Pay::X402("base".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Refused(_)), "{refused}");
    // An ows the world may rewrite is refused.
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o757)).unwrap();
    assert!(compute_api::Ows::new(&bin, "agent").is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
