//! `compare`: a DP result beside the owner's own exact check (on the owner's machine only).

use crate::files::{load_result_file, read};
use crate::local_run::OwnerCheck;
use crate::Error;
use protocol::result::{JobResult, OutputRelease, ReleasedValue};
use std::path::Path;

pub struct Comparison {
    /// What was released to the provider.
    pub result: JobResult,
    /// The owner's exact figures, never released.
    pub truth: OwnerCheck,
}

impl Comparison {
    /// The exact value behind released value `v` of output `name`, among `outputs`.
    pub fn exact(outputs: &[OutputRelease], name: &str, v: &ReleasedValue) -> Option<f64> {
        outputs
            .iter()
            .find(|x| x.name == name)
            .and_then(|e| e.values.iter().find(|x| x.key == v.key && x.stat == v.stat))
            .map(|x| x.value)
    }
}

pub fn load(result: &Path, truth: &Path) -> Result<Comparison, Error> {
    let result: JobResult = load_result_file(result)?.result.decode()?;
    let truth = serde_json::from_slice(&read(truth)?)
        .map_err(|e| Error::Parse { path: truth.to_path_buf(), why: format!("not an owner-check file: {e}") })?;
    Ok(Comparison { result, truth })
}
