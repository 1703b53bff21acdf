//! `cleanroom prepare` with the tokenization key in a PKCS#11 token (SoftHSM2, set up by
//! the test): the key is generated in the token, every token is computed there, the
//! manifest names the key's home, and an unreachable token or a wrong PIN is one clear
//! line with nothing written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

const PIN: &str = "4711-test";
const TOKEN: &str = "owner-hsm";

fn cleanroom(args: &[&str], pin: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleanroom"))
        .args(args)
        .env("CLEANROOM_PKCS11_PIN", pin)
        .output()
        .expect("run cleanroom")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn prepare_tokenizes_through_a_pkcs11_token() {
    let hsm = hsm::softhsm::shared(Path::new(env!("CARGO_TARGET_TMPDIR")), &[TOKEN], PIN)
        .unwrap_or_else(|e| panic!("SoftHSM2 is needed for this test: {e}"));
    let module = hsm.module().to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let loc = ["--pkcs11-module", &module, "--pkcs11-token", TOKEN, "--pkcs11-key", "tokenization"];

    let o = cleanroom(&[&["keys", "pkcs11-init"][..], &loc].concat(), PIN);
    assert!(o.status.success(), "{}", text(&o));
    let key_id = text(&o).lines().find_map(|l| l.strip_prefix("key id (population): ")).unwrap().to_string();

    let o = cleanroom(&["generate", "--rows", "300", "--seed", "4", "--out", &d("data")], PIN);
    assert!(o.status.success(), "{}", text(&o));
    let rules = d("rules.toml");
    common::write_small_table_rules(std::path::Path::new(&rules));
    let csv = d("data/bank.csv");
    let prepare = |out: &str, pin: &str, loc: &[&str]| {
        cleanroom(
            &[&["prepare", &csv, "--rules", &rules, "--keys", &d("owner.keys"), "--out", out][..], loc].concat(),
            pin,
        )
    };

    // A wrong PIN and a missing module: one line each, exit non-zero, nothing written.
    let o = prepare(&d("wrong-pin"), "0000", &loc);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong PIN"), "{}", text(&o));
    assert!(!text(&o).contains(PIN));
    assert!(!Path::new(&d("wrong-pin")).exists());
    let gone =
        ["--pkcs11-module", "/nonexistent/libpkcs11.so", "--pkcs11-token", TOKEN, "--pkcs11-key", "tokenization"];
    let o = prepare(&d("no-module"), PIN, &gone);
    assert!(!o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim().lines().count(), 1, "{}", text(&o));
    assert!(!Path::new(&d("no-module")).exists());

    let o = prepare(&d("sealed"), PIN, &loc);
    assert!(o.status.success(), "{}", text(&o));
    let m = owner_prep::prepare::load_manifest(Path::new(&d("sealed"))).unwrap();
    assert_eq!(m.population(), Some(key_id.as_str()));
    assert_eq!(m.lineage.token_key.as_deref(), Some(format!("{key_id} (pkcs11:{TOKEN}/tokenization)").as_str()));

    // The sealed tokens are the token's HMAC of each customer id, checked through the token.
    let ks = owner_prep::keystore::KeyStore::open(Path::new(&d("owner.keys"))).unwrap();
    assert_ne!(ks.key_id(), key_id, "the key file's own key was not used");
    let batches =
        owner_prep::prepare::open_sealed(Path::new(&d("sealed")), &ks.data_key(&m.dataset_digest).unwrap()).unwrap();
    let sealed: std::collections::BTreeSet<[u8; 32]> = batches
        .iter()
        .flat_map(|b| match b.column("customer_token") {
            Some(protocol::table::ColumnData::Token(t)) => t.clone(),
            _ => panic!("no token column"),
        })
        .collect();
    let token = hsm::Token::open(hsm.module(), TOKEN, &hsm::Pin::new(PIN)).unwrap();
    let key = token.find_hmac_key("tokenization").unwrap();
    let ids: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let expected: std::collections::BTreeSet<[u8; 32]> =
        ids.iter().map(|id| key.token(id.as_bytes()).unwrap()).collect();
    assert_eq!(sealed, expected);

    // The owner's grant-signing key is in the token too: the policy names its public half,
    // and a grant signed through the token verifies under it (the enclave's check).
    let o = cleanroom(
        &[
            &["policy", "init", "--keys", &d("owner.keys"), "--manifest", &d("sealed/manifest.json")][..],
            // The policy lists a module by its digest; any file serves for this check.
            &["--out", &d("policy.toml"), "--allow-module", &d("data/bank.csv")],
            &["--collaborator", &format!("acme={}", "ab".repeat(32))],
            &loc,
        ]
        .concat(),
        PIN,
    );
    assert!(o.status.success(), "{}", text(&o));
    let policy = protocol::policy::Policy::from_toml(&std::fs::read_to_string(d("policy.toml")).unwrap()).unwrap();
    let grants = token.find_ed25519_key(&owner_prep::hsm_keys::grant_key_label("tokenization")).unwrap();
    assert_eq!(policy.owner_public_key.as_slice(), &grants.public_key()[..]);
    assert_ne!(policy.owner_public_key.as_slice(), &ks.signing_key().public_key()[..]);
    let signer = owner_prep::hsm_keys::Pkcs11GrantSigner(grants);
    let signed = protocol::signing::Signed::sign_with(&signer, protocol::grant::GRANT_CONTEXT, &"a grant").unwrap();
    signed.verify(protocol::grant::GRANT_CONTEXT, policy.owner_public_key.as_slice()).unwrap();
    let by_file = ks.signing_key().sign(protocol::grant::GRANT_CONTEXT, &"a grant");
    assert!(by_file.verify(protocol::grant::GRANT_CONTEXT, policy.owner_public_key.as_slice()).is_err());
}
