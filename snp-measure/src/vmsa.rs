//! The initial VMSA (SEV-ES save area) of each vCPU. Its page is measured, so the register
//! values must be exactly those the VMM sets at reset (AMD APM vol. 2, table B-4 layout).

use crate::gctx::PAGE_SIZE;

/// Which hypervisor launches the guest: they differ slightly in the reset register state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmmType {
    #[default]
    Qemu,
    Ec2,
    Gce,
}

impl std::str::FromStr for VmmType {
    type Err = crate::Error;

    /// The names sev-snp-measure's `--vmm-type` takes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "QEMU" => Ok(VmmType::Qemu),
            "ec2" => Ok(VmmType::Ec2),
            "gce" => Ok(VmmType::Gce),
            _ => Err(crate::Error::UnknownVmmType { name: s.to_string() }),
        }
    }
}

/// The bootstrap processor starts at the architectural reset vector.
pub const BSP_EIP: u32 = 0xffff_fff0;

// Byte offsets in the save area: ten 16-byte segment registers, then the rest.
const ES: usize = 0x00;
const CS: usize = 0x10;
const SS: usize = 0x20;
const DS: usize = 0x30;
const FS: usize = 0x40;
const GS: usize = 0x50;
const GDTR: usize = 0x60;
const LDTR: usize = 0x70;
const IDTR: usize = 0x80;
const TR: usize = 0x90;
const EFER: usize = 0xd0;
const CR4: usize = 0x148;
const CR0: usize = 0x158;
const DR7: usize = 0x160;
const DR6: usize = 0x168;
const RFLAGS: usize = 0x170;
const RIP: usize = 0x178;
const G_PAT: usize = 0x268;
const RDX: usize = 0x310;
const SEV_FEATURES: usize = 0x3b0;
const XCR0: usize = 0x3e8;
const MXCSR: usize = 0x408;
const X87_FCW: usize = 0x410;

struct Page([u8; PAGE_SIZE as usize]);

impl Page {
    fn u16(&mut self, at: usize, v: u16) {
        self.0[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, at: usize, v: u64) {
        self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    /// A VMCB segment: selector, attributes, limit, base.
    fn seg(&mut self, at: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
        self.u16(at, selector);
        self.u16(at + 2, attrib);
        self.u32(at + 4, limit);
        self.u64(at + 8, base);
    }
}

/// The VMSA page of a vCPU that starts at `eip` (real mode: CS base is the 64 KiB-aligned
/// part of the address, RIP the rest).
pub fn page(eip: u32, sev_features: u64, vcpu_sig: u32, vmm: VmmType) -> [u8; PAGE_SIZE as usize] {
    // PAT MSR reset value (APM vol. 2, A.3); GCE's hypervisor overwrites it.
    let mut g_pat = 0x0007_0406_0007_0406;
    let (cs_flags, ss_flags, tr_flags, rdx, mxcsr, fcw) = match vmm {
        VmmType::Qemu => (0x9b, 0x93, 0x8b, u64::from(vcpu_sig), 0x1f80, 0x37f),
        // EC2 marks the BSP's code segment not accessed, and reports a fixed signature.
        VmmType::Ec2 => (if eip == BSP_EIP { 0x9a } else { 0x9b }, 0x92, 0x83, 0x600, 0, 0),
        VmmType::Gce => {
            g_pat = 0x0007_0106;
            (0x9b, 0x93, 0x8b, 0x600, 0, 0)
        }
    };
    let mut p = Page([0u8; PAGE_SIZE as usize]);
    p.seg(ES, 0, 0x93, 0xffff, 0);
    p.seg(CS, 0xf000, cs_flags, 0xffff, u64::from(eip & 0xffff_0000));
    p.seg(SS, 0, ss_flags, 0xffff, 0);
    p.seg(DS, 0, 0x93, 0xffff, 0);
    p.seg(FS, 0, 0x93, 0xffff, 0);
    p.seg(GS, 0, 0x93, 0xffff, 0);
    p.seg(GDTR, 0, 0, 0xffff, 0);
    p.seg(LDTR, 0, 0x82, 0xffff, 0);
    p.seg(IDTR, 0, 0, 0xffff, 0);
    p.seg(TR, 0, tr_flags, 0xffff, 0);
    p.u64(EFER, 0x1000); // KVM sets EFER.SVME
    p.u64(CR4, 0x40); // KVM sets CR4.MCE
    p.u64(CR0, 0x10);
    p.u64(DR7, 0x400);
    p.u64(DR6, 0xffff_0ff0);
    p.u64(RFLAGS, 0x2);
    p.u64(RIP, u64::from(eip & 0xffff));
    p.u64(G_PAT, g_pat);
    p.u64(RDX, rdx);
    p.u64(SEV_FEATURES, sev_features);
    p.u64(XCR0, 0x1);
    p.u32(MXCSR, mxcsr);
    p.u16(X87_FCW, fcw);
    p.0
}
