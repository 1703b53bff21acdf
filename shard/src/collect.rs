//! The coordinator's side: collect one report per shard, check each, merge them exactly.
//!
//! The caller builds the accumulator from the job's query (the same public inputs every
//! shard used), feeds each shard's report as it arrives on that shard's channel, and
//! calls [`Collect::finish`] at the job's deadline. Only a complete, fully checked merge
//! comes back; the caller then adds the noise, once, and signs. Any error fails the job
//! and nothing is released: a partial release would be a release of fewer units than the
//! grant named, chosen by whoever made a shard fail.

use crate::assign::{Plan, PlanError};
use crate::report::{PadError, Partial, Report};
use crate::wire::JobBinding;
use protocol::Digest;
use release::{Accumulator, MergeError};

/// Why a sharded job failed. Each names the shard (a public index) and the rule broken;
/// none carries a number from a partial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("shard {shard}: malformed report: {source}")]
    Malformed { shard: u16, source: PadError },
    #[error("shard {shard}: its report is for another job or an earlier round (a replay)")]
    Replayed { shard: u16 },
    #[error("the channel of shard {channel} carried a report signed as shard {claimed}")]
    WrongShard { channel: u16, claimed: u16 },
    #[error("shard {shard}: a second report")]
    Duplicate { shard: u16 },
    #[error("shard {shard}: it reports a range it was not assigned")]
    WrongRange { shard: u16 },
    #[error("shard {shard}: it reports units outside its assigned range")]
    UnitsOutsideRange { shard: u16 },
    #[error("shard {shard}: its unit count does not match its aggregates: {why}")]
    UnitCount { shard: u16, why: &'static str },
    #[error("shard {shard}: its aggregates are not possible for its units: {source}")]
    Aggregates { shard: u16, source: MergeError },
    #[error("shard {shard}: it reported a failure")]
    ShardFailed { shard: u16 },
    #[error("shard {shard}: its channel failed before its report: {why}")]
    Lost { shard: u16, why: String },
    #[error("no report from shards {0:?} by the deadline")]
    Missing(Vec<u16>),
}

impl ShardError {
    /// A stable name for the failure, for the owner's diagnostics and tests.
    pub fn code(&self) -> &'static str {
        match self {
            ShardError::Plan(_) => "plan",
            ShardError::Malformed { .. } => "malformed_report",
            ShardError::Replayed { .. } => "replayed_report",
            ShardError::WrongShard { .. } => "wrong_shard",
            ShardError::Duplicate { .. } => "duplicate_report",
            ShardError::WrongRange { .. } => "wrong_range",
            ShardError::UnitsOutsideRange { .. } => "units_outside_range",
            ShardError::UnitCount { .. } => "unit_count_mismatch",
            ShardError::Aggregates { .. } => "impossible_aggregates",
            ShardError::ShardFailed { .. } => "shard_failed",
            ShardError::Lost { .. } => "shard_lost",
            ShardError::Missing(_) => "missing_shards",
        }
    }
}

/// The coordinator's merge of one run's reports.
pub struct Collect {
    job: JobBinding,
    job_digest: Digest,
    plan: Plan,
    /// `None` once a report failed a check: nothing can be finished after that.
    acc: Option<Accumulator>,
    seen: Vec<bool>,
    failed: Option<ShardError>,
}

impl Collect {
    /// `acc`: a fresh accumulator for the job's query (no units of its own).
    pub fn new(job: JobBinding, acc: Accumulator) -> Result<Collect, ShardError> {
        let plan = Plan::new(job.shards)?;
        Ok(Collect {
            job_digest: job.digest(),
            seen: vec![false; usize::from(job.shards)],
            job,
            plan,
            acc: Some(acc),
            failed: None,
        })
    }

    /// The padded report that arrived on shard `channel`'s channel. After the first error
    /// every later call returns that error again.
    pub fn accept(&mut self, channel: u16, bytes: &[u8]) -> Result<(), ShardError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.check_and_merge(channel, bytes);
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        r
    }

    /// Record a failure seen outside a report (a channel that broke, a missed deadline).
    pub fn fail(&mut self, e: ShardError) {
        self.acc = None;
        self.failed.get_or_insert(e);
    }

    fn check_and_merge(&mut self, channel: u16, bytes: &[u8]) -> Result<(), ShardError> {
        let assigned = self.plan.range(channel)?;
        let report = Report::from_padded(bytes, self.job.report_size)
            .map_err(|source| ShardError::Malformed { shard: channel, source })?;
        let p: Partial = match report {
            Report::Failed { job, shard } => {
                return Err(if job != self.job_digest {
                    ShardError::Replayed { shard: channel }
                } else if shard != channel {
                    ShardError::WrongShard { channel, claimed: shard }
                } else {
                    ShardError::ShardFailed { shard }
                });
            }
            Report::Partial(p) => *p,
        };
        // The job digest names the job, query, dataset, shard count and this run's fresh
        // round: a report of any other run is a replay.
        if p.job != self.job_digest {
            return Err(ShardError::Replayed { shard: channel });
        }
        if p.shard != channel {
            return Err(ShardError::WrongShard { channel, claimed: p.shard });
        }
        let seen = &mut self.seen[usize::from(channel)];
        if *seen {
            return Err(ShardError::Duplicate { shard: channel });
        }
        *seen = true;
        if p.range != assigned {
            return Err(ShardError::WrongRange { shard: channel });
        }
        check_units(&p, channel)?;
        let acc = self.acc.take().ok_or(ShardError::Duplicate { shard: channel })?;
        self.acc = Some(acc.merge(&p.aggregates).map_err(|source| ShardError::Aggregates { shard: channel, source })?);
        Ok(())
    }

    /// The merged accumulator, only when every shard's report arrived and passed.
    pub fn finish(self) -> Result<Accumulator, ShardError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let missing: Vec<u16> = (0..self.job.shards).filter(|&i| !self.seen[usize::from(i)]).collect();
        if !missing.is_empty() {
            return Err(ShardError::Missing(missing));
        }
        self.acc.ok_or(ShardError::Missing(Vec::new()))
    }
}

/// The unit count against the aggregates and the first and last tokens against the range.
/// Units are read in token order, so units between the first and the last are in range too.
fn check_units(p: &Partial, shard: u16) -> Result<(), ShardError> {
    let count = |why| ShardError::UnitCount { shard, why };
    if p.aggregates.units() != Some(p.units) {
        return Err(count("the count differs from the units the aggregates were built from"));
    }
    match (p.units, &p.first_unit, &p.last_unit) {
        (0, None, None) => Ok(()),
        (0, _, _) | (_, None, _) | (_, _, None) => Err(count("units without a first and last token, or the reverse")),
        (n, Some(first), Some(last)) => {
            if !p.range.contains(first) || !p.range.contains(last) {
                return Err(ShardError::UnitsOutsideRange { shard });
            }
            match (n, first.cmp(last)) {
                (1, std::cmp::Ordering::Equal) => Ok(()),
                (1, _) => Err(count("one unit with two tokens")),
                (_, std::cmp::Ordering::Less) => Ok(()),
                _ => Err(count("several units, but the first token is not below the last")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Partial;
    use protocol::job::{OutputSpec, QuerySpec};
    use protocol::policy::{ColumnPolicy, ColumnRole, Decimal, Policy, SandboxLimits, Timing};
    use protocol::table::{Column, ColumnData, RecordBatch, TOKEN_LEN};
    use protocol::Bytes;

    const SIZE: u32 = 1 << 16;

    fn policy() -> Policy {
        Policy {
            population: "p".into(),
            min_group_size: 1,
            max_rows_per_unit: 2,
            max_epsilon_per_job: Decimal::literal("10"),
            timing: Timing::nominal(1000),
            sandbox: SandboxLimits { fuel_per_unit: 1, memory_limit_bytes: 1, max_module_bytes: 1 },
            ..Policy::new(
                vec![0; 32],
                Digest::default(),
                "unit",
                vec![
                    ColumnPolicy::new("unit", "token", vec![]),
                    ColumnPolicy::new("s", "f64", vec![ColumnRole::Input]),
                ],
            )
        }
    }

    fn spec() -> QuerySpec {
        QuerySpec {
            job_id: "j".into(),
            collaborator: "c".into(),
            dataset_digest: Digest::default(),
            module_hash: Digest::default(),
            inputs: vec!["s".into()],
            outputs: vec![
                OutputSpec::histogram("h", vec![0.0, 0.25, 0.5, 0.75, 1.0], "0.5"),
                OutputSpec::Count {
                    name: "n".into(),
                    group_by: protocol::job::GroupBy(vec![]),
                    noise: protocol::job::Noise::Laplace,
                    epsilon: Decimal::literal("0.5"),
                },
            ],
            delta: None,
            deadline_ms: 1000,
            training: None,
        }
    }

    fn acc() -> Accumulator {
        Accumulator::new(&spec(), &policy(), &["score".to_string()]).unwrap()
    }

    fn job() -> JobBinding {
        JobBinding {
            job_id: "j".into(),
            query_digest: spec().digest(),
            dataset_digest: Digest::default(),
            shards: 3,
            round: Bytes(vec![1; 32]),
            report_size: SIZE,
            reply_after_ms: 1000,
        }
    }

    /// Unit i: a pseudorandom token, one or two rows with scores from i.
    fn unit(i: u32) -> ([u8; TOKEN_LEN], RecordBatch, Vec<f64>) {
        let token = Digest::of(&i.to_be_bytes()).0;
        let rows = 1 + (i % 2) as usize;
        let s: Vec<f64> = (0..rows).map(|r| ((i as usize * 13 + r * 7) % 100) as f64 / 100.0).collect();
        let b = RecordBatch::new(vec![Column { name: "s".into(), data: ColumnData::F64(s.clone()) }]).unwrap();
        (token, b, s)
    }

    /// Shard `shard`'s honest report for `job` over units 0..300.
    fn honest(job: &JobBinding, shard: u16) -> Partial {
        let plan = Plan::new(job.shards).unwrap();
        let mut units: Vec<_> = (0..300).map(unit).filter(|(t, _, _)| plan.shard_of(t) == shard).collect();
        units.sort_by_key(|u| u.0);
        let mut a = acc();
        for (_, b, s) in &units {
            assert!(a.add_unit(b, s));
        }
        Partial {
            job: job.digest(),
            shard,
            range: plan.range(shard).unwrap(),
            units: units.len() as u64,
            first_unit: units.first().map(|u| u.0),
            last_unit: units.last().map(|u| u.0),
            aggregates: a.exact_aggregates(),
        }
    }

    fn pad(p: Partial) -> Vec<u8> {
        Report::Partial(Box::new(p)).to_padded(SIZE).unwrap()
    }

    /// Feed shard `liar`'s report edited by `edit`, the others honest.
    fn with_liar(liar: u16, mut edit: impl FnMut(&mut Partial)) -> ShardError {
        let j = job();
        let mut c = Collect::new(j.clone(), acc()).unwrap();
        for s in 0..j.shards {
            let mut p = honest(&j, s);
            if s == liar {
                edit(&mut p);
            }
            if let Err(e) = c.accept(s, &pad(p)) {
                assert!(c.finish().is_err(), "nothing finishes after a failure");
                return e;
            }
        }
        c.finish().err().expect("the lie is caught")
    }

    #[test]
    fn honest_shards_merge_to_exactly_the_single_enclave_release() {
        let j = job();
        let mut single = acc();
        let mut all: Vec<_> = (0..300).map(unit).collect();
        all.sort_by_key(|u| u.0);
        for (_, b, s) in &all {
            single.add_unit(b, s);
        }
        let want = single.finish_dp(&mut dp::seeded_rng([3; 32])).unwrap().into_outputs();
        // Reports arrive in any order.
        let mut c = Collect::new(j.clone(), acc()).unwrap();
        for s in [2, 0, 1] {
            c.accept(s, &pad(honest(&j, s))).unwrap();
        }
        let got = c.finish().unwrap().finish_dp(&mut dp::seeded_rng([3; 32])).unwrap().into_outputs();
        assert_eq!(got, want);
    }

    #[test]
    fn a_shard_that_lies_about_its_units_is_caught() {
        let plan = Plan::new(3).unwrap();
        let e = with_liar(1, |p| p.range = plan.range(2).unwrap());
        assert_eq!(e, ShardError::WrongRange { shard: 1 });
        let e = with_liar(1, |p| p.range = UnitRangeExt::widened(p.range));
        assert_eq!(e, ShardError::WrongRange { shard: 1 });
        // Units of shard 2 claimed by shard 1 (an overlap).
        let e = with_liar(1, |p| p.last_unit = honest(&job(), 2).last_unit);
        assert_eq!(e, ShardError::UnitsOutsideRange { shard: 1 });
        let e = with_liar(0, |p| p.units += 1);
        assert_eq!(e.code(), "unit_count_mismatch");
        let e = with_liar(0, |p| p.first_unit = None);
        assert_eq!(e.code(), "unit_count_mismatch");
        // Aggregates of more units than it says it read (count and aggregates both edited).
        let e = with_liar(2, |p| p.aggregates = honest(&job(), 0).aggregates.clone());
        assert_eq!(e.code(), "unit_count_mismatch");
    }

    #[test]
    fn replayed_misrouted_and_duplicate_reports_are_caught() {
        let earlier = JobBinding { round: Bytes(vec![2; 32]), ..job() };
        let e = with_liar(0, |p| *p = honest(&earlier, 0));
        assert_eq!(e, ShardError::Replayed { shard: 0 });
        let other_job = JobBinding { job_id: "other".into(), ..job() };
        let e = with_liar(2, |p| *p = honest(&other_job, 2));
        assert_eq!(e, ShardError::Replayed { shard: 2 });
        let e = with_liar(1, |p| *p = honest(&job(), 0));
        assert_eq!(e, ShardError::WrongShard { channel: 1, claimed: 0 });
        let j = job();
        let mut c = Collect::new(j.clone(), acc()).unwrap();
        c.accept(0, &pad(honest(&j, 0))).unwrap();
        assert_eq!(c.accept(0, &pad(honest(&j, 0))), Err(ShardError::Duplicate { shard: 0 }));
    }

    #[test]
    fn a_missing_failed_or_lost_shard_fails_the_job() {
        let j = job();
        let mut c = Collect::new(j.clone(), acc()).unwrap();
        c.accept(0, &pad(honest(&j, 0))).unwrap();
        c.accept(2, &pad(honest(&j, 2))).unwrap();
        assert_eq!(c.finish().err(), Some(ShardError::Missing(vec![1])));

        let mut c = Collect::new(j.clone(), acc()).unwrap();
        let failed = Report::Failed { job: j.digest(), shard: 1 }.to_padded(SIZE).unwrap();
        assert_eq!(c.accept(1, &failed), Err(ShardError::ShardFailed { shard: 1 }));
        assert_eq!(c.accept(0, &pad(honest(&j, 0))), Err(ShardError::ShardFailed { shard: 1 }));

        let mut c = Collect::new(j.clone(), acc()).unwrap();
        c.accept(0, &pad(honest(&j, 0))).unwrap();
        c.fail(ShardError::Lost { shard: 1, why: "closed".into() });
        c.accept(2, &pad(honest(&j, 2))).unwrap_err();
        assert_eq!(c.finish().err().map(|e| e.code()), Some("shard_lost"));

        let mut c = Collect::new(j, acc()).unwrap();
        assert!(matches!(c.accept(0, b"short"), Err(ShardError::Malformed { shard: 0, .. })));
    }

    trait UnitRangeExt {
        fn widened(self) -> crate::UnitRange;
    }
    impl UnitRangeExt for crate::UnitRange {
        fn widened(self) -> crate::UnitRange {
            crate::UnitRange { first: self.first.saturating_sub(1), last: self.last }
        }
    }
}
