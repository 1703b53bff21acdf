//! `cleanroom keys rotate`: a fresh tokenization key, tokens that no longer link to the
//! old ones, and a budget that does not restart (the new population spends the old one's).

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn cleanroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleanroom")).args(args).output().expect("run cleanroom")
}

fn ok(args: &[&str]) -> String {
    let o = cleanroom(args);
    assert!(o.status.success(), "cleanroom {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn rotation_unlinks_tokens_and_keeps_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    ok(&["generate", "--rows", "200", "--seed", "8", "--out", &d("data")]);
    let rules = d("rules.toml");
    common::write_small_table_rules(Path::new(&rules));
    let seal = |out: &str| {
        ok(&["prepare", &d("data/bank.csv"), "--rules", &rules, "--keys", &d("owner.keys"), "--out", out]);
        owner_prep::prepare::load_manifest(Path::new(out)).unwrap()
    };
    let before = seal(&d("jan"));
    let old = before.population().unwrap().to_string();
    ok(&["budget", "cap", "--ledger", &d("l.sqlite"), "--population", &old, "--epsilon", "2", "--delta", "0"]);

    let out = ok(&["keys", "rotate", "--keys", &d("owner.keys"), "--ledger", &d("l.sqlite")]);
    assert!(out.contains("do not link") && out.contains("does not restart"), "{out}");
    let after = seal(&d("feb"));
    let new = after.population().unwrap().to_string();
    assert_ne!(new, old);

    // The same customers, tokens that share nothing.
    let ks = owner_prep::keystore::KeyStore::open(Path::new(&d("owner.keys"))).unwrap();
    let tokens = |m: &protocol::manifest::Manifest, dir: &str| -> std::collections::BTreeSet<[u8; 32]> {
        let key = ks.data_key(&m.dataset_digest).unwrap();
        owner_prep::prepare::open_sealed(Path::new(dir), &key)
            .unwrap()
            .iter()
            .flat_map(|b| match b.column("customer_token") {
                Some(protocol::table::ColumnData::Token(t)) => t.clone(),
                _ => panic!("no tokens"),
            })
            .collect()
    };
    let (a, b) = (tokens(&before, &d("jan")), tokens(&after, &d("feb")));
    assert_eq!(a.len(), b.len());
    assert!(a.is_disjoint(&b));

    // The ledger sends the new population to the old one's cap.
    let ledger = ledger::Ledger::open(Path::new(&d("l.sqlite"))).unwrap();
    assert_eq!(ledger.population(&new).unwrap().population, old);
    let o = cleanroom(&[
        "budget",
        "cap",
        "--ledger",
        &d("l.sqlite"),
        "--population",
        &new,
        "--epsilon",
        "9",
        "--delta",
        "0",
    ]);
    assert!(!o.status.success(), "a linked population gets no cap of its own");
}
