//! Shared by the cleanroom crate's integration tests.

/// The shipped bank rules with another k-anonymity remedy (`remedy` is TOML text, e.g.
/// `remedy = "refuse"`). Small test tables keep every row with an override.
pub fn bank_rules_with_remedy(remedy: &str) -> String {
    let shipped = owner_prep::prepare::BANK_RULES;
    assert!(shipped.contains("remedy = \"suppress\""), "the bank rules changed: update this edit");
    shipped.replace("remedy = \"suppress\"", remedy)
}

/// The shipped bank rules keeping classes below k (override recorded), written to `path`.
#[allow(dead_code)] // not every test binary writes a rules file
pub fn write_small_table_rules(path: &std::path::Path) {
    std::fs::write(path, bank_rules_with_remedy("remedy = \"override\"\nreason = \"small test table\"")).unwrap();
}
