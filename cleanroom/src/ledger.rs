//! The owner's privacy-budget ledger (SQLite, WAL mode).
//!
//! The ledger, not the enclave, is the source of truth for budget: an enclave restart
//! resets nothing that matters. A grant is written here, in one immediate transaction
//! that checks the remaining budget, *before* it is sent; so a crash between writing and
//! sending can only lose budget, never create it, and two concurrent grants cannot both
//! pass the check.

use dp::Rational;
use protocol::grant::BudgetGrant;
use protocol::policy::Decimal;
use protocol::{Bytes, Digest};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("no budget set for dataset {dataset} and collaborator {collaborator:?}; run `cleanroom budget set`")]
    NoBudget { dataset: Digest, collaborator: String },
    #[error("budget exceeded: job asks for ε = {requested}, {remaining} remains for dataset {dataset} and collaborator {collaborator:?}")]
    Exceeded { dataset: Digest, collaborator: String, requested: String, remaining: String },
    #[error("job {job_id:?} already has a grant on this dataset (grant {grant_id}); grants are single-use")]
    DuplicateJob { job_id: String, grant_id: String },
    #[error("invalid ε {0:?}")]
    BadEpsilon(String),
    #[error("ledger row is corrupt: {0}")]
    Corrupt(String),
}

pub struct Ledger {
    conn: Connection,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRow {
    pub dataset: Digest,
    pub collaborator: String,
    pub total: Rational,
    pub spent: Rational,
    pub remaining: Rational,
    pub grants: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GrantRow {
    pub grant_id: String,
    pub job_id: String,
    pub dataset: Digest,
    pub collaborator: String,
    pub epsilon: String,
    pub issued_at: u64,
}

fn rational(s: &str) -> Result<Rational, LedgerError> {
    s.parse().map_err(|_| LedgerError::BadEpsilon(s.to_string()))
}

fn zero() -> Rational {
    Rational::default()
}

/// Parameters of a new grant; the ledger fills in the budget figures.
pub struct GrantRequest<'a> {
    pub grant_id: String,
    pub job_id: &'a str,
    pub dataset: Digest,
    pub policy_digest: Digest,
    pub collaborator: &'a str,
    pub epsilon: &'a str,
    pub enclave_public_key: &'a [u8],
    pub nonce: [u8; 16],
    pub now: u64,
    pub expires_at: u64,
}

impl Ledger {
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS budgets (
                 dataset TEXT NOT NULL, collaborator TEXT NOT NULL, total TEXT NOT NULL,
                 updated_at INTEGER NOT NULL, PRIMARY KEY (dataset, collaborator));
             CREATE TABLE IF NOT EXISTS grants (
                 grant_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, dataset TEXT NOT NULL,
                 collaborator TEXT NOT NULL, epsilon TEXT NOT NULL, enclave_key TEXT NOT NULL,
                 issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
                 UNIQUE (dataset, job_id));
             CREATE TABLE IF NOT EXISTS manifests (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT, recorded_at INTEGER NOT NULL,
                 dataset TEXT NOT NULL, manifest_digest TEXT NOT NULL, manifest TEXT NOT NULL);
             CREATE TRIGGER IF NOT EXISTS manifests_append_only_u BEFORE UPDATE ON manifests
                 BEGIN SELECT RAISE(ABORT, 'the manifest log is append-only'); END;
             CREATE TRIGGER IF NOT EXISTS manifests_append_only_d BEFORE DELETE ON manifests
                 BEGIN SELECT RAISE(ABORT, 'the manifest log is append-only'); END;",
        )?;
        Ok(Ledger { conn })
    }

    /// Append a prepared dataset's manifest and digest to the owner's append-only log.
    pub fn record_manifest(&self, manifest: &protocol::manifest::Manifest, now: u64) -> Result<u64, LedgerError> {
        self.conn.execute(
            "INSERT INTO manifests (recorded_at, dataset, manifest_digest, manifest) VALUES (?1, ?2, ?3, ?4)",
            params![now as i64, manifest.dataset_digest.to_hex(), manifest.digest().to_hex(), manifest.to_json()],
        )?;
        Ok(self.conn.last_insert_rowid() as u64)
    }

    /// Set the total budget for (dataset, collaborator). Lowering it below what is spent
    /// is allowed (it stops further grants); nothing already spent is forgotten.
    pub fn set_budget(&self, dataset: &Digest, collaborator: &str, total: &str, now: u64) -> Result<(), LedgerError> {
        let t = rational(total)?;
        self.conn.execute(
            "INSERT INTO budgets (dataset, collaborator, total, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (dataset, collaborator) DO UPDATE SET total = excluded.total, updated_at = excluded.updated_at",
            params![dataset.to_hex(), collaborator, t.to_string(), now as i64],
        )?;
        Ok(())
    }

    fn row(conn: &Connection, dataset: &Digest, collaborator: &str) -> Result<BudgetRow, LedgerError> {
        let total: Option<String> = conn
            .query_row(
                "SELECT total FROM budgets WHERE dataset = ?1 AND collaborator = ?2",
                params![dataset.to_hex(), collaborator],
                |r| r.get(0),
            )
            .optional()?;
        let total = rational(
            &total.ok_or_else(|| LedgerError::NoBudget { dataset: *dataset, collaborator: collaborator.into() })?,
        )?;
        let mut stmt = conn.prepare("SELECT epsilon FROM grants WHERE dataset = ?1 AND collaborator = ?2")?;
        let mut spent = zero();
        let mut grants = 0;
        for e in stmt.query_map(params![dataset.to_hex(), collaborator], |r| r.get::<_, String>(0))? {
            spent = spent.checked_add(&rational(&e?)?).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
            grants += 1;
        }
        let remaining =
            total.checked_sub(&spent).map_err(|e| LedgerError::Corrupt(e.to_string()))?.unwrap_or_else(zero);
        Ok(BudgetRow { dataset: *dataset, collaborator: collaborator.into(), total, spent, remaining, grants })
    }

    pub fn budget(&self, dataset: &Digest, collaborator: &str) -> Result<BudgetRow, LedgerError> {
        Self::row(&self.conn, dataset, collaborator)
    }

    pub fn budgets(&self) -> Result<Vec<BudgetRow>, LedgerError> {
        let mut stmt = self.conn.prepare("SELECT dataset, collaborator FROM budgets ORDER BY dataset, collaborator")?;
        let keys: Vec<(String, String)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        keys.iter()
            .map(|(d, c)| {
                let d: Digest = d.parse().map_err(|_| LedgerError::Corrupt(format!("dataset {d:?}")))?;
                Self::row(&self.conn, &d, c)
            })
            .collect()
    }

    pub fn grants(&self) -> Result<Vec<GrantRow>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT grant_id, job_id, dataset, collaborator, epsilon, issued_at FROM grants ORDER BY issued_at, grant_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?, r.get::<_, i64>(5)?))
        })?;
        rows.map(|r| {
            let (grant_id, job_id, d, collaborator, epsilon, issued_at) = r?;
            let dataset = d.parse().map_err(|_| LedgerError::Corrupt(format!("dataset {d:?}")))?;
            Ok(GrantRow { grant_id, job_id, dataset, collaborator, epsilon, issued_at: issued_at as u64 })
        })
        .collect()
    }

    /// Check the budget and record the grant as spent, atomically. Nothing is written
    /// when the budget does not cover it.
    pub fn issue_grant(&mut self, req: GrantRequest<'_>) -> Result<BudgetGrant, LedgerError> {
        let eps = rational(req.epsilon)?;
        if eps == zero() {
            return Err(LedgerError::BadEpsilon(req.epsilon.into()));
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT grant_id FROM grants WHERE dataset = ?1 AND job_id = ?2",
                params![req.dataset.to_hex(), req.job_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(grant_id) = existing {
            return Err(LedgerError::DuplicateJob { job_id: req.job_id.into(), grant_id });
        }
        let row = Self::row(&tx, &req.dataset, req.collaborator)?;
        let after = match row.remaining.checked_sub(&eps).map_err(|e| LedgerError::Corrupt(e.to_string()))? {
            Some(after) => after,
            None => {
                return Err(LedgerError::Exceeded {
                    dataset: req.dataset,
                    collaborator: req.collaborator.into(),
                    requested: eps.to_string(),
                    remaining: row.remaining.to_string(),
                })
            }
        };
        tx.execute(
            "INSERT INTO grants (grant_id, job_id, dataset, collaborator, epsilon, enclave_key, issued_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                req.grant_id,
                req.job_id,
                req.dataset.to_hex(),
                req.collaborator,
                eps.to_string(),
                hex::encode(req.enclave_public_key),
                req.now as i64,
                req.expires_at as i64
            ],
        )?;
        tx.commit()?;
        Ok(BudgetGrant {
            grant_id: req.grant_id,
            job_id: req.job_id.into(),
            dataset_digest: req.dataset,
            policy_digest: req.policy_digest,
            collaborator: req.collaborator.into(),
            epsilon: Decimal(eps.to_string()),
            expires_at: req.expires_at,
            nonce: Bytes(req.nonce.to_vec()),
            enclave_public_key: Bytes(req.enclave_public_key.to_vec()),
            ledger_remaining_before: Decimal(row.remaining.to_string()),
            ledger_remaining_after: Decimal(after.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(id: &str, job: &'a str, eps: &'a str) -> GrantRequest<'a> {
        GrantRequest {
            grant_id: id.into(),
            job_id: job,
            dataset: Digest::of(b"d"),
            policy_digest: Digest::default(),
            collaborator: "acme",
            epsilon: eps,
            enclave_public_key: &[1; 32],
            nonce: [0; 16],
            now: 1,
            expires_at: 100,
        }
    }

    #[test]
    fn grants_spend_exactly_and_refuse_overdraft_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        assert!(matches!(l.issue_grant(req("g0", "j0", "0.5")), Err(LedgerError::NoBudget { .. })));
        l.set_budget(&Digest::of(b"d"), "acme", "1", 0).unwrap();
        let g = l.issue_grant(req("g1", "j1", "0.7")).unwrap();
        assert_eq!((g.ledger_remaining_before.0.as_str(), g.ledger_remaining_after.0.as_str()), ("1", "0.3"));
        assert!(matches!(l.issue_grant(req("g2", "j2", "0.4")), Err(LedgerError::Exceeded { .. })));
        assert!(matches!(l.issue_grant(req("g3", "j1", "0.1")), Err(LedgerError::DuplicateJob { .. })));
        let b = l.budget(&Digest::of(b"d"), "acme").unwrap();
        assert_eq!((b.spent.to_string(), b.remaining.to_string(), b.grants), ("0.7".into(), "0.3".into(), 1));
        // 0.1 + 0.2 = 0.3 exactly: rationals, not floats.
        l.issue_grant(req("g4", "j4", "0.1")).unwrap();
        l.issue_grant(req("g5", "j5", "0.2")).unwrap();
        assert_eq!(l.budget(&Digest::of(b"d"), "acme").unwrap().remaining.to_string(), "0");
    }

    #[test]
    fn manifest_log_is_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        l.conn
            .execute(
                "INSERT INTO manifests (recorded_at, dataset, manifest_digest, manifest) VALUES (1,'a','b','{}')",
                [],
            )
            .unwrap();
        assert!(l.conn.execute("UPDATE manifests SET dataset = 'x'", []).is_err());
        assert!(l.conn.execute("DELETE FROM manifests", []).is_err());
    }

    #[test]
    fn concurrent_grants_cannot_overspend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        Ledger::open(&path).unwrap().set_budget(&Digest::of(b"d"), "acme", "1", 0).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut l = Ledger::open(&path).unwrap();
                    let job = format!("j{i}");
                    l.issue_grant(req(&format!("g{i}"), &job, "0.3")).is_ok()
                })
            })
            .collect();
        let ok = handles.into_iter().map(|h| h.join().unwrap()).filter(|&b| b).count();
        assert_eq!(ok, 3, "exactly three grants of 0.3 fit in 1");
        let b = Ledger::open(&path).unwrap().budget(&Digest::of(b"d"), "acme").unwrap();
        assert_eq!(b.spent.to_string(), "0.9");
    }
}
