//! Bring your own table, end to end: two tables the project did not generate
//! (tests/fixtures/byo: ISLP's `Default` as a CSV of monthly snapshots, ISLP's `Wage` as
//! Parquet, both with synthetic identifiers added) go through the owner's whole path with
//! the real binaries: a draft of the rules from a scan (`prepare --suggest-rules`), the
//! owner's edited rules (tests/fixtures/byo/*.rules.toml), sealing, a policy, host-proxy
//! launching enclave-app (process mode, simulated attestation, real TLS), upload, the
//! provider's query for its model (model-sdk/examples/default-lr, wage-lr), review,
//! release, submit and the check of the signed result. Bad rules are refused through the
//! CLI with one line and nothing written.

use cleanroom_e2e::*;
use protocol::job::OutputSpec;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// `default.csv`'s columns, in file order.
const DEFAULT_COLUMNS: &[&str] =
    &["customer_ref", "month", "full_name", "email", "phone", "postcode", "student", "balance", "income", "default"];

/// `wage.parquet`'s columns, in file order.
const WAGE_COLUMNS: &[&str] = &[
    "worker_id",
    "birth_date",
    "year",
    "age",
    "maritl",
    "race",
    "education",
    "region",
    "jobclass",
    "health",
    "health_ins",
    "logwage",
    "wage",
];

/// default-lr's AUC over every row of `default.csv`, exact (rank-based), as
/// `scripts/fixtures/fit_models.py` prints it (tests/fixtures/byo/README.md).
const DEFAULT_LR_AUC_ALL_ROWS: f64 = 0.9496937356877907;

/// Keys that would carry an exact count about the data: none may appear in what a
/// provider receives (the public manifest, the signed result).
const COUNT_KEYS: &[&str] = &[
    "rows",
    "rows_read",
    "units",
    "units_absent",
    "rows_dropped_by_bounding",
    "suppressed_groups",
    "k_anonymity",
    "k_min",
    "classes",
    "rows_suppressed",
    "rows_dropped_null",
    "pii_findings",
    "matches",
    "l_diversity",
];

fn json_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                json_keys(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| json_keys(v, out)),
        _ => {}
    }
}

fn assert_no_counts(what: &str, v: &Value) {
    let mut keys = vec![];
    json_keys(v, &mut keys);
    for k in COUNT_KEYS {
        assert!(!keys.iter().any(|x| x == k), "{what} carries {k:?}: {keys:?}");
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn cr(args: &[&str]) -> Output {
    std::process::Command::new(bin("cleanroom")).args(args).output().expect("run cleanroom")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---- 1. the draft rules from a scan ----------------------------------------------------

/// `cleanroom prepare TABLE --suggest-rules DRAFT`: a TOML draft with one `[[column]]` per
/// source column in the table's order, each with a `#` comment saying what the scan
/// found (above its header or inside its table); the identifier suggested as the privacy unit; the PII columns flagged in their
/// comment (`pii`: column and a word its comment must hold); and no value of those
/// columns copied into the draft (`never`).
fn check_draft(table: &Path, columns: &[&str], unit: &str, pii: &[(&str, &str)], never: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let draft = dir.path().join("draft.toml");
    let o = cr(&["prepare", s(table), "--suggest-rules", s(&draft)]);
    assert!(o.status.success(), "prepare --suggest-rules failed: {}", text(&o));
    assert!(draft.exists(), "no draft written: {}", text(&o));
    let body = std::fs::read_to_string(&draft).unwrap();
    let doc: toml::Value = toml::from_str(&body).unwrap_or_else(|e| panic!("the draft is not TOML: {e}\n{body}"));
    let rules = doc.get("column").and_then(|c| c.as_array()).unwrap_or_else(|| panic!("no [[column]]:\n{body}"));
    let names: Vec<&str> = rules.iter().map(|r| r.get("name").and_then(|n| n.as_str()).unwrap_or("")).collect();
    assert_eq!(names, columns, "one [[column]] per source column, in order:\n{body}");

    // The comments attached to each [[column]], by the column's name: the `#` lines
    // right above its header and those inside its table (up to the next blank line).
    let lines: Vec<&str> = body.lines().collect();
    let is_comment = |l: &str| l.trim_start().starts_with('#');
    let mut comments = std::collections::BTreeMap::new();
    let mut k = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "[[column]]" {
            continue;
        }
        let mut j = i;
        while j > 0 && lines[j - 1].trim().is_empty() {
            j -= 1;
        }
        let mut block = vec![];
        while j > 0 && is_comment(lines[j - 1]) {
            j -= 1;
            block.push(lines[j]);
        }
        block.reverse();
        let inside = lines[i + 1..].iter().take_while(|l| !l.trim().is_empty() && !l.trim_start().starts_with("[["));
        block.extend(inside.filter(|l| is_comment(l)));
        assert!(!block.is_empty(), "[[column]] for {:?} has no # comment with it:\n{body}", columns[k]);
        comments.insert(columns[k].to_string(), block.join("\n").to_lowercase());
        k += 1;
    }
    assert_eq!(k, columns.len(), "{body}");

    let rule = |name: &str| &rules[columns.iter().position(|c| *c == name).unwrap()];
    let roles: Vec<&str> = rule(unit)
        .get("roles")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    assert!(roles.contains(&"privacy_unit"), "{unit} is not suggested as the privacy unit:\n{body}");
    for (column, word) in pii {
        assert!(comments[*column].contains(word), "the comment on {column} does not flag {word:?}:\n{body}");
    }
    for value in never {
        assert!(!body.contains(value), "the draft copies the value {value:?} from the table:\n{body}");
    }
}

#[test]
fn default_table_suggest_rules_drafts_every_column() {
    check_draft(
        &byo_fixture("default.csv"),
        DEFAULT_COLUMNS,
        "customer_ref",
        &[("email", "email"), ("phone", "phone"), ("full_name", "name"), ("postcode", "postcode")],
        // The first row's identifiers.
        &["CU-000594", "Rosa Fairweather", "rosa.fairweather301@example.net", "(651) 555-0176", "70955"],
    );
}

#[test]
fn wage_table_suggest_rules_drafts_every_column() {
    check_draft(
        &byo_fixture("wage.parquet"),
        WAGE_COLUMNS,
        "worker_id",
        &[("birth_date", "birth")],
        // The first row's identifier and birth date.
        &["WK4537771", "1987-06-10"],
    );
}

// ---- 2.–4. the owner's rules, sealing, policy, the job --------------------------------

/// A source column, the roles its sealed column must carry, and its label domain.
type DeclaredRoles<'a> = (&'a str, &'a [&'a str], Option<[i64; 2]>);

/// The owner's manifest: the rules digest is SHA-256 of the rules file's bytes, every
/// column carries the owner's reason, and the declared roles are as `roles` says
/// (source column, sealed roles, label domain); the public manifest holds no counts and
/// no dropped column.
fn check_manifests(w: &World, rules: &Path, roles: &[DeclaredRoles<'_>], dropped: &[&str]) -> Value {
    let m = read_json(&w.manifest);
    let rules_digest = sha256_hex(&std::fs::read(rules).unwrap());
    assert_eq!(m["lineage"]["rules_digest"].as_str(), Some(rules_digest.as_str()), "{m:#}");
    let columns = m["columns"].as_array().expect("columns");
    for c in columns {
        let reason = c["reason"].as_str().unwrap_or("");
        assert!(!reason.trim().is_empty(), "no reason recorded for {c}");
    }
    let col = |name: &str| -> &Value {
        columns.iter().find(|c| c["source_name"] == name).unwrap_or_else(|| panic!("no column {name}: {m:#}"))
    };
    for (name, want, domain) in roles {
        let c = col(name);
        let got: Vec<&str> =
            c["roles"].as_array().map(|a| a.iter().filter_map(|r| r.as_str()).collect()).unwrap_or_default();
        assert_eq!(&got, want, "roles of {name}: {c}");
        match domain {
            Some(d) => assert_eq!(c["label_domain"], serde_json::json!(d), "{c}"),
            None => assert!(c.get("label_domain").is_none_or(Value::is_null), "{c}"),
        }
    }
    for name in dropped {
        assert_eq!(col(name)["transform"]["kind"], "dropped", "{name}");
        assert!(col(name)["sealed_name"].is_null(), "{name}");
    }

    let public_path = w.sealed.join("public-manifest.json");
    let public = read_json(&public_path);
    assert_no_counts("the public manifest", &public);
    let public_names: Vec<&str> =
        public["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    for name in dropped {
        assert!(!public_names.contains(name), "dropped column {name} in the public manifest: {public:#}");
    }
    // The public manifest carries the declared roles, so the provider can write its query.
    for (name, want, _) in roles {
        let Some(sealed) = col(name)["sealed_name"].as_str() else { continue };
        let pc = public["columns"].as_array().unwrap().iter().find(|c| c["name"] == sealed).unwrap();
        let got: Vec<&str> =
            pc["roles"].as_array().map(|a| a.iter().filter_map(|r| r.as_str()).collect()).unwrap_or_default();
        assert_eq!(&got, want, "public roles of {sealed}: {pc}");
    }
    m
}

/// Review, release, submit and verify the result of `query`; the decoded result and the
/// result file's path.
fn run_job(w: &World, query: &Path, module: &Path, review_says: &[&str]) -> (protocol::result::JobResult, PathBuf) {
    let o = w.cr(&["review", s(query), "--policy", s(&w.policy)]);
    assert!(o.status.success(), "review: {}", text(&o));
    for want in review_says {
        assert!(text(&o).contains(want), "review does not say {want:?}: {}", text(&o));
    }
    let o = w.release_query(query);
    assert!(o.status.success(), "release: {}\n{}", text(&o), w.host_log());
    let (o, result) = w.submit_query(query, module, &w.index);
    assert!(o.status.success(), "submit: {}\n{}", text(&o), w.host_log());
    let o = w.verify_result(&result);
    assert!(o.status.success(), "verify-result: {}", text(&o));
    let r = read_result(&result);
    assert_eq!(r.query_digest, w.read_query(query).digest(), "the result names the granted query");
    assert_no_counts("the signed result", &serde_json::to_value(&r).unwrap());
    // The audit log holds the release and the job, and the result's record is in it.
    let log = w.fetch_audit();
    let o = w.verify_audit_with(&log, &["--result", s(&result)]);
    assert!(o.status.success(), "audit verify: {}", text(&o));
    (r, result)
}

/// `cleanroom owner-check` (the owner's exact values, never released) and `compare`.
fn owner_check(w: &World, query: &Path, module: &Path, result: &Path) -> Value {
    let truth = w.owner_check(query, module);
    let o = w.cr(&["compare", s(result), s(&truth)]);
    assert!(o.status.success(), "compare: {}", text(&o));
    let t = read_json(&truth);
    assert_eq!(t["units_absent"], 0, "every unit scored within its fuel: {t:#}");
    t
}

fn output<'a>(r: &'a protocol::result::JobResult, name: &str) -> &'a protocol::result::OutputRelease {
    r.outputs.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("no output {name}"))
}

fn truth_values(t: &Value, name: &str) -> Vec<(String, f64)> {
    let o = t["outputs"].as_array().unwrap().iter().find(|o| o["name"] == name).unwrap();
    o["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["key"].as_str().unwrap().to_string(), v["value"].as_f64().unwrap()))
        .collect()
}

/// The roles the policy gives the sealed column `name`.
fn policy_roles(w: &World, name: &str) -> Vec<String> {
    let p: toml::Value = toml::from_str(&std::fs::read_to_string(&w.policy).unwrap()).unwrap();
    let columns = p["columns"].as_array().expect("policy columns");
    let c = columns.iter().find(|c| c["name"].as_str() == Some(name)).unwrap_or_else(|| panic!("{name} not in policy"));
    c["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect()
}

#[test]
fn default_table_end_to_end_with_the_owners_rules() {
    let t0 = std::time::Instant::now();
    let rules = byo_fixture("default.rules.toml");
    let module = default_lr_wasm();
    // Up to three monthly snapshots per customer: the owner lets all of them count (a
    // customer moves a count by at most 3; the noise is scaled to that).
    let w = World::start_table(&TableOptions {
        table: byo_fixture("default.csv"),
        rules: rules.clone(),
        modules: vec![module.clone()],
        // No --label: the label role comes from the rules, through the manifest.
        labels: vec![],
        rows_per_chunk: 3800,
        budget: "2".into(),
        policy_args: ["--max-rows-per-unit", "3", "--min-group-size", "20"].map(String::from).to_vec(),
    });
    let p = &w.prepare_output;
    assert!(p.contains("sealed 11349 rows (10000 people) into 3 chunks"), "{p}");
    assert!(p.contains(r#"k-anonymity over ["zip3"] (in people)"#), "{p}");
    assert!(p.contains("0 below k = 10 (0 rows); remedy: refuse"), "{p}");
    assert!(p.contains("PII scan: column email matched email"), "{p}");

    let m = check_manifests(
        &w,
        &rules,
        &[
            ("month", &["group_by"], None),
            ("postcode", &["group_by"], None),
            ("student", &["input"], None),
            ("balance", &["input"], None),
            ("income", &["input"], None),
            ("default", &["label"], Some([0, 1])),
        ],
        &["full_name", "email", "phone"],
    );
    assert_eq!(m["privacy_unit"], "customer_token");
    assert_eq!(m["rows"], 11349);
    assert_eq!(m["k_anonymity"]["quasi_identifiers"], serde_json::json!(["zip3"]));
    assert_eq!(m["k_anonymity"]["classes_below_target"], 0);
    assert_eq!(m["k_anonymity"]["rows_suppressed"], 0);
    assert!(m["k_anonymity"]["k_min"].as_u64().unwrap() >= 10, "{m:#}");
    assert_eq!(policy_roles(&w, "default"), ["label"], "the declared label reaches the policy");
    assert_eq!(policy_roles(&w, "customer_token"), Vec::<String>::new());

    // The provider's query: default-lr's three inputs, the AUC of its score against the
    // declared label and a histogram of the score (ε 0.6 + 0.4 = the policy's 1 per job).
    let q = w.query_with("byo-default-1", &module, "byo-default-query.toml", |q| {
        q.inputs = ["balance", "income", "student"].map(String::from).to_vec();
        q.outputs = vec![
            OutputSpec::auc("auc_vs_default", "default", 100, "0.6"),
            OutputSpec::histogram("rows_per_risk_decile", (0..=10).map(|i| i as f64 / 10.0).collect(), "0.4"),
        ];
    });
    let (r, result) = run_job(&w, &q, &module, &["reads balance, income, student", "at most 3 row(s)", "AUC"]);
    assert_eq!(r.epsilon_spent.as_str(), "1");
    let auc = output(&r, "auc_vs_default").values[0].value;
    let deciles: f64 = output(&r, "rows_per_risk_decile").values.iter().map(|v| v.value).sum();
    assert!((deciles - 11349.0).abs() < 400.0, "decile counts sum to {deciles}");

    let truth = owner_check(&w, &q, &module, &result);
    assert_eq!(truth["rows"], 11349);
    let exact_auc = truth_values(&truth, "auc_vs_default")[0].1;
    // The owner's exact check bins scores as the release does (100 bins, ties half), so
    // it sits a little below the rank AUC over the same rows.
    assert!((exact_auc - DEFAULT_LR_AUC_ALL_ROWS).abs() < 0.02, "binned exact AUC {exact_auc}");
    assert!((auc - exact_auc).abs() < 0.05, "DP AUC {auc} vs the owner's exact {exact_auc}");
    assert!((auc - DEFAULT_LR_AUC_ALL_ROWS).abs() < 0.05, "DP AUC {auc} vs {DEFAULT_LR_AUC_ALL_ROWS}");
    eprintln!(
        "default: DP AUC {auc:.4}, owner's exact (binned) {exact_auc:.4}, rank AUC {DEFAULT_LR_AUC_ALL_ROWS:.4}; {:?}",
        t0.elapsed()
    );
}

#[test]
fn wage_table_end_to_end_with_the_owners_rules() {
    let t0 = std::time::Instant::now();
    let rules = byo_fixture("wage.rules.toml");
    let module = wage_lr_wasm();
    let w = World::start_table(&TableOptions {
        table: byo_fixture("wage.parquet"),
        rules: rules.clone(),
        modules: vec![module.clone()],
        labels: vec![],
        rows_per_chunk: 1500,
        budget: "2".into(),
        policy_args: ["--min-group-size", "50"].map(String::from).to_vec(),
    });
    let p = &w.prepare_output;
    // 70 workers in 24 (age, education) classes below k = 5 are left out, by the rules.
    assert!(p.contains("sealed 2930 rows (2930 people) into 2 chunks"), "{p}");
    assert!(p.contains(r#"k-anonymity over ["age", "education"] (in people)"#), "{p}");
    assert!(p.contains("24 below k = 5 (70 rows); remedy: suppress"), "{p}");
    assert!(p.contains("PII scan: column birth_date matched date_of_birth"), "{p}");

    let m = check_manifests(
        &w,
        &rules,
        &[
            ("year", &["input"], None),
            ("age", &["input"], None),
            ("education", &["input"], None),
            ("jobclass", &["group_by"], None),
            ("wage", &["input"], None),
        ],
        &["birth_date", "maritl", "race", "region", "health", "health_ins", "logwage"],
    );
    assert_eq!(m["privacy_unit"], "worker_token");
    assert_eq!(m["rows"], 2930);
    assert_eq!(m["k_anonymity"]["quasi_identifiers"], serde_json::json!(["age", "education"]));
    assert_eq!(m["k_anonymity"]["remedy"], "suppress");
    assert_eq!(m["k_anonymity"]["rows_suppressed"], 70);
    assert_eq!(policy_roles(&w, "jobclass"), ["group_by"]);
    assert_eq!(policy_roles(&w, "wage"), ["input"]);

    // No column is a label (wage is a float), so the owner's review refuses an AUC.
    let auc = w.query_with("byo-wage-auc", &module, "byo-wage-auc.toml", |q| {
        q.inputs = ["age", "year", "education"].map(String::from).to_vec();
        q.outputs = vec![OutputSpec::auc("auc_vs_wage", "wage", 20, "0.5")];
    });
    assert_fails_with(&w.cr(&["review", s(&auc), "--policy", s(&w.policy)]), r#"does not allow "wage" as label"#);

    // The provider's query: wage-lr's inputs (age, year, education level), a histogram of
    // its score P(wage > 250) and its mean per job class.
    let q = w.query_with("byo-wage-1", &module, "byo-wage-query.toml", |q| {
        q.inputs = ["age", "year", "education"].map(String::from).to_vec();
        q.outputs = vec![
            OutputSpec::histogram("workers_per_score_bin", vec![0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 1.0], "0.5"),
            OutputSpec::mean("mean_score_by_jobclass", "jobclass", 0.0, 0.2, "0.5"),
        ];
    });
    let (r, result) = run_job(&w, &q, &module, &["reads age, year, education", "jobclass"]);
    assert_eq!(r.epsilon_spent.as_str(), "1");
    let hist: f64 = output(&r, "workers_per_score_bin").values.iter().map(|v| v.value).sum();
    assert!((hist - 2930.0).abs() < 100.0, "histogram counts sum to {hist}");

    let truth = owner_check(&w, &q, &module, &result);
    assert_eq!(truth["rows"], 2930);
    let exact = truth_values(&truth, "mean_score_by_jobclass");
    let means = &output(&r, "mean_score_by_jobclass").values;
    let keys: Vec<&str> = means.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["1. Industrial", "2. Information"], "both sectors hold ~1,500 workers: both are released");
    for v in means {
        let (_, e) = exact.iter().find(|(k, _)| *k == v.key).unwrap();
        assert!((v.value - e).abs() < 0.01, "{}: DP mean {} vs exact {e}", v.key, v.value);
    }
    // The information sector scores higher (more advanced degrees there).
    assert!(means[1].value > means[0].value, "{means:?}");
    eprintln!(
        "wage: DP means {:?}, exact {exact:?}; {:?}",
        means.iter().map(|v| v.value).collect::<Vec<_>>(),
        t0.elapsed()
    );
}

// ---- 5. bad rules through the CLI ---------------------------------------------------------

/// `prepare` with `rules_text` fails with one clear line holding every `needles` entry, and
/// leaves nothing in --out.
fn assert_prepare_refused(dir: &Path, name: &str, table: &Path, rules_text: &str, needles: &[&str]) {
    let rules = dir.join(format!("{name}.rules.toml"));
    std::fs::write(&rules, rules_text).unwrap();
    let out = dir.join(format!("{name}.sealed"));
    let keys = dir.join(format!("{name}.keys"));
    let o = cr(&["prepare", s(table), "--rules", s(&rules), "--keys", s(&keys), "--out", s(&out)]);
    for needle in needles {
        assert_fails_with(&o, needle);
    }
    let written: Vec<_> = std::fs::read_dir(&out).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(written.is_empty(), "{name}: prepare failed but wrote {written:?}");
}

fn edited(rules: &str, from: &str, to: &str) -> String {
    assert!(rules.contains(from), "the rules file changed: update this edit ({from:?})");
    rules.replace(from, to)
}

#[test]
fn bad_rules_for_the_byo_tables_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let default_csv = byo_fixture("default.csv");
    let wage_pq = byo_fixture("wage.parquet");
    let default_rules = std::fs::read_to_string(byo_fixture("default.rules.toml")).unwrap();
    let wage_rules = std::fs::read_to_string(byo_fixture("wage.rules.toml")).unwrap();
    let extra = |name: &str| {
        format!("\n[[column]]\nname = \"{name}\"\nlabel = \"direct_identifier\"\ntransform = {{ kind = \"drop\" }}\nreason = \"r\"\n")
    };

    // A rule for a column the table does not have.
    assert_prepare_refused(
        d,
        "default-ssn",
        &default_csv,
        &(default_rules.clone() + &extra("ssn")),
        &[r#"missing column "ssn""#],
    );
    assert_prepare_refused(
        d,
        "wage-zip",
        &wage_pq,
        &(wage_rules.clone() + &extra("zip")),
        &[r#"missing column "zip""#],
    );

    // A column of the table with no rule.
    let no_phone = edited(
        &default_rules,
        "[[column]]\nname = \"phone\"\nlabel = \"direct_identifier\"\ntransform = { kind = \"drop\" }\nreason = \"Contact data, unique per customer; no model needs it.\"\n",
        "",
    );
    assert_prepare_refused(d, "default-no-phone", &default_csv, &no_phone, &[r#"unknown column "phone""#]);

    // PII kept in the clear without allow_pii: e-mail addresses kept as text (labelled
    // sensitive: a direct identifier that keeps values is refused already by the rules
    // check), and the exact birth date.
    let email_rule = "name = \"email\"\nlabel = \"direct_identifier\"\ntransform = { kind = \"drop\" }";
    let keep_email = edited(
        &default_rules,
        email_rule,
        "name = \"email\"\nlabel = \"sensitive\"\ntransform = { kind = \"keep\", type = \"text\" }",
    );
    assert_prepare_refused(
        d,
        "default-email",
        &default_csv,
        &keep_email,
        &[r#"column "email" is kept"#, "email", "allow_pii"],
    );
    let keep_birth = edited(
        &wage_rules,
        "name = \"birth_date\"\nlabel = \"quasi_identifier\"\ntransform = { kind = \"drop\" }",
        "name = \"birth_date\"\nlabel = \"quasi_identifier\"\ntransform = { kind = \"keep\", type = \"text\" }",
    );
    assert_prepare_refused(
        d,
        "wage-birth",
        &wage_pq,
        &keep_birth,
        &[r#"column "birth_date" is kept"#, "date_of_birth", "allow_pii"],
    );
    let direct = edited(
        &default_rules,
        email_rule,
        "name = \"email\"\nlabel = \"direct_identifier\"\ntransform = { kind = \"keep\", type = \"text\" }",
    );
    assert_prepare_refused(
        d,
        "default-email-direct",
        &default_csv,
        &direct,
        &[r#"column "email""#, "direct identifier"],
    );

    // The same e-mail column with the owner's reason seals, and the manifest records it.
    let allowed = edited(
        &keep_email,
        "reason = \"Contact data, unique per customer; no model needs it.\"\n\n[[column]]\nname = \"phone\"",
        "reason = \"Contact data, unique per customer.\"\nallow_pii = \"test: the addresses are synthetic, on reserved domains\"\n\n[[column]]\nname = \"phone\"",
    );
    let out = d.join("allowed.sealed");
    std::fs::write(d.join("allowed.toml"), &allowed).unwrap();
    let o = cr(&[
        "prepare",
        s(&default_csv),
        "--rules",
        s(&d.join("allowed.toml")),
        "--keys",
        s(&d.join("allowed.keys")),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let m = read_json(&out.join("manifest.json"));
    let email = m["columns"].as_array().unwrap().iter().find(|c| c["source_name"] == "email").unwrap();
    assert_eq!(email["allow_pii"], "test: the addresses are synthetic, on reserved domains", "{email}");
}
