//! The owner's `MEASUREMENT.json`: what `cleanroom … --expect-snp FILE` reads
//! (`attestation_verifier::SnpReference::from_json`), written from a measurement this crate
//! computed and from choices only the owner can make.
//!
//! ```json
//! {
//!   "measurement": "<96 hex digits>",
//!   "min_tcb": { "bootloader": 4, "tee": 0, "snp": 22, "microcode": 213, "fmc": 0 },
//!   "max_vmpl": 0,
//!   "policy": { "debug_allowed": false, "migration_agent_allowed": false, "smt_allowed": true }
//! }
//! ```
//!
//! The minimum TCB is the owner's security decision (which firmware it still trusts after
//! AMD's security bulletins), so it is always an input, never a default or a guess. The
//! policy rules never allow debugging or a migration agent; SMT is allowed exactly when the
//! guest policy the launch uses allows it, or the owner would refuse its own launch.
//!
//! Pure: the caller writes the text where it wants.

use std::str::FromStr;

use crate::{Error, GuestPolicy, MEASUREMENT_LEN};

/// The lowest REPORTED_TCB the owner accepts, component by component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MinTcb {
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
    /// Turin and later only; 0 elsewhere.
    pub fmc: u8,
}

impl FromStr for MinTcb {
    type Err = Error;

    /// `bootloader=4,tee=0,snp=22,microcode=213` (all four required, each once), with an
    /// optional `fmc=N`.
    fn from_str(text: &str) -> Result<MinTcb, Error> {
        let bad = |reason: String| Error::MinTcbSyntax { text: text.to_string(), reason };
        let mut slots: [(&str, Option<u8>); 5] =
            [("bootloader", None), ("tee", None), ("snp", None), ("microcode", None), ("fmc", None)];
        for part in text.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(|| bad(format!("{part:?} is not KEY=N")))?;
            let key = key.trim();
            let slot =
                slots.iter_mut().find(|(k, _)| *k == key).ok_or_else(|| bad(format!("unknown component {key:?}")))?;
            if slot.1.is_some() {
                return Err(bad(format!("{key} given twice")));
            }
            let n: u8 = value.trim().parse().map_err(|_| bad(format!("{key}={value:?} is not a number 0-255")))?;
            slot.1 = Some(n);
        }
        let required = |i: usize| slots[i].1.ok_or_else(|| bad(format!("{} is missing", slots[i].0)));
        Ok(MinTcb {
            bootloader: required(0)?,
            tee: required(1)?,
            snp: required(2)?,
            microcode: required(3)?,
            fmc: slots[4].1.unwrap_or(0),
        })
    }
}

/// One owner reference for one launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    pub measurement: [u8; MEASUREMENT_LEN],
    pub min_tcb: MinTcb,
    max_vmpl: u32,
    /// The guest policy the launch uses (decides `smt_allowed`).
    pub policy: GuestPolicy,
}

impl Expectations {
    pub fn new(
        measurement: [u8; MEASUREMENT_LEN],
        min_tcb: MinTcb,
        max_vmpl: u32,
        policy: GuestPolicy,
    ) -> Result<Expectations, Error> {
        if max_vmpl > 3 {
            return Err(Error::VmplOutOfRange(max_vmpl));
        }
        Ok(Expectations { measurement, min_tcb, max_vmpl, policy })
    }

    pub fn max_vmpl(&self) -> u32 {
        self.max_vmpl
    }

    /// The file's text. Only hex digits, numbers and fixed keys go in, so nothing needs
    /// escaping.
    pub fn to_json(&self) -> String {
        let t = self.min_tcb;
        format!(
            "{{\n  \"measurement\": \"{}\",\n  \"min_tcb\": {{ \"bootloader\": {}, \"tee\": {}, \"snp\": {}, \"microcode\": {}, \"fmc\": {} }},\n  \"max_vmpl\": {},\n  \"policy\": {{ \"debug_allowed\": false, \"migration_agent_allowed\": false, \"smt_allowed\": {} }}\n}}\n",
            hex::encode(self.measurement),
            t.bootloader,
            t.tee,
            t.snp,
            t.microcode,
            t.fmc,
            self.max_vmpl,
            self.policy.smt_allowed()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_tcb_needs_all_four_once() {
        let t: MinTcb = "bootloader=4,tee=0,snp=22,microcode=213".parse().unwrap();
        assert_eq!(t, MinTcb { bootloader: 4, tee: 0, snp: 22, microcode: 213, fmc: 0 });
        let t: MinTcb = "microcode=1, snp=2 ,tee=3,bootloader=4,fmc=5".parse().unwrap();
        assert_eq!(t, MinTcb { bootloader: 4, tee: 3, snp: 2, microcode: 1, fmc: 5 });
        for (bad, says) in [
            ("bootloader=4,tee=0,snp=22", "microcode is missing"),
            ("bootloader=4,tee=0,snp=22,microcode=213,snp=1", "snp given twice"),
            ("bootloader=4,tee=0,snp=22,microcode=256", "not a number"),
            ("bootloader=4,tee=0,snp=22,microcode=-1", "not a number"),
            ("bootloader=4,tee=0,snp=22,ucode=1", "unknown component"),
            ("4,0,22,213", "is not KEY=N"),
            ("", "is not KEY=N"),
        ] {
            let e = bad.parse::<MinTcb>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn vmpl_above_three_is_refused() {
        let ok = Expectations::new([0; 48], MinTcb::default(), 3, GuestPolicy::DEFAULT);
        assert!(ok.is_ok());
        assert_eq!(
            Expectations::new([0; 48], MinTcb::default(), 4, GuestPolicy::DEFAULT),
            Err(Error::VmplOutOfRange(4))
        );
    }

    #[test]
    fn smt_allowed_follows_the_guest_policy() {
        let no_smt = GuestPolicy::parse("0x20000").unwrap();
        let e = Expectations::new([0xab; 48], MinTcb::default(), 0, no_smt).unwrap().to_json();
        assert!(e.contains("\"smt_allowed\": false"), "{e}");
        assert!(e.contains(&"ab".repeat(48)), "{e}");
        let e = Expectations::new([0; 48], MinTcb::default(), 0, GuestPolicy::DEFAULT).unwrap().to_json();
        assert!(e.contains("\"smt_allowed\": true"), "{e}");
        assert!(e.contains("\"debug_allowed\": false"), "{e}");
    }
}
