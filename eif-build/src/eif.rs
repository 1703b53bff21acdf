//! The EIF container: writer and reader.
//!
//! Layout (all integers big-endian, no padding):
//! `header(548) | kernel | cmdline | metadata | ramdisk 0 | … | signature (signed only)`,
//! each section a 12-byte header (`u16 type, u16 flags, u64 size`) followed by its payload.
//! The CRC32 (zlib) covers the whole file except the 4 CRC bytes at offset 544.

use crate::metadata::Metadata;
use crate::pcr::{HashAlgorithm, ImageMeasurer, Measurements};
use crate::sign::{self, PcrSignature, SignError, SigningMaterial};

pub const MAGIC: [u8; 4] = *b".eif";
pub const VERSION: u16 = 4;
pub const HEADER_SIZE: usize = 548;
pub const SECTION_HEADER_SIZE: usize = 12;
pub const MAX_SECTIONS: usize = 32;
pub const CRC_OFFSET: usize = 544;
pub const DEFAULT_MEM: u64 = 1 << 30;
pub const DEFAULT_CPUS: u64 = 2;
const OFFSETS_AT: usize = 28;
const SIZES_AT: usize = OFFSETS_AT + 8 * MAX_SECTIONS;
const UNUSED_AT: usize = SIZES_AT + 8 * MAX_SECTIONS;

/// Section types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionType {
    Kernel,
    Cmdline,
    Ramdisk,
    Signature,
    Metadata,
}

impl SectionType {
    pub fn code(self) -> u16 {
        match self {
            SectionType::Kernel => 1,
            SectionType::Cmdline => 2,
            SectionType::Ramdisk => 3,
            SectionType::Signature => 4,
            SectionType::Metadata => 5,
        }
    }

    pub fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1 => SectionType::Kernel,
            2 => SectionType::Cmdline,
            3 => SectionType::Ramdisk,
            4 => SectionType::Signature,
            5 => SectionType::Metadata,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SectionType::Kernel => "Kernel",
            SectionType::Cmdline => "Cmdline",
            SectionType::Ramdisk => "Ramdisk",
            SectionType::Signature => "Signature",
            SectionType::Metadata => "Metadata",
        }
    }
}

/// CPU architecture recorded in the header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arch {
    #[default]
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// Why an image could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("at least one ramdisk is required")]
    NoRamdisk,
    #[error("too many ramdisks: {0} (an EIF has at most {max} sections)", max = MAX_SECTIONS)]
    TooManyRamdisks(usize),
    #[error("the kernel command line contains a NUL byte")]
    CmdlineNul,
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Why a file is not a valid EIF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("file is {0} bytes, shorter than the {HEADER_SIZE}-byte EIF header")]
    TooShort(usize),
    #[error("bad magic {0:02x?} (expected \".eif\")")]
    BadMagic([u8; 4]),
    #[error("unsupported EIF version {0} (supported: 1..={VERSION})")]
    UnsupportedVersion(u16),
    #[error("header declares {0} sections (at most {MAX_SECTIONS})")]
    TooManySections(u16),
    #[error("header declares no sections")]
    NoSections,
    #[error("header table slot {0} is unused but not zero")]
    UnusedSlotNotZero(usize),
    #[error("section {index} starts at offset {offset}, expected {expected} (sections must be contiguous and in table order)")]
    NotContiguous { index: usize, offset: u64, expected: u64 },
    #[error("section {index} header at offset {offset} runs past the end of the {file_len}-byte file")]
    SectionHeaderPastEnd { index: usize, offset: u64, file_len: usize },
    #[error("section {index}: header table says {table} bytes, section header says {section}")]
    SizeMismatch { index: usize, table: u64, section: u64 },
    #[error("section {index}: {size}-byte payload runs past the end of the file ({available} bytes left)")]
    PayloadPastEnd { index: usize, size: u64, available: u64 },
    #[error("section {index} has unknown type {code}")]
    UnknownSectionType { index: usize, code: u16 },
    #[error("section {index} has nonzero flags {flags:#06x}")]
    SectionFlags { index: usize, flags: u16 },
    #[error("{0} bytes after the last section")]
    TrailingData(u64),
    #[error("CRC32 mismatch: header says {stored:#010x}, file hashes to {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("missing {0} section")]
    MissingSection(&'static str),
    #[error("more than one {0} section")]
    DuplicateSection(&'static str),
    #[error("the cmdline section contains a NUL byte")]
    CmdlineNul,
    #[error("invalid signature section: {0}")]
    Signature(#[from] SignError),
}

/// Inputs for one image. Everything is borrowed; the writer copies into one buffer.
#[derive(Debug)]
pub struct ImageSpec<'a> {
    pub kernel: &'a [u8],
    pub cmdline: &'a [u8],
    pub ramdisks: Vec<&'a [u8]>,
    pub metadata: Metadata,
    pub arch: Arch,
    pub algorithm: HashAlgorithm,
    pub signing: Option<&'a SigningMaterial>,
}

/// A written image and its measurements.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub bytes: Vec<u8>,
    pub measurements: Measurements,
}

/// Writes an EIF, measuring PCR0/1/2 as the payloads are appended.
pub fn build(spec: &ImageSpec<'_>) -> Result<BuiltImage, BuildError> {
    if spec.ramdisks.is_empty() {
        return Err(BuildError::NoRamdisk);
    }
    let signed = spec.signing.is_some();
    let num_sections = 3 + spec.ramdisks.len() + usize::from(signed);
    if num_sections > MAX_SECTIONS {
        return Err(BuildError::TooManyRamdisks(spec.ramdisks.len()));
    }
    if spec.cmdline.contains(&0) {
        return Err(BuildError::CmdlineNul);
    }
    let metadata = spec.metadata.to_bytes();

    let total: usize = HEADER_SIZE
        + num_sections * SECTION_HEADER_SIZE
        + spec.kernel.len()
        + spec.cmdline.len()
        + metadata.len()
        + spec.ramdisks.iter().map(|r| r.len()).sum::<usize>();
    let mut out = Vec::with_capacity(total + if signed { 4096 } else { 0 });
    out.resize(HEADER_SIZE, 0);

    let mut table: Vec<(u64, u64)> = Vec::with_capacity(num_sections);
    let mut measurer = ImageMeasurer::new(spec.algorithm);
    let mut push = |out: &mut Vec<u8>, ty: SectionType, payload: &[u8]| {
        table.push((out.len() as u64, payload.len() as u64));
        out.extend_from_slice(&ty.code().to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        out.extend_from_slice(payload);
    };

    push(&mut out, SectionType::Kernel, spec.kernel);
    measurer.boot_bytes(spec.kernel);
    push(&mut out, SectionType::Cmdline, spec.cmdline);
    measurer.boot_bytes(spec.cmdline);
    push(&mut out, SectionType::Metadata, &metadata);
    for rd in &spec.ramdisks {
        push(&mut out, SectionType::Ramdisk, rd);
        measurer.ramdisk(rd);
    }
    let measurements = measurer.finish(spec.signing.map(|s| s.certificate().der()));
    if let Some(signing) = spec.signing {
        let section = signing.signature_section(&measurements.pcr0);
        push(&mut out, SectionType::Signature, &section);
    }

    write_header(&mut out, spec.arch, &table);
    Ok(BuiltImage { bytes: out, measurements })
}

fn write_header(out: &mut [u8], arch: Arch, table: &[(u64, u64)]) {
    let h = &mut out[..HEADER_SIZE];
    h.fill(0);
    h[0..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_be_bytes());
    let flags: u16 = match arch {
        Arch::X86_64 => 0,
        Arch::Aarch64 => 1,
    };
    h[6..8].copy_from_slice(&flags.to_be_bytes());
    h[8..16].copy_from_slice(&DEFAULT_MEM.to_be_bytes());
    h[16..24].copy_from_slice(&DEFAULT_CPUS.to_be_bytes());
    h[26..28].copy_from_slice(&(table.len() as u16).to_be_bytes());
    for (i, (off, size)) in table.iter().enumerate() {
        h[OFFSETS_AT + 8 * i..OFFSETS_AT + 8 * i + 8].copy_from_slice(&off.to_be_bytes());
        h[SIZES_AT + 8 * i..SIZES_AT + 8 * i + 8].copy_from_slice(&size.to_be_bytes());
    }
    let crc = crc(out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// CRC32 over `file[..544] || file[548..]`. `file` must be at least `HEADER_SIZE` long.
fn crc(file: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&file[..CRC_OFFSET]);
    h.update(&file[HEADER_SIZE..]);
    h.finalize()
}

/// Recomputes and stores the CRC of a file (for tools and tests that patch headers).
/// Does nothing if the file is shorter than the header.
pub fn fix_crc(file: &mut [u8]) {
    if file.len() >= HEADER_SIZE {
        let c = crc(file);
        file[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&c.to_be_bytes());
    }
}

/// The decoded fixed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub flags: u16,
    pub arch: Arch,
    pub default_mem: u64,
    pub default_cpus: u64,
    pub num_sections: u16,
    pub crc32: u32,
}

/// One section of a parsed image.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Section<'a> {
    pub index: usize,
    /// File offset of the 12-byte section header.
    pub offset: u64,
    pub kind: SectionType,
    pub payload: &'a [u8],
}

impl std::fmt::Debug for Section<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Section")
            .field("index", &self.index)
            .field("offset", &self.offset)
            .field("kind", &self.kind)
            .field("len", &self.payload.len())
            .finish()
    }
}

/// A parsed, checked image borrowing from the file bytes.
#[derive(Debug, Clone)]
pub struct Eif<'a> {
    pub header: Header,
    pub sections: Vec<Section<'a>>,
    pub measurements: Measurements,
    /// Verified signature entries (signed images only).
    pub signatures: Option<Vec<PcrSignature>>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl<'a> Eif<'a> {
    /// Parses and checks an image: header, contiguous sections ending at EOF, known section
    /// types, CRC, exactly one kernel and cmdline, at least one ramdisk, at most one
    /// metadata and signature section, and (if signed) a signature over this image's PCR0
    /// that verifies with the embedded certificate. PCRs use `algorithm`.
    ///
    /// Never allocates from a declared size: every length is checked against the file first.
    pub fn parse(file: &'a [u8], algorithm: HashAlgorithm) -> Result<Self, ReadError> {
        if file.len() < HEADER_SIZE {
            return Err(ReadError::TooShort(file.len()));
        }
        let magic = [file[0], file[1], file[2], file[3]];
        if magic != MAGIC {
            return Err(ReadError::BadMagic(magic));
        }
        let version = be16(file, 4);
        if version == 0 || version > VERSION {
            return Err(ReadError::UnsupportedVersion(version));
        }
        let flags = be16(file, 6);
        let num_sections = be16(file, 26);
        if num_sections as usize > MAX_SECTIONS {
            return Err(ReadError::TooManySections(num_sections));
        }
        if num_sections == 0 {
            return Err(ReadError::NoSections);
        }
        let n = num_sections as usize;
        for slot in n..MAX_SECTIONS {
            if be64(file, OFFSETS_AT + 8 * slot) != 0 || be64(file, SIZES_AT + 8 * slot) != 0 {
                return Err(ReadError::UnusedSlotNotZero(slot));
            }
        }
        let header = Header {
            version,
            flags,
            arch: if flags & 1 != 0 { Arch::Aarch64 } else { Arch::X86_64 },
            default_mem: be64(file, 8),
            default_cpus: be64(file, 16),
            num_sections,
            crc32: be32(file, CRC_OFFSET),
        };
        let _unused = be32(file, UNUSED_AT);

        let file_len = file.len() as u64;
        let mut expected = HEADER_SIZE as u64;
        let mut sections = Vec::with_capacity(n);
        for index in 0..n {
            let offset = be64(file, OFFSETS_AT + 8 * index);
            let table_size = be64(file, SIZES_AT + 8 * index);
            if offset != expected {
                return Err(ReadError::NotContiguous { index, offset, expected });
            }
            // offset <= file_len holds here (expected never exceeds it)
            if file_len - offset < SECTION_HEADER_SIZE as u64 {
                return Err(ReadError::SectionHeaderPastEnd { index, offset, file_len: file.len() });
            }
            let at = offset as usize;
            let code = be16(file, at);
            let sflags = be16(file, at + 2);
            let size = be64(file, at + 4);
            if size != table_size {
                return Err(ReadError::SizeMismatch { index, table: table_size, section: size });
            }
            let start = offset + SECTION_HEADER_SIZE as u64;
            let available = file_len - start;
            if size > available {
                return Err(ReadError::PayloadPastEnd { index, size, available });
            }
            let kind = SectionType::from_code(code).ok_or(ReadError::UnknownSectionType { index, code })?;
            if sflags != 0 {
                return Err(ReadError::SectionFlags { index, flags: sflags });
            }
            let (s, e) = (start as usize, (start + size) as usize);
            sections.push(Section { index, offset, kind, payload: &file[s..e] });
            expected = start + size;
        }
        if expected != file_len {
            return Err(ReadError::TrailingData(file_len - expected));
        }
        let computed = crc(file);
        if computed != header.crc32 {
            return Err(ReadError::CrcMismatch { stored: header.crc32, computed });
        }

        let one = |kind: SectionType, name: &'static str, required: bool| {
            let mut it = sections.iter().filter(|s| s.kind == kind);
            match (it.next(), it.next()) {
                (Some(_), Some(_)) => Err(ReadError::DuplicateSection(name)),
                (None, _) if required => Err(ReadError::MissingSection(name)),
                (s, _) => Ok(s.copied()),
            }
        };
        let kernel = one(SectionType::Kernel, "kernel", true)?;
        let cmdline = one(SectionType::Cmdline, "cmdline", true)?;
        one(SectionType::Metadata, "metadata", false)?;
        let signature = one(SectionType::Signature, "signature", false)?;
        let ramdisks: Vec<&[u8]> =
            sections.iter().filter(|s| s.kind == SectionType::Ramdisk).map(|s| s.payload).collect();
        if ramdisks.is_empty() {
            return Err(ReadError::MissingSection("ramdisk"));
        }
        let (kernel, cmdline) = match (kernel, cmdline) {
            (Some(k), Some(c)) => (k.payload, c.payload),
            _ => return Err(ReadError::MissingSection("kernel")),
        };
        if cmdline.contains(&0) {
            return Err(ReadError::CmdlineNul);
        }

        let signatures = match signature {
            Some(s) => Some(sign::parse_signature_section(s.payload)?),
            None => None,
        };
        let cert_der = signatures.as_ref().and_then(|s| s.first()).map(|e| e.certificate.der().to_vec());
        let mut measurer = ImageMeasurer::new(algorithm);
        measurer.boot_bytes(kernel);
        measurer.boot_bytes(cmdline);
        for rd in &ramdisks {
            measurer.ramdisk(rd);
        }
        let measurements = measurer.finish(cert_der.as_deref());
        if let Some(sigs) = &signatures {
            // The signed value is a PCR0 in the algorithm of its own length.
            let signed_len = sigs.first().map_or(0, |s| s.register_value.len());
            let pcr0 = match HashAlgorithm::from_output_len(signed_len) {
                Some(a) if a != algorithm => crate::pcr::measure_inputs(a, kernel, cmdline, &ramdisks, None).pcr0,
                _ => measurements.pcr0.clone(),
            };
            sign::check_pcr0(sigs, &pcr0)?;
        }

        Ok(Eif { header, sections, measurements, signatures })
    }

    fn first(&self, kind: SectionType) -> Option<&'a [u8]> {
        self.sections.iter().find(|s| s.kind == kind).map(|s| s.payload)
    }

    pub fn kernel(&self) -> &'a [u8] {
        self.first(SectionType::Kernel).unwrap_or_default()
    }

    pub fn cmdline(&self) -> &'a [u8] {
        self.first(SectionType::Cmdline).unwrap_or_default()
    }

    pub fn metadata(&self) -> Option<&'a [u8]> {
        self.first(SectionType::Metadata)
    }

    pub fn ramdisks(&self) -> Vec<&'a [u8]> {
        self.sections.iter().filter(|s| s.kind == SectionType::Ramdisk).map(|s| s.payload).collect()
    }

    pub fn is_signed(&self) -> bool {
        self.signatures.is_some()
    }
}
