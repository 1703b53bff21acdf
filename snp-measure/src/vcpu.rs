//! The vCPU signature (CPUID Fn0000_0001_EAX) QEMU puts in RDX at reset, which the VMSA
//! measures.

use crate::Error;

/// A CPUID family/model/stepping signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuSignature(pub u32);

/// QEMU's EPYC models and their family, model, stepping.
const TYPES: &[(&str, u32, u32, u32)] = &[
    ("EPYC", 23, 1, 2),
    ("EPYC-v1", 23, 1, 2),
    ("EPYC-v2", 23, 1, 2),
    ("EPYC-IBPB", 23, 1, 2),
    ("EPYC-v3", 23, 1, 2),
    ("EPYC-v4", 23, 1, 2),
    ("EPYC-Rome", 23, 49, 0),
    ("EPYC-Rome-v1", 23, 49, 0),
    ("EPYC-Rome-v2", 23, 49, 0),
    ("EPYC-Rome-v3", 23, 49, 0),
    ("EPYC-Milan", 25, 1, 1),
    ("EPYC-Milan-v1", 25, 1, 1),
    ("EPYC-Milan-v2", 25, 1, 1),
    ("EPYC-Genoa", 25, 17, 0),
    ("EPYC-Genoa-v1", 25, 17, 0),
    ("EPYC-Turin", 26, 0, 0),
];

/// The table's entry for `name`: its `'static` name and its signature.
fn lookup(name: &str) -> Result<(&'static str, VcpuSignature), Error> {
    TYPES
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|&(n, f, m, s)| (n, VcpuSignature::from_family_model_stepping(f, m, s)))
        .ok_or_else(|| Error::UnknownVcpuType {
            name: name.to_string(),
            known: TYPES.iter().map(|(n, ..)| *n).collect::<Vec<_>>().join(", "),
        })
}

impl VcpuSignature {
    /// Encodes family, model and stepping as CPUID does (AMD pub. 25481): families above
    /// 0xf put the excess in the extended-family field.
    pub fn from_family_model_stepping(family: u32, model: u32, stepping: u32) -> VcpuSignature {
        let (family_low, family_high) = if family > 0xf { (0xf, (family - 0xf) & 0xff) } else { (family, 0) };
        VcpuSignature(
            (family_high << 20)
                | (((model >> 4) & 0xf) << 16)
                | (family_low << 8)
                | ((model & 0xf) << 4)
                | (stepping & 0xf),
        )
    }

    /// The signature of a QEMU vCPU type name such as `EPYC-v4` or `EPYC-Milan`.
    pub fn from_type(name: &str) -> Result<VcpuSignature, Error> {
        lookup(name).map(|(_, sig)| sig)
    }

    /// Every vCPU type name `from_type` accepts.
    pub fn type_names() -> impl Iterator<Item = &'static str> {
        TYPES.iter().map(|(n, ..)| *n)
    }
}

/// A QEMU vCPU type name this crate knows (`-cpu` on the launch, `--vcpu-type` on the
/// measurement), with its signature: one value, so the two cannot name different CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuType {
    name: &'static str,
    signature: VcpuSignature,
}

impl VcpuType {
    pub fn new(name: &str) -> Result<VcpuType, Error> {
        let (name, signature) = lookup(name)?;
        Ok(VcpuType { name, signature })
    }

    /// The name as QEMU's `-cpu` takes it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn signature(&self) -> VcpuSignature {
        self.signature
    }
}
