//! `eif-build`: build, describe and extract Nitro Enclave Image Files, and assemble a
//! deterministic initramfs. Run `eif-build --help`.

use clap::{Args, Parser, Subcommand};
use eif_build::cpio::CpioBuilder;
use eif_build::describe::describe;
use eif_build::metadata::{rfc3339_utc, Metadata};
use eif_build::{build, Arch, Eif, HashAlgorithm, ImageSpec, SigningMaterial};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(name = "eif-build", version, about = "Reproducible Nitro Enclave images (EIF) and their PCRs")]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an EIF and print its measurements as `nitro-cli build-enclave` does.
    Build(Box<BuildArgs>),
    /// Check an EIF (header, CRC, sections, signature) and print it with recomputed PCRs.
    Describe {
        file: PathBuf,
        /// PCR hash algorithm.
        #[arg(long = "pcr-algo", alias = "algo", default_value = "sha384")]
        algo: HashAlgorithm,
    },
    /// Write an EIF's kernel, cmdline, ramdisks (and metadata) to a directory.
    Extract {
        file: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a deterministic newc cpio archive (initramfs) from files.
    Initramfs(InitramfsArgs),
}

#[derive(Args)]
struct BuildArgs {
    /// Kernel image (bzImage on x86_64).
    #[arg(long)]
    kernel: PathBuf,
    /// Kernel command line (stored without NUL or newline).
    #[arg(long)]
    cmdline: String,
    /// Ramdisk (cpio); repeat for more, in order. The first is measured into PCR1, the
    /// rest into PCR2.
    #[arg(long = "ramdisk", required = true)]
    ramdisks: Vec<PathBuf>,
    /// PEM certificate (EC P-384) to sign PCR0 with; its DER is measured into PCR8.
    #[arg(long, requires = "private_key")]
    signing_certificate: Option<PathBuf>,
    /// PEM private key (PKCS#8 or SEC1, EC P-384) matching the signing certificate.
    #[arg(long, requires = "signing_certificate")]
    private_key: Option<PathBuf>,
    /// JSON file stored as CustomMetadata (keys sorted, compact).
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// ImageName (default `cleanroom`).
    #[arg(long, default_value = "cleanroom")]
    name: String,
    /// ImageVersion (default: the image name, as eif_build 0.3.1 writes it).
    #[arg(long)]
    image_version: Option<String>,
    /// BuildTime (default: SOURCE_DATE_EPOCH, or the Unix epoch, as RFC 3339).
    #[arg(long)]
    build_time: Option<String>,
    #[arg(long, default_value = "eif-build")]
    build_tool: String,
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    build_tool_version: String,
    /// OperatingSystem metadata field.
    #[arg(long, default_value = "OS")]
    img_os: String,
    /// KernelVersion metadata field.
    #[arg(long, default_value = "kernel")]
    img_kernel: String,
    /// x86_64 or aarch64 (header flag only).
    #[arg(long, default_value = "x86_64", value_parser = ["x86_64", "aarch64"])]
    arch: String,
    /// PCR hash algorithm (Nitro uses sha384).
    #[arg(long = "pcr-algo", alias = "algo", default_value = "sha384")]
    algo: HashAlgorithm,
    /// Where to write the EIF.
    #[arg(long)]
    output: PathBuf,
}

#[derive(Args)]
struct InitramfsArgs {
    /// Output cpio file.
    #[arg(long)]
    out: PathBuf,
    /// DEST=SRC: archive path and host file. Mode 0644, except `init` which gets 0755.
    #[arg(long = "file", value_name = "DEST=SRC")]
    files: Vec<String>,
    /// DEST=SRC: like --file, mode 0755.
    #[arg(long = "exec", value_name = "DEST=SRC")]
    execs: Vec<String>,
    /// An empty directory (mode 0755). Parents of files are added automatically.
    #[arg(long = "dir", value_name = "DEST")]
    dirs: Vec<String>,
    /// mtime of every entry (default: SOURCE_DATE_EPOCH, or 0).
    #[arg(long)]
    mtime: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Build(#[from] eif_build::BuildError),
    #[error("{path}: not a valid EIF: {source}")]
    Read { path: PathBuf, source: eif_build::ReadError },
    #[error(transparent)]
    Sign(#[from] eif_build::SignError),
    #[error(transparent)]
    Cpio(#[from] eif_build::cpio::CpioError),
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Io { path: path.to_path_buf(), source })
}

/// Writes via a temporary file in the same directory and renames it into place.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), CliError> {
    let io = |source| CliError::Io { path: path.to_path_buf(), source };
    let name = path.file_name().ok_or_else(|| CliError::Usage(format!("{}: not a file path", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, data).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

fn source_date_epoch() -> Result<Option<u64>, CliError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| CliError::Usage(format!("SOURCE_DATE_EPOCH={s:?} is not a non-negative integer"))),
        _ => Ok(None),
    }
}

fn print_json<T: Serialize>(v: &T) {
    // Serializing our own plain structs cannot fail.
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

#[derive(Serialize)]
struct BuildOutput {
    #[serde(rename = "Measurements")]
    measurements: eif_build::pcr::MeasurementsJson,
}

fn cmd_build(a: BuildArgs) -> Result<(), CliError> {
    let kernel = read(&a.kernel)?;
    let ramdisk_bytes = a.ramdisks.iter().map(|p| read(p)).collect::<Result<Vec<_>, _>>()?;
    let signing = match (&a.signing_certificate, &a.private_key) {
        (Some(c), Some(k)) => {
            let cert = read(c)?;
            let key = Zeroizing::new(read(k)?);
            Some(SigningMaterial::from_pem(&cert, &key)?)
        }
        _ => None,
    };
    let custom = match &a.metadata {
        Some(p) => Some(
            serde_json::from_slice::<serde_json::Value>(&read(p)?)
                .map_err(|e| CliError::Usage(format!("{}: invalid JSON: {e}", p.display())))?,
        ),
        None => None,
    };
    let build_time = match a.build_time {
        Some(t) => t,
        None => rfc3339_utc(source_date_epoch()?.unwrap_or(0)),
    };
    let mut metadata = Metadata::new(build_time);
    metadata.image_version = a.image_version.unwrap_or_else(|| a.name.clone());
    metadata.image_name = a.name;
    metadata.build_tool = a.build_tool;
    metadata.build_tool_version = a.build_tool_version;
    metadata.operating_system = a.img_os;
    metadata.kernel_version = a.img_kernel;
    metadata.custom = custom;

    let spec = ImageSpec {
        kernel: &kernel,
        cmdline: a.cmdline.as_bytes(),
        ramdisks: ramdisk_bytes.iter().map(Vec::as_slice).collect(),
        metadata,
        arch: if a.arch == "aarch64" { Arch::Aarch64 } else { Arch::X86_64 },
        algorithm: a.algo,
        signing: signing.as_ref(),
    };
    let image = build(&spec)?;
    write_atomic(&a.output, &image.bytes)?;
    eprintln!("Output file: {}", a.output.display());
    print_json(&BuildOutput { measurements: image.measurements.to_json() });
    Ok(())
}

fn cmd_describe(file: &Path, algo: HashAlgorithm) -> Result<(), CliError> {
    let bytes = read(file)?;
    let eif = Eif::parse(&bytes, algo).map_err(|source| CliError::Read { path: file.to_path_buf(), source })?;
    print_json(&describe(&eif));
    Ok(())
}

fn cmd_extract(file: &Path, out: &Path) -> Result<(), CliError> {
    let bytes = read(file)?;
    let eif = Eif::parse(&bytes, HashAlgorithm::Sha384)
        .map_err(|source| CliError::Read { path: file.to_path_buf(), source })?;
    std::fs::create_dir_all(out).map_err(|source| CliError::Io { path: out.to_path_buf(), source })?;
    let mut files: Vec<(String, &[u8])> =
        vec![("kernel.bin".into(), eif.kernel()), ("cmdline.txt".into(), eif.cmdline())];
    for (i, rd) in eif.ramdisks().into_iter().enumerate() {
        files.push((format!("rd{i}.bin"), rd));
    }
    if let Some(m) = eif.metadata() {
        files.push(("metadata.json".into(), m));
    }
    for (name, data) in files {
        let p = out.join(&name);
        write_atomic(&p, data)?;
        eprintln!("{} ({} bytes)", p.display(), data.len());
    }
    Ok(())
}

fn split_mapping(s: &str) -> Result<(&str, &str), CliError> {
    s.split_once('=')
        .filter(|(d, s)| !d.is_empty() && !s.is_empty())
        .ok_or_else(|| CliError::Usage(format!("expected DEST=SRC, got {s:?}")))
}

fn cmd_initramfs(a: InitramfsArgs) -> Result<(), CliError> {
    let mut b = CpioBuilder::new();
    for (spec, force_exec) in a.files.iter().map(|s| (s, false)).chain(a.execs.iter().map(|s| (s, true))) {
        let (dest, src) = split_mapping(spec)?;
        let exec = force_exec || dest.trim_start_matches('/') == "init";
        b.add_file(dest, read(Path::new(src))?, exec)?;
    }
    for d in &a.dirs {
        b.add_dir(d)?;
    }
    let mtime = match a.mtime {
        Some(m) => m,
        None => source_date_epoch()?.unwrap_or(0),
    };
    let bytes = b.finish(mtime)?;
    write_atomic(&a.out, &bytes)?;
    eprintln!("{} ({} bytes)", a.out.display(), bytes.len());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Command::Build(a) => cmd_build(*a),
        Command::Describe { file, algo } => cmd_describe(&file, algo),
        Command::Extract { file, out } => cmd_extract(&file, &out),
        Command::Initramfs(a) => cmd_initramfs(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eif-build: error: {e}");
            ExitCode::FAILURE
        }
    }
}
