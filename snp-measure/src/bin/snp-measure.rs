//! `snp-measure`: print the expected SEV-SNP launch measurement (hex), with the same
//! arguments as `sev-snp-measure --mode snp`. Reads the files; the library does the rest.
//!
//! With `--write-expectations FILE --min-tcb … --max-vmpl N [--guest-policy 0x…]` it also
//! writes the owner's `MEASUREMENT.json` (what `cleanroom … --expect-snp FILE` reads). The
//! minimum TCB and maximum VMPL are the owner's choice and have no defaults.

use std::process::ExitCode;

use snp_measure::{
    launch_digest, to_hex, Expectations, GuestPolicy, KernelHashes, LaunchConfig, MinTcb, VcpuSignature, VmmType,
    DEFAULT_GUEST_FEATURES,
};

const USAGE: &str = "usage: snp-measure --ovmf FILE --vcpus N --vcpu-type TYPE [--vmm-type QEMU|ec2|gce] \
[--guest-features 0xN] [--kernel FILE [--initrd FILE] [--append CMDLINE]] \
[--write-expectations MEASUREMENT.json --min-tcb bootloader=N,tee=N,snp=N,microcode=N[,fmc=N] --max-vmpl N \
[--guest-policy 0x30000]]";

#[derive(Default)]
struct Args {
    ovmf: Option<String>,
    vcpus: Option<String>,
    vcpu_type: Option<String>,
    vmm_type: Option<String>,
    guest_features: Option<String>,
    kernel: Option<String>,
    initrd: Option<String>,
    append: Option<String>,
    write_expectations: Option<String>,
    min_tcb: Option<String>,
    max_vmpl: Option<String>,
    guest_policy: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let slot = match name.as_str() {
            "--ovmf" => &mut a.ovmf,
            "--vcpus" => &mut a.vcpus,
            "--vcpu-type" => &mut a.vcpu_type,
            "--vmm-type" => &mut a.vmm_type,
            "--guest-features" => &mut a.guest_features,
            "--kernel" => &mut a.kernel,
            "--initrd" => &mut a.initrd,
            "--append" => &mut a.append,
            "--write-expectations" => &mut a.write_expectations,
            "--min-tcb" => &mut a.min_tcb,
            "--max-vmpl" => &mut a.max_vmpl,
            "--guest-policy" => &mut a.guest_policy,
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ => return Err(format!("unknown argument {flag:?}; {USAGE}")),
        };
        let value = match inline {
            Some(v) => v,
            None => it.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        *slot = Some(value);
    }
    Ok(a)
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// The owner's reference, if asked for: checked before anything is measured, so a typo in
/// `--min-tcb` costs nothing and writes nothing.
struct ExpectationsRequest {
    path: String,
    min_tcb: MinTcb,
    max_vmpl: u32,
    policy: GuestPolicy,
}

fn expectations_request(a: &Args) -> Result<Option<ExpectationsRequest>, String> {
    let Some(path) = a.write_expectations.clone() else {
        if a.min_tcb.is_some() || a.max_vmpl.is_some() || a.guest_policy.is_some() {
            return Err("--min-tcb, --max-vmpl and --guest-policy go with --write-expectations".to_string());
        }
        return Ok(None);
    };
    let min_tcb = a.min_tcb.as_deref().ok_or("--write-expectations needs --min-tcb (the owner's choice)")?;
    let max_vmpl = a.max_vmpl.as_deref().ok_or("--write-expectations needs --max-vmpl (the owner's choice)")?;
    let max_vmpl: u32 = max_vmpl.parse().map_err(|_| format!("--max-vmpl {max_vmpl:?} is not a number"))?;
    let policy = match &a.guest_policy {
        Some(p) => GuestPolicy::parse(p).map_err(|e| e.to_string())?,
        None => GuestPolicy::DEFAULT,
    };
    // Range check now, before measuring.
    Expectations::new([0; 48], MinTcb::default(), max_vmpl, policy).map_err(|e| e.to_string())?;
    Ok(Some(ExpectationsRequest {
        path,
        min_tcb: min_tcb.parse().map_err(|e: snp_measure::Error| e.to_string())?,
        max_vmpl,
        policy,
    }))
}

fn run() -> Result<String, String> {
    let a = parse_args()?;
    let request = expectations_request(&a)?;
    let ovmf = a.ovmf.ok_or(format!("--ovmf is required; {USAGE}"))?;
    let vcpus = a.vcpus.ok_or(format!("--vcpus is required; {USAGE}"))?;
    let vcpus: u32 = vcpus.parse().map_err(|_| format!("--vcpus {vcpus:?} is not a number"))?;
    let vcpu_type = a.vcpu_type.ok_or(format!("--vcpu-type is required; {USAGE}"))?;
    let guest_features = match a.guest_features {
        None => DEFAULT_GUEST_FEATURES,
        // Like the reference: `0x` means hex, otherwise decimal.
        Some(s) => match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => s.parse(),
        }
        .map_err(|_| format!("--guest-features {s:?} is not a number"))?,
    };
    if a.kernel.is_none() && (a.initrd.is_some() || a.append.is_some()) {
        return Err("--initrd and --append need --kernel".to_string());
    }
    let kernel_hashes = match &a.kernel {
        Some(k) => {
            let initrd = a.initrd.as_deref().map(read).transpose()?;
            Some(KernelHashes::new(&read(k)?, initrd.as_deref(), a.append.as_deref()))
        }
        None => None,
    };
    let firmware = read(&ovmf)?;
    let config = LaunchConfig {
        firmware: &firmware,
        kernel_hashes,
        vcpus,
        vcpu_sig: VcpuSignature::from_type(&vcpu_type).map_err(|e| e.to_string())?,
        guest_features,
        vmm: a.vmm_type.as_deref().unwrap_or("QEMU").parse::<VmmType>().map_err(|e| e.to_string())?,
    };
    let digest = launch_digest(&config).map_err(|e| format!("{ovmf}: {e}"))?;
    if let Some(r) = request {
        if config.kernel_hashes.is_none() {
            return Err("--write-expectations needs --kernel: without kernel hashes the measurement does not cover \
                        the enclave's kernel, initrd or command line"
                .to_string());
        }
        let e = Expectations::new(digest, r.min_tcb, r.max_vmpl, r.policy).map_err(|e| e.to_string())?;
        std::fs::write(&r.path, e.to_json()).map_err(|e| format!("cannot write {}: {e}", r.path))?;
    }
    Ok(to_hex(&digest))
}

fn main() -> ExitCode {
    match run() {
        Ok(hex) => {
            println!("{hex}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("snp-measure: {e}");
            ExitCode::FAILURE
        }
    }
}
