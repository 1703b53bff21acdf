//! One typed description of an SEV-SNP guest launch, [`SnpGuest`]: the host's launcher
//! builds QEMU's command line from it, and [`SnpGuest::measure`] computes the launch
//! measurement from the same value, so what is measured and what is launched cannot name
//! different files, command lines or CPUs.
//!
//! This is the one module of the crate that reads files (the three the description
//! names); the digest itself stays in the pure [`crate::launch_digest`].
//!
//! Trust: the launcher runs on the untrusted host, so the measurement it prints is for the
//! operator's convenience only. The owner recomputes it from files it built itself
//! (`snp-measure --ovmf … --kernel … --initrd … --append …`, see
//! [`SnpGuest::measure_args`]) and trusts only the report the secure processor signs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::{launch_digest, Error, GuestPolicy, KernelHashes, LaunchConfig, VcpuType, VmmType, MEASUREMENT_LEN};

/// Everything about a kernel-hashes SNP launch that the measurement or the report depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpGuest {
    /// An OVMF built for SEV-SNP with kernel hashes (edk2's `AmdSevX64` platform): QEMU's
    /// `-bios`.
    pub ovmf: PathBuf,
    /// QEMU's `-kernel`.
    pub kernel: PathBuf,
    /// QEMU's `-initrd`.
    pub initrd: PathBuf,
    /// QEMU's `-append`, exactly (measured with its terminating NUL).
    pub append: String,
    /// QEMU's `-smp`: one VMSA per vCPU is measured.
    pub vcpus: u32,
    /// QEMU's `-cpu`: its signature is in every VMSA.
    pub vcpu_type: VcpuType,
    /// `sev-snp-guest,policy=`: not measured, but in every report (the owner checks it).
    pub policy: GuestPolicy,
    /// The SEV_FEATURES the host's KVM puts in each VMSA. Not on QEMU's command line; the
    /// current kernels set only SNPActive ([`crate::DEFAULT_GUEST_FEATURES`]). A host that
    /// enables more (e.g. debug swap) measures differently, and the owner's check says so.
    pub guest_features: u64,
}

/// Why a described launch could not be measured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// One of the described files could not be read.
    #[error("cannot read the {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    /// The command line holds a NUL byte: QEMU would cut it there, and what it measured
    /// would not be what was described.
    #[error("the kernel command line contains a NUL byte")]
    NulInCmdline,
    /// The inputs were read but refused (e.g. an OVMF without SEV metadata).
    #[error("{ovmf}: {source}")]
    Measure { ovmf: PathBuf, source: Error },
}

impl LaunchError {
    /// The measurement error, if the inputs were read but refused.
    pub fn measure_error(&self) -> Option<&Error> {
        match self {
            LaunchError::Measure { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, LaunchError> {
    std::fs::read(path).map_err(|source| LaunchError::Read { what, path: path.to_path_buf(), source })
}

impl SnpGuest {
    /// The launch measurement of this guest under QEMU.
    pub fn measure(&self) -> Result<[u8; MEASUREMENT_LEN], LaunchError> {
        if self.append.contains('\0') {
            return Err(LaunchError::NulInCmdline);
        }
        let firmware = read("OVMF image", &self.ovmf)?;
        let kernel = read("kernel", &self.kernel)?;
        let initrd = read("initrd", &self.initrd)?;
        let config = LaunchConfig {
            firmware: &firmware,
            kernel_hashes: Some(KernelHashes::new(&kernel, Some(&initrd), Some(&self.append))),
            vcpus: self.vcpus,
            vcpu_sig: self.vcpu_type.signature(),
            guest_features: self.guest_features,
            vmm: VmmType::Qemu,
        };
        launch_digest(&config).map_err(|source| LaunchError::Measure { ovmf: self.ovmf.clone(), source })
    }

    /// The arguments of `snp-measure` (and of the reference `sev-snp-measure --mode snp`)
    /// that recompute this measurement, for the owner to run on its own copies of the files.
    pub fn measure_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["--ovmf".into(), self.ovmf.clone().into()];
        a.extend(["--vcpus".into(), self.vcpus.to_string().into()]);
        a.extend(["--vcpu-type".into(), self.vcpu_type.name().into()]);
        a.extend(["--guest-features".into(), format!("{:#x}", self.guest_features).into()]);
        a.extend(["--kernel".into(), self.kernel.clone().into_os_string()]);
        a.extend(["--initrd".into(), self.initrd.clone().into_os_string()]);
        // One argument with `=`, so a command line that starts with `-` stays a value.
        a.push(format!("--append={}", self.append).into());
        a
    }
}
