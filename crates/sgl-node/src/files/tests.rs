#![allow(clippy::unwrap_used)]

use super::*;

fn node_file(dir: &ConfigDir) -> NodeFile {
    NodeFile {
        node_id: "7f8d6c0e-55a4-4b1c-9d7e-0a1b2c3d4e5f".into(),
        auth_token: AuthToken::new("token-1"),
        wallet_address: "Wallet111".into(),
        tee_type: "none".into(),
        orchestrator_url: "http://127.0.0.1:1".into(),
        keypair_path: dir.keypair_path(),
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn files_are_private_and_a_registration_is_not_overwritten() {
    let temp = tempfile::tempdir().unwrap();
    let dir = ConfigDir::new(temp.path().join("sgl-node"));
    dir.ensure_unregistered().unwrap();
    assert!(matches!(dir.load(), Err(Error::NotRegistered(_))));
    let keypair = dir.load_or_create_keypair().unwrap();
    dir.save_node(&node_file(&dir)).unwrap();
    assert!(matches!(
        dir.ensure_unregistered(),
        Err(Error::AlreadyRegistered(_))
    ));
    #[cfg(unix)]
    {
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.node_path()), 0o600);
        assert_eq!(mode(&dir.keypair_path()), 0o600);
        // Loosened modes are repaired on load.
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(dir.node_path(), fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(dir.keypair_path(), fs::Permissions::from_mode(0o666)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (node, loaded) = dir.load().unwrap();
    #[cfg(unix)]
    {
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.node_path()), 0o600);
        assert_eq!(mode(&dir.keypair_path()), 0o600);
    }
    assert_eq!(loaded.public_b58(), keypair.public_b58());
    assert_eq!(node.auth_token.expose(), "token-1");
    assert!(!format!("{node:?}").contains("token-1"));
    // The key is reused, not replaced.
    assert_eq!(
        dir.load_or_create_keypair().unwrap().public_b58(),
        keypair.public_b58()
    );
}

#[test]
fn the_keypair_file_is_64_numbers_seed_then_public() {
    let temp = tempfile::tempdir().unwrap();
    let dir = ConfigDir::new(temp.path().to_path_buf());
    let keypair = dir.load_or_create_keypair().unwrap();
    let numbers: Vec<u8> = serde_json::from_slice(&fs::read(dir.keypair_path()).unwrap()).unwrap();
    assert_eq!(numbers.len(), 64);
    assert_eq!(&numbers[..32], keypair.seed());
    assert_eq!(
        bs58::encode(&numbers[32..]).into_string(),
        keypair.public_b58()
    );
    // A Solana-style file written elsewhere reads back.
    let other = Keypair::from_seed([3; 32]);
    let json = serde_json::to_vec(other.to_bytes().as_slice()).unwrap();
    fs::write(dir.keypair_path(), json).unwrap();
    assert_eq!(
        load_keypair(&dir.keypair_path()).unwrap().public_b58(),
        other.public_b58()
    );
    fs::write(dir.keypair_path(), b"[1,2,3]").unwrap();
    assert!(matches!(
        load_keypair(&dir.keypair_path()),
        Err(Error::BadFile { .. })
    ));
}

#[test]
fn a_rotated_token_is_persisted() {
    let temp = tempfile::tempdir().unwrap();
    let dir = ConfigDir::new(temp.path().to_path_buf());
    dir.load_or_create_keypair().unwrap();
    dir.save_node(&node_file(&dir)).unwrap();
    (dir.token_persister())(&AuthToken::new("token-2")).unwrap();
    let (node, _) = dir.load().unwrap();
    assert_eq!(node.auth_token.expose(), "token-2");
    assert_eq!(node.wallet_address, "Wallet111");
}
