//! The owner's privacy-budget ledger (SQLite, WAL mode).
//!
//! The ledger, not the enclave, is the source of truth for budget: an enclave restart
//! resets nothing that matters. A grant is written here, in one immediate transaction
//! that checks the remaining budget, *before* it is sent; so a crash between writing and
//! sending can only lose budget, never create it, and two concurrent grants cannot both
//! pass the check.
//!
//! Budget is accounted per *population*: the people behind one privacy-unit token key,
//! named by the token key id. Every dataset sealed under that key (the first seal and any
//! re-seal, each with its own dataset digest) draws on the same population budget, and so
//! does every collaborator. Two caps apply to every grant, both in ε and in δ:
//!
//! - the population cap (`population_caps`), shared by all collaborators and datasets;
//! - the collaborator's budget on that population (`collaborator_budgets`).
//!
//! A grant is issued only if it fits under both, in both quantities. All figures are exact
//! rationals ([`Rational`]) stored as their canonical text, never floats.
//!
//! Schema history: the first ledger kept per-dataset `budgets` and `grants` tables. Those
//! tables are left in place untouched and ignored; the current tables have new names, so
//! an old ledger file opens without error. The `manifests` log is shared by both.

use dp::{Delta, DpError, Epsilon, Rational};
use protocol::grant::{BudgetGrant, LedgerFigures};
use protocol::manifest::Manifest;
use protocol::policy::Decimal;
use protocol::{Bytes, Digest};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::fmt;
use std::path::Path;

/// Which of the two caps a refused grant did not fit under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// The population's cap, shared by every collaborator and every dataset of the population.
    Population,
    /// The collaborator's own budget on the population.
    Collaborator,
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cap::Population => "population",
            Cap::Collaborator => "collaborator",
        })
    }
}

/// Which privacy parameter a refused grant asked too much of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Epsilon,
    Delta,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quantity::Epsilon => "ε",
            Quantity::Delta => "δ",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    #[error("ledger database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "no privacy-budget cap for population {population:?}; run \
         `cleanroom budget cap --population {population} --epsilon E --delta D`"
    )]
    NoPopulationCap { population: String },
    #[error(
        "no budget for collaborator {collaborator:?} on population {population:?}; run \
         `cleanroom budget set --population {population} --collaborator {collaborator} --epsilon E --delta D`"
    )]
    NoBudget { population: String, collaborator: String },
    #[error(
        "{quantity} budget exceeded on the {cap} cap: the job asks for {quantity} = {requested}, \
         {remaining} remains (population {population:?}, collaborator {collaborator:?})"
    )]
    Exceeded {
        cap: Cap,
        quantity: Quantity,
        population: String,
        collaborator: String,
        requested: String,
        remaining: String,
    },
    #[error("job {job_id:?} already has a grant on dataset {dataset} (grant {grant_id}); grants are single-use")]
    DuplicateJob { dataset: Digest, job_id: String, grant_id: String },
    #[error("query {query_digest} already has a grant for this enclave key (grant {grant_id}); grants are single-use")]
    DuplicateQuery { query_digest: Digest, grant_id: String },
    #[error("grant id {0:?} was already issued")]
    DuplicateGrantId(String),
    #[error(
        "dataset {dataset} belongs to population {bound:?} (by its manifest or earlier grants), \
         not {requested:?}"
    )]
    DatasetPopulationMismatch { dataset: Digest, bound: String, requested: String },
    #[error("invalid ε {value:?}: {reason}")]
    BadEpsilon { value: String, reason: String },
    #[error("invalid δ {value:?}: {reason}")]
    BadDelta { value: String, reason: String },
    #[error("invalid {what} {value:?}: must be non-empty, without surrounding spaces or control characters")]
    BadName { what: &'static str, value: String },
    #[error("invalid {what} key: {len} bytes")]
    BadKey { what: &'static str, len: usize },
    #[error("grant would expire at {expires_at}, not after it is issued at {now}")]
    BadExpiry { now: u64, expires_at: u64 },
    #[error("time {0} is out of range")]
    BadTime(u64),
    #[error("exact budget arithmetic: {0}")]
    Arithmetic(DpError),
    #[error("ledger row is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "population {new:?} cannot be linked to {old:?}: it is the same, already linked, or has a cap or budgets of its own"
    )]
    BadLink { new: String, old: String },
    #[error(
        "population {population:?} is linked to {canonical:?} (a rotated key): set {canonical:?}'s cap and budgets"
    )]
    Linked { population: String, canonical: String },
}

/// Total, spent and remaining amount of one quantity (ε or δ) under one cap. `remaining`
/// is `total - spent`, or zero when a cap was lowered below what is already spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub total: Rational,
    pub spent: Rational,
    pub remaining: Rational,
}

impl Balance {
    fn new(total: Rational, spent: Rational) -> Result<Balance, LedgerError> {
        let remaining = total.checked_sub(&spent).map_err(LedgerError::Arithmetic)?.unwrap_or(Rational::ZERO);
        Ok(Balance { total, spent, remaining })
    }
}

/// One collaborator's budget on one population.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRow {
    pub population: String,
    pub collaborator: String,
    pub epsilon: Balance,
    pub delta: Balance,
    /// Grants issued to this collaborator on this population.
    pub grants: u64,
}

/// A population's cap and what all collaborators together have spent of it.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationRow {
    pub population: String,
    pub epsilon: Balance,
    pub delta: Balance,
    /// Grants issued on this population, all collaborators and datasets together.
    pub grants: u64,
    /// Collaborators with a budget on, or a grant from, this population.
    pub collaborators: u64,
    /// Distinct dataset digests (seals and re-seals) granted on.
    pub datasets: u64,
}

/// One issued grant, as the ledger recorded it (in issue order from [`Ledger::grants`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GrantRow {
    pub grant_id: String,
    pub job_id: String,
    pub query_digest: Digest,
    pub dataset: Digest,
    pub population: String,
    pub collaborator: String,
    pub epsilon: String,
    pub delta: String,
    pub issued_at: u64,
    pub expires_at: u64,
}

/// The latest checkpoint of an audit log the owner has verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCheckpoint {
    pub origin: String,
    pub size: u64,
    /// The whole signed note.
    pub text: String,
    /// The attested enclave key that signed it (hex).
    pub signer: String,
}

/// Parameters of a new grant; the ledger fills in the budget figures.
pub struct GrantRequest<'a> {
    pub grant_id: String,
    pub job_id: &'a str,
    pub query_digest: Digest,
    pub dataset: Digest,
    pub population: &'a str,
    pub policy_digest: Digest,
    pub collaborator: &'a str,
    pub provider_public_key: &'a [u8],
    pub epsilon: &'a str,
    pub delta: &'a str,
    pub enclave_public_key: &'a [u8],
    pub nonce: [u8; 16],
    pub now: u64,
    pub expires_at: u64,
}

pub struct Ledger {
    conn: Connection,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS manifests (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, recorded_at INTEGER NOT NULL,
        dataset TEXT NOT NULL, manifest_digest TEXT NOT NULL, manifest TEXT NOT NULL);
    CREATE TRIGGER IF NOT EXISTS manifests_append_only_u BEFORE UPDATE ON manifests
        BEGIN SELECT RAISE(ABORT, 'the manifest log is append-only'); END;
    CREATE TRIGGER IF NOT EXISTS manifests_append_only_d BEFORE DELETE ON manifests
        BEGIN SELECT RAISE(ABORT, 'the manifest log is append-only'); END;

    CREATE TABLE IF NOT EXISTS population_caps (
        population TEXT PRIMARY KEY, epsilon TEXT NOT NULL, delta TEXT NOT NULL,
        updated_at INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS collaborator_budgets (
        population TEXT NOT NULL, collaborator TEXT NOT NULL, epsilon TEXT NOT NULL,
        delta TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (population, collaborator));
    CREATE TABLE IF NOT EXISTS dataset_populations (
        dataset TEXT PRIMARY KEY, population TEXT NOT NULL, recorded_at INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS grants_v2 (
        grant_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, query_digest TEXT NOT NULL,
        dataset TEXT NOT NULL, population TEXT NOT NULL, policy_digest TEXT NOT NULL,
        collaborator TEXT NOT NULL, provider_key TEXT NOT NULL, epsilon TEXT NOT NULL,
        delta TEXT NOT NULL, enclave_key TEXT NOT NULL, nonce TEXT NOT NULL,
        issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        UNIQUE (dataset, job_id), UNIQUE (enclave_key, query_digest));
    CREATE INDEX IF NOT EXISTS grants_v2_by_population ON grants_v2 (population, collaborator);
    CREATE TRIGGER IF NOT EXISTS grants_v2_append_only_u BEFORE UPDATE ON grants_v2
        BEGIN SELECT RAISE(ABORT, 'spent budget is never forgotten: grants are append-only'); END;
    CREATE TRIGGER IF NOT EXISTS grants_v2_append_only_d BEFORE DELETE ON grants_v2
        BEGIN SELECT RAISE(ABORT, 'spent budget is never forgotten: grants are append-only'); END;
    CREATE TABLE IF NOT EXISTS population_links (
        population TEXT PRIMARY KEY, canonical TEXT NOT NULL, linked_at INTEGER NOT NULL);
    CREATE TRIGGER IF NOT EXISTS population_links_fixed_u BEFORE UPDATE ON population_links
        BEGIN SELECT RAISE(ABORT, 'a population link is permanent'); END;
    CREATE TRIGGER IF NOT EXISTS population_links_fixed_d BEFORE DELETE ON population_links
        BEGIN SELECT RAISE(ABORT, 'a population link is permanent'); END;
    CREATE TABLE IF NOT EXISTS log_checkpoints (
        origin TEXT PRIMARY KEY, size INTEGER NOT NULL, checkpoint TEXT NOT NULL,
        signer TEXT NOT NULL, updated_at INTEGER NOT NULL);
    CREATE TRIGGER IF NOT EXISTS log_checkpoints_grow_only BEFORE UPDATE ON log_checkpoints
        WHEN NEW.size < OLD.size
        BEGIN SELECT RAISE(ABORT, 'a log checkpoint never goes back to a smaller tree'); END;
    CREATE TRIGGER IF NOT EXISTS dataset_populations_fixed_u BEFORE UPDATE ON dataset_populations
        BEGIN SELECT RAISE(ABORT, 'a dataset belongs to one population'); END;
    CREATE TRIGGER IF NOT EXISTS dataset_populations_fixed_d BEFORE DELETE ON dataset_populations
        BEGIN SELECT RAISE(ABORT, 'a dataset belongs to one population'); END;
";

fn parse_epsilon_total(s: &str) -> Result<Rational, LedgerError> {
    s.parse::<Rational>().map_err(|e| LedgerError::BadEpsilon { value: s.into(), reason: e.to_string() })
}

fn parse_epsilon_grant(s: &str) -> Result<Rational, LedgerError> {
    s.parse::<Epsilon>()
        .map(Rational::from)
        .map_err(|e| LedgerError::BadEpsilon { value: s.into(), reason: e.to_string() })
}

fn parse_delta(s: &str) -> Result<Rational, LedgerError> {
    s.parse::<Delta>().map(Rational::from).map_err(|e| LedgerError::BadDelta { value: s.into(), reason: e.to_string() })
}

/// A rational read back from the database.
fn stored(s: &str, what: &str) -> Result<Rational, LedgerError> {
    s.parse().map_err(|_| LedgerError::Corrupt(format!("{what} {s:?}")))
}

fn stored_digest(s: &str, what: &str) -> Result<Digest, LedgerError> {
    s.parse().map_err(|_| LedgerError::Corrupt(format!("{what} {s:?}")))
}

fn check_name(what: &'static str, value: &str) -> Result<(), LedgerError> {
    if value.is_empty() || value.trim() != value || value.chars().any(char::is_control) {
        return Err(LedgerError::BadName { what, value: value.into() });
    }
    Ok(())
}

fn secs(t: u64) -> Result<i64, LedgerError> {
    i64::try_from(t).map_err(|_| LedgerError::BadTime(t))
}

fn add(a: &Rational, b: &Rational) -> Result<Rational, LedgerError> {
    a.checked_add(b).map_err(LedgerError::Arithmetic)
}

/// What has been spent under one cap.
#[derive(Clone, Copy)]
struct Spent {
    epsilon: Rational,
    delta: Rational,
    grants: u64,
}

impl Spent {
    const NONE: Spent = Spent { epsilon: Rational::ZERO, delta: Rational::ZERO, grants: 0 };

    fn add(&mut self, epsilon: &Rational, delta: &Rational) -> Result<(), LedgerError> {
        self.epsilon = add(&self.epsilon, epsilon)?;
        self.delta = add(&self.delta, delta)?;
        self.grants += 1;
        Ok(())
    }
}

/// The population's total spend, and the named collaborator's share of it (`Spent::NONE`
/// when no collaborator is named).
/// The population whose budget `population` spends: itself, or the one it was linked to
/// when its token key replaced that one's (the same people under a rotated key).
fn canonical(conn: &Connection, population: &str) -> Result<String, LedgerError> {
    let linked: Option<String> = conn
        .query_row("SELECT canonical FROM population_links WHERE population = ?1", params![population], |r| r.get(0))
        .optional()?;
    Ok(linked.unwrap_or_else(|| population.to_string()))
}

/// Caps and budgets are set on the population the budget belongs to, never on a linked one.
fn not_linked(conn: &Connection, population: &str) -> Result<(), LedgerError> {
    match canonical(conn, population)? {
        c if c == population => Ok(()),
        c => Err(LedgerError::Linked { population: population.into(), canonical: c }),
    }
}

/// Spent by `population` (a canonical one) and every population linked to it.
fn spent(conn: &Connection, population: &str, collaborator: Option<&str>) -> Result<(Spent, Spent), LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT collaborator, epsilon, delta FROM grants_v2 WHERE population = ?1
            OR population IN (SELECT population FROM population_links WHERE canonical = ?1)",
    )?;
    let rows = stmt.query_map(params![population], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))?;
    let (mut all, mut theirs) = (Spent::NONE, Spent::NONE);
    for row in rows {
        let (c, e, d): (String, String, String) = row?;
        let (e, d) = (stored(&e, "grant ε")?, stored(&d, "grant δ")?);
        all.add(&e, &d)?;
        if Some(c.as_str()) == collaborator {
            theirs.add(&e, &d)?;
        }
    }
    Ok((all, theirs))
}

fn population_cap(conn: &Connection, population: &str) -> Result<Option<(Rational, Rational)>, LedgerError> {
    let row: Option<(String, String)> = conn
        .query_row("SELECT epsilon, delta FROM population_caps WHERE population = ?1", params![population], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    row.map(|(e, d)| Ok((stored(&e, "population cap ε")?, stored(&d, "population cap δ")?))).transpose()
}

fn collaborator_budget(
    conn: &Connection,
    population: &str,
    collaborator: &str,
) -> Result<Option<(Rational, Rational)>, LedgerError> {
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT epsilon, delta FROM collaborator_budgets WHERE population = ?1 AND collaborator = ?2",
            params![population, collaborator],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(e, d)| Ok((stored(&e, "collaborator budget ε")?, stored(&d, "collaborator budget δ")?))).transpose()
}

/// Refuse `requested` when the dataset is already bound to another population, by its
/// recorded manifest or by an earlier grant on it.
fn check_dataset_population(conn: &Connection, dataset: &Digest, requested: &str) -> Result<(), LedgerError> {
    let d = dataset.to_hex();
    let by_manifest: Option<String> = conn
        .query_row("SELECT population FROM dataset_populations WHERE dataset = ?1", params![d], |r| r.get(0))
        .optional()?;
    let by_grant: Option<String> = conn
        .query_row(
            "SELECT population FROM grants_v2 WHERE dataset = ?1 AND population <> ?2 LIMIT 1",
            params![d, requested],
            |r| r.get(0),
        )
        .optional()?;
    match by_manifest.into_iter().chain(by_grant).find(|b| b != requested) {
        Some(bound) => {
            Err(LedgerError::DatasetPopulationMismatch { dataset: *dataset, bound, requested: requested.into() })
        }
        None => Ok(()),
    }
}

fn budget_row(conn: &Connection, population: &str, collaborator: &str) -> Result<BudgetRow, LedgerError> {
    let (e, d) = collaborator_budget(conn, population, collaborator)?
        .ok_or_else(|| LedgerError::NoBudget { population: population.into(), collaborator: collaborator.into() })?;
    let (_, theirs) = spent(conn, population, Some(collaborator))?;
    Ok(BudgetRow {
        population: population.into(),
        collaborator: collaborator.into(),
        epsilon: Balance::new(e, theirs.epsilon)?,
        delta: Balance::new(d, theirs.delta)?,
        grants: theirs.grants,
    })
}

fn population_row(conn: &Connection, population: &str) -> Result<PopulationRow, LedgerError> {
    let (e, d) = population_cap(conn, population)?
        .ok_or_else(|| LedgerError::NoPopulationCap { population: population.into() })?;
    let (all, _) = spent(conn, population, None)?;
    let count = |sql: &str| -> Result<u64, LedgerError> {
        Ok(conn.query_row(sql, params![population], |r| r.get::<_, i64>(0))? as u64)
    };
    Ok(PopulationRow {
        population: population.into(),
        epsilon: Balance::new(e, all.epsilon)?,
        delta: Balance::new(d, all.delta)?,
        grants: all.grants,
        collaborators: count(
            "SELECT COUNT(*) FROM (SELECT collaborator FROM collaborator_budgets WHERE population = ?1
                                   UNION SELECT collaborator FROM grants_v2 WHERE population = ?1)",
        )?,
        datasets: count("SELECT COUNT(DISTINCT dataset) FROM grants_v2 WHERE population = ?1")?,
    })
}

/// `remaining - requested`, or the typed refusal naming the cap and the quantity.
fn fit(
    req: &GrantRequest<'_>,
    cap: Cap,
    quantity: Quantity,
    remaining: &Rational,
    requested: &Rational,
) -> Result<Rational, LedgerError> {
    remaining.checked_sub(requested).map_err(LedgerError::Arithmetic)?.ok_or_else(|| LedgerError::Exceeded {
        cap,
        quantity,
        population: req.population.into(),
        collaborator: req.collaborator.into(),
        requested: requested.to_string(),
        remaining: remaining.to_string(),
    })
}

fn dec(r: &Rational) -> Decimal {
    Decimal::from(*r)
}

impl Ledger {
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let conn = Connection::open(path)?;
        // First, so that opening next to a busy writer waits instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let tx = Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        tx.commit()?;
        Ok(Ledger { conn })
    }

    /// Append a prepared dataset's manifest and digest to the owner's append-only log, and
    /// bind the dataset digest to the population its privacy unit was tokenized for, so no
    /// grant on it can be charged to another population.
    pub fn record_manifest(&self, manifest: &Manifest, now: u64) -> Result<u64, LedgerError> {
        let now = secs(now)?;
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        if let Some(population) = manifest.population() {
            check_dataset_population(&tx, &manifest.dataset_digest, population)?;
            tx.execute(
                "INSERT INTO dataset_populations (dataset, population, recorded_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (dataset) DO NOTHING",
                params![manifest.dataset_digest.to_hex(), population, now],
            )?;
        }
        tx.execute(
            "INSERT INTO manifests (recorded_at, dataset, manifest_digest, manifest) VALUES (?1, ?2, ?3, ?4)",
            params![now, manifest.dataset_digest.to_hex(), manifest.digest().to_hex(), manifest.to_json()],
        )?;
        let seq = tx.last_insert_rowid() as u64;
        tx.commit()?;
        Ok(seq)
    }

    /// Record that `new` (a new token key's id) names the same people as `old`: grants on
    /// `new`'s datasets spend `old`'s population cap and collaborator budgets, and what was
    /// spent stays spent. Permanent. `new` must have no cap or budgets of its own.
    pub fn link_population(&self, new: &str, old: &str, now: u64) -> Result<String, LedgerError> {
        check_name("population", new)?;
        check_name("population", old)?;
        let now = secs(now)?;
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let target = canonical(&tx, old)?;
        let own: i64 = tx.query_row(
            "SELECT (SELECT COUNT(*) FROM population_caps WHERE population = ?1)
                  + (SELECT COUNT(*) FROM collaborator_budgets WHERE population = ?1)
                  + (SELECT COUNT(*) FROM population_links WHERE population = ?1 OR canonical = ?1)",
            params![new],
            |r| r.get(0),
        )?;
        if new == target || own > 0 {
            return Err(LedgerError::BadLink { new: new.into(), old: target });
        }
        tx.execute(
            "INSERT INTO population_links (population, canonical, linked_at) VALUES (?1, ?2, ?3)",
            params![new, target, now],
        )?;
        tx.commit()?;
        Ok(target)
    }

    /// Every manifest in the owner's log, oldest first: (entry, recorded at, manifest).
    pub fn manifests(&self) -> Result<Vec<(u64, u64, Manifest)>, LedgerError> {
        let mut stmt = self.conn.prepare("SELECT seq, recorded_at, manifest FROM manifests ORDER BY seq")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at, json) = row?;
            let m =
                Manifest::from_json(&json).map_err(|e| LedgerError::Corrupt(format!("manifest entry {seq}: {e}")))?;
            out.push((seq as u64, at as u64, m));
        }
        Ok(out)
    }

    /// The latest manifest of the dataset named `name`, if the log holds one.
    pub fn latest_manifest(&self, name: &str) -> Result<Option<Manifest>, LedgerError> {
        Ok(self.manifests()?.into_iter().rev().map(|(_, _, m)| m).find(|m| m.dataset_name == name))
    }

    /// Set the cap for a population, across all its collaborators and datasets. Lowering it
    /// below what is spent is allowed (it stops further grants); nothing spent is forgotten.
    pub fn set_population_cap(
        &self,
        population: &str,
        epsilon: &str,
        delta: &str,
        now: u64,
    ) -> Result<(), LedgerError> {
        check_name("population", population)?;
        not_linked(&self.conn, population)?;
        let (e, d) = (parse_epsilon_total(epsilon)?, parse_delta(delta)?);
        self.conn.execute(
            "INSERT INTO population_caps (population, epsilon, delta, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (population) DO UPDATE
                 SET epsilon = excluded.epsilon, delta = excluded.delta, updated_at = excluded.updated_at",
            params![population, e.to_string(), d.to_string(), secs(now)?],
        )?;
        Ok(())
    }

    /// Set a collaborator's budget on a population. Grants must also fit the population
    /// cap; lowering a budget below what is spent stops further grants.
    pub fn set_budget(
        &self,
        population: &str,
        collaborator: &str,
        epsilon: &str,
        delta: &str,
        now: u64,
    ) -> Result<(), LedgerError> {
        check_name("population", population)?;
        not_linked(&self.conn, population)?;
        check_name("collaborator", collaborator)?;
        let (e, d) = (parse_epsilon_total(epsilon)?, parse_delta(delta)?);
        self.conn.execute(
            "INSERT INTO collaborator_budgets (population, collaborator, epsilon, delta, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (population, collaborator) DO UPDATE
                 SET epsilon = excluded.epsilon, delta = excluded.delta, updated_at = excluded.updated_at",
            params![population, collaborator, e.to_string(), d.to_string(), secs(now)?],
        )?;
        Ok(())
    }

    pub fn budget(&self, population: &str, collaborator: &str) -> Result<BudgetRow, LedgerError> {
        budget_row(&self.conn, &canonical(&self.conn, population)?, collaborator)
    }

    /// Every collaborator budget, ordered by population then collaborator.
    pub fn budgets(&self) -> Result<Vec<BudgetRow>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT population, collaborator FROM collaborator_budgets ORDER BY population, collaborator")?;
        let keys: Vec<(String, String)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        keys.iter().map(|(p, c)| budget_row(&self.conn, p, c)).collect()
    }

    pub fn population(&self, population: &str) -> Result<PopulationRow, LedgerError> {
        population_row(&self.conn, &canonical(&self.conn, population)?)
    }

    /// Every capped population, ordered by id.
    pub fn populations(&self) -> Result<Vec<PopulationRow>, LedgerError> {
        let mut stmt = self.conn.prepare("SELECT population FROM population_caps ORDER BY population")?;
        let keys: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        keys.iter().map(|p| population_row(&self.conn, p)).collect()
    }

    /// The latest verified checkpoint of the log named `origin`, if any.
    pub fn checkpoint(&self, origin: &str) -> Result<Option<HeldCheckpoint>, LedgerError> {
        let row = self
            .conn
            .query_row("SELECT size, checkpoint, signer FROM log_checkpoints WHERE origin = ?1", [origin], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .optional()?;
        row.map(|(size, text, signer)| {
            Ok(HeldCheckpoint {
                origin: origin.to_string(),
                size: u64::try_from(size).map_err(|_| LedgerError::Corrupt(format!("checkpoint size {size}")))?,
                text,
                signer,
            })
        })
        .transpose()
    }

    /// Every log checkpoint held, by origin.
    pub fn checkpoints(&self) -> Result<Vec<HeldCheckpoint>, LedgerError> {
        let mut stmt = self.conn.prepare("SELECT origin FROM log_checkpoints ORDER BY origin")?;
        let origins: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        origins.iter().filter_map(|o| self.checkpoint(o).transpose()).collect()
    }

    /// Keep a verified checkpoint if it is of a bigger tree than the one held; returns
    /// whether it was kept. Concurrent releases finish in any order: a smaller checkpoint
    /// from one of them is a prefix the caller already checked, and is not kept (the
    /// database refuses to make the held tree smaller as well).
    pub fn keep_checkpoint(&mut self, held: &HeldCheckpoint, now: u64) -> Result<bool, LedgerError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let old: Option<i64> = tx
            .query_row("SELECT size FROM log_checkpoints WHERE origin = ?1", [&held.origin], |r| r.get(0))
            .optional()?;
        if old.is_some_and(|old| old as u64 >= held.size) {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO log_checkpoints (origin, size, checkpoint, signer, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (origin) DO UPDATE SET size = ?2, checkpoint = ?3, signer = ?4, updated_at = ?5",
            rusqlite::params![held.origin, held.size as i64, held.text, held.signer, now as i64],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Every grant ever issued, in issue order.
    pub fn grants(&self) -> Result<Vec<GrantRow>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT grant_id, job_id, query_digest, dataset, population, collaborator, epsilon, delta, issued_at,
                    expires_at
             FROM grants_v2 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?),
                (r.get::<_, String>(4)?, r.get::<_, String>(5)?, r.get::<_, String>(6)?, r.get::<_, String>(7)?),
                (r.get::<_, i64>(8)?, r.get::<_, i64>(9)?),
            ))
        })?;
        rows.map(|row| {
            let ((grant_id, job_id, q, d), (population, collaborator, epsilon, delta), (issued_at, expires_at)) = row?;
            Ok(GrantRow {
                query_digest: stored_digest(&q, "query digest")?,
                dataset: stored_digest(&d, "dataset")?,
                grant_id,
                job_id,
                population,
                collaborator,
                epsilon,
                delta,
                issued_at: u64::try_from(issued_at)
                    .map_err(|_| LedgerError::Corrupt(format!("issued_at {issued_at}")))?,
                expires_at: u64::try_from(expires_at)
                    .map_err(|_| LedgerError::Corrupt(format!("expires_at {expires_at}")))?,
            })
        })
        .collect()
    }

    /// Check both caps (population and collaborator, in ε and δ) and record the grant as
    /// spent, in one immediate transaction. Nothing is written when it is refused.
    ///
    /// When both caps are short, the population cap is named first, and ε before δ.
    pub fn issue_grant(&mut self, req: GrantRequest<'_>) -> Result<BudgetGrant, LedgerError> {
        let eps = parse_epsilon_grant(req.epsilon)?;
        let delta = parse_delta(req.delta)?;
        check_name("grant id", &req.grant_id)?;
        check_name("job id", req.job_id)?;
        check_name("population", req.population)?;
        check_name("collaborator", req.collaborator)?;
        if req.provider_public_key.len() != 32 {
            return Err(LedgerError::BadKey { what: "provider Ed25519", len: req.provider_public_key.len() });
        }
        if req.enclave_public_key.is_empty() {
            return Err(LedgerError::BadKey { what: "enclave", len: 0 });
        }
        if req.expires_at <= req.now {
            return Err(LedgerError::BadExpiry { now: req.now, expires_at: req.expires_at });
        }
        let (now, expires_at) = (secs(req.now)?, secs(req.expires_at)?);
        let (dataset, query, enclave) =
            (req.dataset.to_hex(), req.query_digest.to_hex(), hex::encode(req.enclave_public_key));

        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seen = |sql: &str, a: &str, b: &str| -> Result<Option<String>, LedgerError> {
            Ok(tx.query_row(sql, params![a, b], |r| r.get(0)).optional()?)
        };
        let reused: Option<i64> = tx
            .query_row("SELECT 1 FROM grants_v2 WHERE grant_id = ?1", params![req.grant_id], |r| r.get(0))
            .optional()?;
        if reused.is_some() {
            return Err(LedgerError::DuplicateGrantId(req.grant_id));
        }
        if let Some(grant_id) =
            seen("SELECT grant_id FROM grants_v2 WHERE dataset = ?1 AND job_id = ?2", &dataset, req.job_id)?
        {
            return Err(LedgerError::DuplicateJob { dataset: req.dataset, job_id: req.job_id.into(), grant_id });
        }
        if let Some(grant_id) =
            seen("SELECT grant_id FROM grants_v2 WHERE enclave_key = ?1 AND query_digest = ?2", &enclave, &query)?
        {
            return Err(LedgerError::DuplicateQuery { query_digest: req.query_digest, grant_id });
        }
        check_dataset_population(&tx, &req.dataset, req.population)?;
        // A rotated key's population spends the budget of the people it names.
        let account = canonical(&tx, req.population)?;

        let (pop_eps, pop_delta) = population_cap(&tx, &account)?
            .ok_or_else(|| LedgerError::NoPopulationCap { population: account.clone() })?;
        let (col_eps, col_delta) = collaborator_budget(&tx, &account, req.collaborator)?.ok_or_else(|| {
            LedgerError::NoBudget { population: account.clone(), collaborator: req.collaborator.into() }
        })?;
        let (all, theirs) = spent(&tx, &account, Some(req.collaborator))?;
        let pop_eps = Balance::new(pop_eps, all.epsilon)?;
        let pop_delta = Balance::new(pop_delta, all.delta)?;
        let col_eps = Balance::new(col_eps, theirs.epsilon)?;
        let col_delta = Balance::new(col_delta, theirs.delta)?;

        let pop_eps_after = fit(&req, Cap::Population, Quantity::Epsilon, &pop_eps.remaining, &eps)?;
        let pop_delta_after = fit(&req, Cap::Population, Quantity::Delta, &pop_delta.remaining, &delta)?;
        let col_eps_after = fit(&req, Cap::Collaborator, Quantity::Epsilon, &col_eps.remaining, &eps)?;
        let col_delta_after = fit(&req, Cap::Collaborator, Quantity::Delta, &col_delta.remaining, &delta)?;

        tx.execute(
            "INSERT INTO grants_v2 (grant_id, job_id, query_digest, dataset, population, policy_digest, collaborator,
                                    provider_key, epsilon, delta, enclave_key, nonce, issued_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                req.grant_id,
                req.job_id,
                query,
                dataset,
                req.population,
                req.policy_digest.to_hex(),
                req.collaborator,
                hex::encode(req.provider_public_key),
                eps.to_string(),
                delta.to_string(),
                enclave,
                hex::encode(req.nonce),
                now,
                expires_at
            ],
        )?;
        tx.commit()?;
        Ok(BudgetGrant {
            grant_id: req.grant_id,
            job_id: req.job_id.into(),
            query_digest: req.query_digest,
            dataset_digest: req.dataset,
            policy_digest: req.policy_digest,
            population: req.population.into(),
            collaborator: req.collaborator.into(),
            provider_public_key: Bytes(req.provider_public_key.to_vec()),
            epsilon: dec(&eps),
            delta: dec(&delta),
            expires_at: req.expires_at,
            nonce: Bytes(req.nonce.to_vec()),
            enclave_public_key: Bytes(req.enclave_public_key.to_vec()),
            ledger: LedgerFigures {
                collaborator_epsilon_before: dec(&col_eps.remaining),
                collaborator_epsilon_after: dec(&col_eps_after),
                population_epsilon_before: dec(&pop_eps.remaining),
                population_epsilon_after: dec(&pop_eps_after),
                collaborator_delta_after: dec(&col_delta_after),
                population_delta_after: dec(&pop_delta_after),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::manifest::{ColumnSpec, Lineage, Sensitivity, Transform};

    const P: &str = "tok-2024-a";
    const PROVIDER: [u8; 32] = [7; 32];
    const ENCLAVE: [u8; 32] = [1; 32];

    fn d1() -> Digest {
        Digest::of(b"seal 1")
    }

    #[test]
    fn the_held_checkpoint_only_grows() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let cp =
            |size: u64| HeldCheckpoint { origin: "o".into(), size, text: format!("note {size}"), signer: "k".into() };
        assert_eq!(l.checkpoint("o").unwrap(), None);
        assert!(l.keep_checkpoint(&cp(3), 1).unwrap());
        assert!(!l.keep_checkpoint(&cp(2), 2).unwrap(), "a smaller tree is not kept");
        assert!(!l.keep_checkpoint(&cp(3), 2).unwrap());
        assert!(l.keep_checkpoint(&cp(5), 3).unwrap());
        assert_eq!(l.checkpoint("o").unwrap(), Some(cp(5)));
        assert_eq!(l.checkpoints().unwrap(), vec![cp(5)]);
        // The database refuses it too.
        let e = l.conn.execute("UPDATE log_checkpoints SET size = 1 WHERE origin = 'o'", []);
        assert!(e.unwrap_err().to_string().contains("never goes back"));
    }

    /// A grant request for job `job` by "acme" on dataset `d1()` of population `P`, for
    /// ε = 0.1 and δ = 0; tests override fields with struct update syntax.
    fn req(job: &str) -> GrantRequest<'_> {
        GrantRequest {
            grant_id: format!("g-{job}"),
            job_id: job,
            query_digest: Digest::of(job.as_bytes()),
            dataset: d1(),
            population: P,
            policy_digest: Digest::default(),
            collaborator: "acme",
            provider_public_key: &PROVIDER,
            epsilon: "0.1",
            delta: "0",
            enclave_public_key: &ENCLAVE,
            nonce: [0; 16],
            now: 1,
            expires_at: 100,
        }
    }

    fn open() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        (dir, l)
    }

    fn r(s: &str) -> Rational {
        s.parse().unwrap()
    }

    fn rows(l: &Ledger, table: &str) -> i64 {
        l.conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    }

    fn exceeded(e: LedgerError) -> (Cap, Quantity, String, String) {
        match e {
            LedgerError::Exceeded { cap, quantity, requested, remaining, .. } => (cap, quantity, requested, remaining),
            other => panic!("expected Exceeded, got {other:?}"),
        }
    }

    fn manifest(dataset: Digest, key_id: &str) -> Manifest {
        Manifest {
            version: 1,
            dataset_name: "loans".into(),
            columns: vec![ColumnSpec {
                source_name: "ssn".into(),
                sealed_name: Some("unit".into()),
                sealed_type: Some("token".into()),
                label: Sensitivity::DirectIdentifier,
                transform: Transform::Tokenized { key_id: key_id.into() },
                roles: vec![],
                label_domain: None,
                reason: None,
                allow_pii: None,
                allow_regression: None,
                nullable: false,
            }],
            privacy_unit: "unit".into(),
            lineage: Lineage {
                source_file: "loans.csv".into(),
                source_format: "csv".into(),
                source_digest: Digest::default(),
                ingested_at: 0,
                rules_digest: None,
                token_key: None,
            },
            rows: 10,
            chunks: 1,
            rows_per_chunk: 10,
            dataset_digest: dataset,
            k_anonymity: None,
            pii_findings: vec![],
            sorted_by_unit: true,
            rows_dropped_null: 0,
            retention_until: None,
        }
    }

    #[test]
    fn a_rotated_key_spends_the_budget_of_the_same_people() {
        let (_d, mut l) = open();
        let req = |dataset: Digest, population: &'static str, job: &'static str, eps: &'static str| GrantRequest {
            dataset,
            population,
            epsilon: eps,
            ..req(job)
        };
        let (old_ds, new_ds) = (Digest::of(b"january"), Digest::of(b"february"));
        l.record_manifest(&manifest(old_ds, "oldkey"), 1).unwrap();
        l.set_population_cap("oldkey", "1", "0.00001", 1).unwrap();
        l.set_budget("oldkey", "acme", "1", "0.00001", 1).unwrap();
        l.issue_grant(req(old_ds, "oldkey", "j1", "0.6")).unwrap();
        // Without the link a new key is a new population with no budget at all.
        l.record_manifest(&manifest(new_ds, "newkey"), 2).unwrap();
        assert!(matches!(l.issue_grant(req(new_ds, "newkey", "j2", "0.3")), Err(LedgerError::NoPopulationCap { .. })));
        assert_eq!(l.link_population("newkey", "oldkey", 3).unwrap(), "oldkey");
        // Linked: 0.6 is already spent of 1, so 0.5 does not fit and 0.3 does.
        assert!(matches!(l.issue_grant(req(new_ds, "newkey", "j3", "0.5")), Err(LedgerError::Exceeded { .. })));
        l.issue_grant(req(new_ds, "newkey", "j4", "0.3")).unwrap();
        assert_eq!(l.population("newkey").unwrap().population, "oldkey");
        // Links are permanent and single: no second link, no link to itself, no undo.
        assert!(matches!(l.link_population("newkey", "other", 4), Err(LedgerError::BadLink { .. })));
        assert!(matches!(l.link_population("oldkey", "oldkey", 4), Err(LedgerError::BadLink { .. })));
        assert!(l.conn.execute("DELETE FROM population_links", []).is_err());
        assert!(matches!(l.set_population_cap("newkey", "5", "0", 5), Err(LedgerError::Linked { .. })));
    }

    #[test]
    fn spends_exactly_and_refuses_epsilon_overdraft_without_writing() {
        let (_d, mut l) = open();
        l.set_population_cap(P, "10", "0.001", 0).unwrap();
        l.set_budget(P, "acme", "1", "0.00001", 0).unwrap();
        let g = l.issue_grant(GrantRequest { epsilon: "0.7", ..req("j1") }).unwrap();
        assert_eq!(g.epsilon.as_str(), "0.7");
        assert_eq!(g.delta.as_str(), "0");
        assert_eq!((g.population.as_str(), g.collaborator.as_str()), (P, "acme"));
        assert_eq!(g.query_digest, Digest::of(b"j1"));
        assert_eq!(g.provider_public_key.as_slice(), &PROVIDER);
        assert_eq!(
            g.ledger,
            LedgerFigures {
                collaborator_epsilon_before: Decimal::literal("1"),
                collaborator_epsilon_after: Decimal::literal("0.3"),
                population_epsilon_before: Decimal::literal("10"),
                population_epsilon_after: Decimal::literal("9.3"),
                collaborator_delta_after: Decimal::literal("0.00001"),
                population_delta_after: Decimal::literal("0.001"),
            }
        );
        let e = l.issue_grant(GrantRequest { epsilon: "0.4", ..req("j2") }).unwrap_err();
        assert!(e.to_string().contains("collaborator cap"), "{e}");
        assert_eq!(exceeded(e), (Cap::Collaborator, Quantity::Epsilon, "0.4".into(), "0.3".into()));
        // Nothing was written by the refusal.
        assert_eq!(rows(&l, "grants_v2"), 1);
        let b = l.budget(P, "acme").unwrap();
        assert_eq!((b.epsilon.spent, b.epsilon.remaining, b.grants), (r("0.7"), r("0.3"), 1));
        assert_eq!(l.population(P).unwrap().epsilon.spent, r("0.7"));
        // 0.1 + 0.2 = 0.3 exactly: rationals, not floats.
        l.issue_grant(GrantRequest { epsilon: "0.1", ..req("j3") }).unwrap();
        let g = l.issue_grant(GrantRequest { epsilon: "0.2", ..req("j4") }).unwrap();
        assert_eq!(g.ledger.collaborator_epsilon_after.as_str(), "0");
        assert_eq!(g.ledger.population_epsilon_after.as_str(), "9");
        let e = l.issue_grant(GrantRequest { epsilon: "0.000001", ..req("j5") }).unwrap_err();
        assert_eq!(exceeded(e), (Cap::Collaborator, Quantity::Epsilon, "0.000001".into(), "0".into()));
        let b = l.budget(P, "acme").unwrap();
        assert_eq!((b.epsilon.total, b.epsilon.spent, b.epsilon.remaining), (r("1"), r("1"), r("0")));
        assert_eq!(b.grants, 3);
        let ids: Vec<String> = l.grants().unwrap().into_iter().map(|g| g.grant_id).collect();
        assert_eq!(ids, ["g-j1", "g-j3", "g-j4"]);
    }

    #[test]
    fn delta_is_capped_by_population_and_collaborator_without_writing() {
        let (_d, mut l) = open();
        l.set_population_cap(P, "10", "0.000002", 0).unwrap();
        l.set_budget(P, "acme", "10", "0.000005", 0).unwrap();
        l.set_budget(P, "beta", "10", "0.000005", 0).unwrap();
        let g = l.issue_grant(GrantRequest { delta: "1e-6", ..req("j1") }).unwrap();
        assert_eq!(g.delta.as_str(), "0.000001");
        assert_eq!(g.ledger.population_delta_after.as_str(), "0.000001");
        assert_eq!(g.ledger.collaborator_delta_after.as_str(), "0.000004");
        let e = l.issue_grant(GrantRequest { delta: "0.000002", ..req("j2") }).unwrap_err();
        assert!(e.to_string().contains("δ budget exceeded on the population cap"), "{e}");
        assert_eq!(exceeded(e), (Cap::Population, Quantity::Delta, "0.000002".into(), "0.000001".into()));
        assert_eq!(rows(&l, "grants_v2"), 1);
        assert_eq!(l.population(P).unwrap().delta.spent, r("0.000001"));
        // The refused job may retry with less: the refusal left no trace.
        let b = GrantRequest { collaborator: "beta", delta: "0.000001", ..req("j2") };
        assert_eq!(l.issue_grant(b).unwrap().ledger.population_delta_after.as_str(), "0");
        // δ = 0 still fits an exhausted δ budget; any δ > 0 does not, ε is untouched.
        l.issue_grant(GrantRequest { collaborator: "beta", ..req("j3") }).unwrap();
        let e = l.issue_grant(GrantRequest { collaborator: "beta", delta: "1e-12", ..req("j4") }).unwrap_err();
        assert_eq!(exceeded(e), (Cap::Population, Quantity::Delta, "0.000000000001".into(), "0".into()));
        let pop = l.population(P).unwrap();
        assert_eq!((pop.delta.spent, pop.delta.remaining, pop.epsilon.spent), (r("0.000002"), r("0"), r("0.3")));

        // The collaborator's δ cap binds on its own too.
        l.set_population_cap("q", "10", "0.1", 0).unwrap();
        l.set_budget("q", "acme", "10", "0.000001", 0).unwrap();
        let q = |job| GrantRequest { population: "q", dataset: Digest::of(b"q"), ..req(job) };
        let e = l.issue_grant(GrantRequest { delta: "0.000002", ..q("k1") }).unwrap_err();
        assert_eq!(exceeded(e), (Cap::Collaborator, Quantity::Delta, "0.000002".into(), "0.000001".into()));
        assert_eq!(l.budget("q", "acme").unwrap().grants, 0);
        l.issue_grant(GrantRequest { delta: "0.000001", ..q("k1") }).unwrap();
        assert_eq!(l.budget("q", "acme").unwrap().delta.remaining, r("0"));
    }

    #[test]
    fn two_collaborators_cannot_exceed_the_population_cap() {
        let (_d, mut l) = open();
        l.set_population_cap(P, "1", "0", 0).unwrap();
        l.set_budget(P, "acme", "0.8", "0", 0).unwrap();
        l.set_budget(P, "beta", "0.8", "0", 0).unwrap();
        l.issue_grant(GrantRequest { epsilon: "0.6", ..req("j1") }).unwrap();
        let e = l.issue_grant(GrantRequest { collaborator: "beta", epsilon: "0.6", ..req("j2") }).unwrap_err();
        assert!(e.to_string().contains("ε budget exceeded on the population cap"), "{e}");
        assert_eq!(exceeded(e), (Cap::Population, Quantity::Epsilon, "0.6".into(), "0.4".into()));
        let g = l.issue_grant(GrantRequest { collaborator: "beta", epsilon: "0.4", ..req("j2") }).unwrap();
        assert_eq!(
            (g.ledger.collaborator_epsilon_before.as_str(), g.ledger.collaborator_epsilon_after.as_str()),
            ("0.8", "0.4")
        );
        assert_eq!(
            (g.ledger.population_epsilon_before.as_str(), g.ledger.population_epsilon_after.as_str()),
            ("0.4", "0")
        );
        // acme still has 0.2 of its own, but the population has nothing left.
        assert_eq!(l.budget(P, "acme").unwrap().epsilon.remaining, r("0.2"));
        let e = l.issue_grant(GrantRequest { epsilon: "0.1", ..req("j3") }).unwrap_err();
        assert_eq!(exceeded(e), (Cap::Population, Quantity::Epsilon, "0.1".into(), "0".into()));
        let pop = l.population(P).unwrap();
        assert_eq!((pop.epsilon.spent, pop.epsilon.remaining), (r("1"), r("0")));
        assert_eq!((pop.grants, pop.collaborators, pop.datasets), (2, 2, 1));
        let budgets = l.budgets().unwrap();
        assert_eq!(
            budgets.iter().map(|b| (b.collaborator.as_str(), b.grants)).collect::<Vec<_>>(),
            [("acme", 1), ("beta", 1)]
        );
    }

    #[test]
    fn resealing_the_same_people_shares_the_population_budget() {
        let (_d, mut l) = open();
        l.set_population_cap(P, "1", "0.00001", 0).unwrap();
        l.set_budget(P, "acme", "5", "0.00001", 0).unwrap();
        l.issue_grant(GrantRequest { epsilon: "0.6", delta: "0.000004", ..req("j1") }).unwrap();
        // The same job label on the re-seal is a different (dataset, job), but the people,
        // and so the budget, are the same.
        let d2 = Digest::of(b"seal 2 (re-seal of the same people)");
        let on_d2 = |epsilon, delta| GrantRequest {
            grant_id: "g-reseal".into(),
            dataset: d2,
            query_digest: Digest::of(b"j1 on seal 2"),
            epsilon,
            delta,
            ..req("j1")
        };
        let e = l.issue_grant(on_d2("0.6", "0")).unwrap_err();
        assert_eq!(exceeded(e), (Cap::Population, Quantity::Epsilon, "0.6".into(), "0.4".into()));
        let e = l.issue_grant(on_d2("0.1", "0.000007")).unwrap_err();
        assert_eq!(exceeded(e), (Cap::Population, Quantity::Delta, "0.000007".into(), "0.000006".into()));
        let g = l.issue_grant(on_d2("0.4", "0.000006")).unwrap();
        assert_eq!((g.ledger.population_epsilon_after.as_str(), g.ledger.population_delta_after.as_str()), ("0", "0"));
        assert_eq!(g.ledger.collaborator_epsilon_after.as_str(), "4");
        let pop = l.population(P).unwrap();
        assert_eq!((pop.grants, pop.datasets, pop.collaborators), (2, 2, 1));
        assert_eq!((pop.epsilon.spent, pop.delta.spent), (r("1"), r("0.00001")));
        // Another population (another token key) is accounted separately.
        l.set_population_cap("tok-other", "1", "0", 0).unwrap();
        l.set_budget("tok-other", "acme", "1", "0", 0).unwrap();
        let other = GrantRequest { population: "tok-other", dataset: Digest::of(b"other people"), ..req("j9") };
        assert_eq!(l.issue_grant(other).unwrap().ledger.population_epsilon_after.as_str(), "0.9");
        let pops: Vec<(String, u64)> = l.populations().unwrap().into_iter().map(|p| (p.population, p.grants)).collect();
        assert_eq!(pops, [(P.to_string(), 2), ("tok-other".to_string(), 1)]);
    }

    #[test]
    fn missing_caps_name_the_command_to_run() {
        let (_d, mut l) = open();
        let e = l.issue_grant(req("j1")).unwrap_err();
        assert!(matches!(&e, LedgerError::NoPopulationCap { population } if population == P), "{e:?}");
        assert!(e.to_string().contains(&format!("cleanroom budget cap --population {P} --epsilon E --delta D")), "{e}");
        assert!(matches!(l.population(P), Err(LedgerError::NoPopulationCap { .. })));
        // A collaborator budget alone is not enough, nor is a cap alone.
        l.set_budget(P, "acme", "1", "0", 0).unwrap();
        assert!(matches!(l.issue_grant(req("j1")), Err(LedgerError::NoPopulationCap { .. })));
        l.set_population_cap(P, "1", "0", 0).unwrap();
        let e = l.issue_grant(GrantRequest { collaborator: "beta", ..req("j1") }).unwrap_err();
        assert!(matches!(&e, LedgerError::NoBudget { collaborator, .. } if collaborator == "beta"), "{e:?}");
        assert!(
            e.to_string()
                .contains(&format!("cleanroom budget set --population {P} --collaborator beta --epsilon E --delta D")),
            "{e}"
        );
        assert!(matches!(l.budget(P, "beta"), Err(LedgerError::NoBudget { .. })));
        assert_eq!(rows(&l, "grants_v2"), 0);
        l.issue_grant(req("j1")).unwrap();
    }

    #[test]
    fn duplicate_grant_job_or_query_is_refused() {
        let (_d, mut l) = open();
        l.set_population_cap(P, "10", "0", 0).unwrap();
        l.set_budget(P, "acme", "10", "0", 0).unwrap();
        l.issue_grant(req("j1")).unwrap();
        let again = GrantRequest { grant_id: "g-other".into(), query_digest: Digest::of(b"q2"), ..req("j1") };
        assert!(matches!(l.issue_grant(again), Err(LedgerError::DuplicateJob { grant_id, .. }) if grant_id == "g-j1"));
        let same_query = GrantRequest { query_digest: Digest::of(b"j1"), ..req("j2") };
        assert!(
            matches!(l.issue_grant(same_query), Err(LedgerError::DuplicateQuery { grant_id, .. }) if grant_id == "g-j1")
        );
        let same_id = GrantRequest { grant_id: "g-j1".into(), ..req("j3") };
        assert!(matches!(l.issue_grant(same_id), Err(LedgerError::DuplicateGrantId(id)) if id == "g-j1"));
        assert_eq!(rows(&l, "grants_v2"), 1);
        // The same query for another enclave (a restarted one has a new key) is a new grant,
        // and spends again.
        let other_enclave = [2u8; 32];
        let restarted =
            GrantRequest { query_digest: Digest::of(b"j1"), enclave_public_key: &other_enclave, ..req("j1-retry") };
        l.issue_grant(restarted).unwrap();
        assert_eq!(l.budget(P, "acme").unwrap().epsilon.spent, r("0.2"));
    }

    #[test]
    fn malformed_requests_write_nothing() {
        let (_d, mut l) = open();
        l.set_population_cap(P, "10", "0.5", 0).unwrap();
        l.set_budget(P, "acme", "10", "0.5", 0).unwrap();
        for eps in ["0", "-1", "", "NaN", "0.1.2"] {
            let e = l.issue_grant(GrantRequest { epsilon: eps, ..req("j1") }).unwrap_err();
            assert!(matches!(e, LedgerError::BadEpsilon { .. }), "{eps:?}: {e:?}");
        }
        for delta in ["1", "1.5", "-0.1", "x"] {
            let e = l.issue_grant(GrantRequest { delta, ..req("j1") }).unwrap_err();
            assert!(matches!(e, LedgerError::BadDelta { .. }), "{delta:?}: {e:?}");
        }
        assert!(matches!(
            l.issue_grant(GrantRequest { collaborator: "", ..req("j1") }),
            Err(LedgerError::BadName { .. })
        ));
        assert!(matches!(
            l.issue_grant(GrantRequest { population: " p", ..req("j1") }),
            Err(LedgerError::BadName { .. })
        ));
        assert!(matches!(l.issue_grant(GrantRequest { job_id: "", ..req("j1") }), Err(LedgerError::BadName { .. })));
        let short = [0u8; 31];
        let e = l.issue_grant(GrantRequest { provider_public_key: &short, ..req("j1") }).unwrap_err();
        assert!(matches!(e, LedgerError::BadKey { len: 31, .. }), "{e:?}");
        let e = l.issue_grant(GrantRequest { enclave_public_key: &[], ..req("j1") }).unwrap_err();
        assert!(matches!(e, LedgerError::BadKey { len: 0, .. }), "{e:?}");
        let e = l.issue_grant(GrantRequest { now: 100, expires_at: 100, ..req("j1") }).unwrap_err();
        assert!(matches!(e, LedgerError::BadExpiry { .. }), "{e:?}");
        let e = l.issue_grant(GrantRequest { now: 1, expires_at: u64::MAX, ..req("j1") }).unwrap_err();
        assert!(matches!(e, LedgerError::BadTime(_)), "{e:?}");
        assert!(matches!(l.set_population_cap(P, "1", "1", 0), Err(LedgerError::BadDelta { .. })));
        assert!(matches!(l.set_budget(P, "acme", "-1", "0", 0), Err(LedgerError::BadEpsilon { .. })));
        assert!(matches!(l.set_budget(P, "", "1", "0", 0), Err(LedgerError::BadName { .. })));
        assert_eq!(rows(&l, "grants_v2"), 0);
        let b = l.budget(P, "acme").unwrap();
        assert_eq!((b.epsilon.total, b.delta.total), (r("10"), r("0.5")));
    }

    #[test]
    fn lowering_a_cap_below_spent_stops_grants_and_forgets_nothing() {
        let (_d, mut l) = open();
        l.set_population_cap(P, "1", "0", 0).unwrap();
        l.set_budget(P, "acme", "1", "0", 0).unwrap();
        l.issue_grant(GrantRequest { epsilon: "0.6", ..req("j1") }).unwrap();
        l.set_population_cap(P, "0.5", "0", 1).unwrap();
        let pop = l.population(P).unwrap();
        assert_eq!((pop.epsilon.total, pop.epsilon.spent, pop.epsilon.remaining), (r("0.5"), r("0.6"), r("0")));
        let e = l.issue_grant(GrantRequest { epsilon: "0.1", ..req("j2") }).unwrap_err();
        assert_eq!(exceeded(e), (Cap::Population, Quantity::Epsilon, "0.1".into(), "0".into()));
        l.set_population_cap(P, "0.8", "0", 2).unwrap();
        l.issue_grant(GrantRequest { epsilon: "0.2", ..req("j2") }).unwrap();
        assert_eq!(l.population(P).unwrap().epsilon.remaining, r("0"));
    }

    #[test]
    fn a_dataset_belongs_to_one_population() {
        let (_d, mut l) = open();
        for p in [P, "tok-b", "tok-c"] {
            l.set_population_cap(p, "10", "0", 0).unwrap();
            l.set_budget(p, "acme", "10", "0", 0).unwrap();
        }
        l.issue_grant(req("j1")).unwrap();
        let e = l.issue_grant(GrantRequest { population: "tok-b", ..req("j2") }).unwrap_err();
        assert!(matches!(&e, LedgerError::DatasetPopulationMismatch { bound, .. } if bound == P), "{e:?}");
        // Recording the manifest binds its dataset to the manifest's token key.
        let d3 = Digest::of(b"seal 3");
        l.record_manifest(&manifest(d3, "tok-c"), 5).unwrap();
        let on_d3 = |population| GrantRequest { dataset: d3, population, ..req("j3") };
        let e = l.issue_grant(on_d3("tok-b")).unwrap_err();
        assert!(matches!(&e, LedgerError::DatasetPopulationMismatch { bound, .. } if bound == "tok-c"), "{e:?}");
        l.issue_grant(on_d3("tok-c")).unwrap();
        // A manifest claiming another population for an already-bound dataset is refused
        // and writes nothing; the same manifest again is fine.
        let before = rows(&l, "manifests");
        assert!(matches!(
            l.record_manifest(&manifest(d1(), "tok-b"), 6),
            Err(LedgerError::DatasetPopulationMismatch { .. })
        ));
        assert_eq!(rows(&l, "manifests"), before);
        l.record_manifest(&manifest(d3, "tok-c"), 7).unwrap();
        assert_eq!(rows(&l, "manifests"), before + 1);
        assert_eq!(rows(&l, "dataset_populations"), 1);
    }

    #[test]
    fn manifest_log_is_append_only() {
        let (_d, l) = open();
        let seq = l.record_manifest(&manifest(d1(), P), 1).unwrap();
        assert_eq!(l.record_manifest(&manifest(Digest::of(b"x"), P), 2).unwrap(), seq + 1);
        l.conn
            .execute(
                "INSERT INTO manifests (recorded_at, dataset, manifest_digest, manifest) VALUES (1,'a','b','{}')",
                [],
            )
            .unwrap();
        assert!(l.conn.execute("UPDATE manifests SET dataset = 'x'", []).is_err());
        assert!(l.conn.execute("DELETE FROM manifests", []).is_err());
        assert!(l.conn.execute("DELETE FROM dataset_populations", []).is_err());
        assert!(l.conn.execute("UPDATE dataset_populations SET population = 'x'", []).is_err());
        assert_eq!(rows(&l, "manifests"), 3);
    }

    #[test]
    fn spent_budget_cannot_be_deleted_or_rewritten() {
        let (_d, mut l) = open();
        l.set_population_cap(P, "1", "0", 0).unwrap();
        l.set_budget(P, "acme", "1", "0", 0).unwrap();
        l.issue_grant(req("j1")).unwrap();
        assert!(l.conn.execute("DELETE FROM grants_v2", []).is_err());
        assert!(l.conn.execute("UPDATE grants_v2 SET epsilon = '0'", []).is_err());
        assert_eq!(l.population(P).unwrap().epsilon.spent, r("0.1"));
    }

    #[test]
    fn sixteen_concurrent_connections_get_exactly_five_grants() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        {
            let l = Ledger::open(&path).unwrap();
            // The population cap fits exactly five grants of (0.1, 1e-6), in ε and in δ;
            // each collaborator alone could take all sixteen.
            l.set_population_cap(P, "0.5", "0.000005", 0).unwrap();
            l.set_budget(P, "acme", "10", "0.1", 0).unwrap();
            l.set_budget(P, "beta", "10", "0.1", 0).unwrap();
        }
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut l = Ledger::open(&path).unwrap();
                    let job = format!("j{i}");
                    let collaborator = if i % 2 == 0 { "acme" } else { "beta" };
                    barrier.wait();
                    match l.issue_grant(GrantRequest { collaborator, delta: "0.000001", ..req(&job) }) {
                        Ok(_) => true,
                        Err(LedgerError::Exceeded { cap: Cap::Population, .. }) => false,
                        Err(e) => panic!("unexpected error {e}"),
                    }
                })
            })
            .collect();
        let ok = handles.into_iter().map(|h| h.join().unwrap()).filter(|&b| b).count();
        assert_eq!(ok, 5, "exactly five grants fit under the population cap");
        let l = Ledger::open(&path).unwrap();
        let pop = l.population(P).unwrap();
        assert_eq!((pop.epsilon.spent, pop.delta.spent, pop.grants), (r("0.5"), r("0.000005"), 5));
        assert_eq!(l.grants().unwrap().len(), 5);
    }

    #[test]
    fn an_old_schema_ledger_opens_and_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        {
            // The first ledger schema, as an old `cleanroom` left it.
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "journal_mode", "WAL").unwrap();
            c.execute_batch(
                "CREATE TABLE budgets (
                     dataset TEXT NOT NULL, collaborator TEXT NOT NULL, total TEXT NOT NULL,
                     updated_at INTEGER NOT NULL, PRIMARY KEY (dataset, collaborator));
                 CREATE TABLE grants (
                     grant_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, dataset TEXT NOT NULL,
                     collaborator TEXT NOT NULL, epsilon TEXT NOT NULL, enclave_key TEXT NOT NULL,
                     issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
                     UNIQUE (dataset, job_id));
                 CREATE TABLE manifests (
                     seq INTEGER PRIMARY KEY AUTOINCREMENT, recorded_at INTEGER NOT NULL,
                     dataset TEXT NOT NULL, manifest_digest TEXT NOT NULL, manifest TEXT NOT NULL);
                 CREATE TRIGGER manifests_append_only_u BEFORE UPDATE ON manifests
                     BEGIN SELECT RAISE(ABORT, 'the manifest log is append-only'); END;
                 CREATE TRIGGER manifests_append_only_d BEFORE DELETE ON manifests
                     BEGIN SELECT RAISE(ABORT, 'the manifest log is append-only'); END;
                 INSERT INTO budgets VALUES ('aa', 'acme', '1', 0);
                 INSERT INTO grants VALUES ('old-g', 'j1', 'aa', 'acme', '0.7', '01', 0, 10);
                 INSERT INTO manifests (recorded_at, dataset, manifest_digest, manifest)
                     VALUES (0, 'aa', 'bb', '{}');",
            )
            .unwrap();
        }
        let mut l = Ledger::open(&path).unwrap();
        assert!(l.grants().unwrap().is_empty(), "old grants are ignored");
        assert!(l.budgets().unwrap().is_empty() && l.populations().unwrap().is_empty());
        l.set_population_cap(P, "1", "0.000001", 0).unwrap();
        l.set_budget(P, "acme", "1", "0.000001", 0).unwrap();
        // The old (dataset, job) pair does not collide: old tables are not consulted.
        l.issue_grant(GrantRequest { epsilon: "0.7", ..req("j1") }).unwrap();
        assert_eq!(l.record_manifest(&manifest(d1(), P), 1).unwrap(), 2);
        drop(l);
        // Reopening (schema creation is idempotent) keeps everything, old tables untouched.
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.grants().unwrap().iter().map(|g| g.grant_id.as_str()).collect::<Vec<_>>(), ["g-j1"]);
        let g = &l.grants().unwrap()[0];
        assert_eq!((g.epsilon.as_str(), g.delta.as_str(), g.dataset, g.population.as_str()), ("0.7", "0", d1(), P));
        assert_eq!(g.query_digest, Digest::of(b"j1"));
        assert_eq!(l.budget(P, "acme").unwrap().epsilon.remaining, r("0.3"));
        assert_eq!((rows(&l, "grants"), rows(&l, "budgets"), rows(&l, "manifests")), (1, 1, 2));
        assert!(l.conn.execute("DELETE FROM manifests", []).is_err());
    }
}
