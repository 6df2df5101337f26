//! Checks that a file put into an image as a program is one: a 64-bit little-endian ELF
//! executable for a machine the images are built for, and whether it needs a dynamic
//! loader (its `PT_INTERP`). Only the headers are read.
//!
//! The loader is read from the file rather than from `ldd`'s answer because `ldd` fails
//! (exit 1, "not a dynamic executable") on a static binary such as the official `helm`,
//! which needs no libraries at all.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
/// Position-independent executables (and shared libraries) are `ET_DYN`.
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;
const HEADER_LEN: usize = 64;
const PROGRAM_HEADER_LEN: usize = 56;
/// Far more than any real executable has; a larger count means a damaged header.
const MAX_PROGRAM_HEADERS: u16 = 512;
/// `PATH_MAX`: a longer loader path is a damaged header.
const MAX_INTERPRETER_LEN: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("{path}: no such file")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path} is not executable (mode {mode:o})")]
    NotExecutable { path: PathBuf, mode: u32 },
    #[error("{path} is not an ELF executable: {reason}")]
    NotElf { path: PathBuf, reason: String },
}

/// An architecture the images are built for, named as OCI platforms name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// The architecture of the machine running this program (the images hold its
    /// binaries and its shared libraries); None for any other.
    pub fn of_build_machine() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// `amd64` or `arm64`, the `architecture` of an image configuration.
    pub fn oci_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// What an image needs to know about one of its programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    pub path: PathBuf,
    pub arch: Arch,
    /// The dynamic loader it names; None for a static executable.
    pub interpreter: Option<PathBuf>,
}

/// Reads the ELF headers of `path`.
pub fn inspect(path: &Path) -> Result<Executable, ElfError> {
    let read_error = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => ElfError::Missing {
            path: path.to_path_buf(),
        },
        _ => ElfError::Read {
            path: path.to_path_buf(),
            source,
        },
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if !metadata.is_file() {
        return Err(ElfError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = metadata.permissions().mode();
    if mode & 0o111 == 0 {
        return Err(ElfError::NotExecutable {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    let mut file = File::open(path).map_err(read_error)?;
    let not_elf = |reason: String| ElfError::NotElf {
        path: path.to_path_buf(),
        reason,
    };

    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        let read = file.read(&mut header[filled..]).map_err(read_error)?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    if filled < ELF_MAGIC.len() || header[..4] != ELF_MAGIC {
        return Err(not_elf(
            "it does not start with the ELF magic number".into(),
        ));
    }
    if filled < HEADER_LEN {
        return Err(not_elf(format!(
            "its ELF header is cut short ({filled} bytes)"
        )));
    }
    if header[4] != ELFCLASS64 {
        return Err(not_elf("it is not a 64-bit ELF file".into()));
    }
    if header[5] != ELFDATA2LSB {
        return Err(not_elf("it is not little-endian".into()));
    }
    let e_type = u16_at(&header, 16);
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(not_elf(format!(
            "its type is {e_type} (an object file or core dump, not a program)"
        )));
    }
    let arch = match u16_at(&header, 18) {
        EM_X86_64 => Arch::Amd64,
        EM_AARCH64 => Arch::Arm64,
        other => {
            return Err(not_elf(format!(
                "it is for machine {other}, neither x86-64 nor AArch64"
            )));
        }
    };
    let program_headers = u64_at(&header, 32);
    let entry_len = u16_at(&header, 54);
    let count = u16_at(&header, 56);
    if count > MAX_PROGRAM_HEADERS || (count > 0 && usize::from(entry_len) < PROGRAM_HEADER_LEN) {
        return Err(not_elf(format!(
            "its program header table is damaged ({count} entries of {entry_len} bytes)"
        )));
    }
    let mut table = vec![0u8; usize::from(count) * usize::from(entry_len)];
    file.seek(SeekFrom::Start(program_headers))
        .and_then(|_| file.read_exact(&mut table))
        .map_err(|source| match source.kind() {
            io::ErrorKind::UnexpectedEof => {
                not_elf("its program header table lies past the end of the file".into())
            }
            _ => read_error(source),
        })?;
    let mut interpreter = None;
    for entry in table.chunks_exact(usize::from(entry_len)) {
        if u32_at(entry, 0) != PT_INTERP {
            continue;
        }
        let offset = u64_at(entry, 8);
        let len = u64_at(entry, 32);
        if len == 0 || len > MAX_INTERPRETER_LEN {
            return Err(not_elf(format!("its loader path is {len} bytes long")));
        }
        let mut text = vec![0u8; len as usize];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut text))
            .map_err(read_error)?;
        // Stored with its terminating NUL.
        let text = text.split(|b| *b == 0).next().unwrap_or_default();
        let text = std::str::from_utf8(text)
            .ok()
            .filter(|t| t.starts_with('/'))
            .ok_or_else(|| not_elf("its loader path is not an absolute path".into()))?;
        interpreter = Some(PathBuf::from(text));
    }
    Ok(Executable {
        path: path.to_path_buf(),
        arch,
        interpreter,
    })
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// A minimal x86-64 executable header with one `PT_INTERP` entry naming `loader`.
    fn dynamic_elf(loader: &str) -> Vec<u8> {
        let mut bytes = vec![0u8; HEADER_LEN + PROGRAM_HEADER_LEN];
        bytes[..4].copy_from_slice(&ELF_MAGIC);
        bytes[4] = ELFCLASS64;
        bytes[5] = ELFDATA2LSB;
        bytes[16..18].copy_from_slice(&ET_DYN.to_le_bytes());
        bytes[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        bytes[32..40].copy_from_slice(&(HEADER_LEN as u64).to_le_bytes());
        bytes[54..56].copy_from_slice(&(PROGRAM_HEADER_LEN as u16).to_le_bytes());
        bytes[56..58].copy_from_slice(&1u16.to_le_bytes());
        let entry = HEADER_LEN;
        let text_at = bytes.len() as u64;
        bytes[entry..entry + 4].copy_from_slice(&PT_INTERP.to_le_bytes());
        bytes[entry + 8..entry + 16].copy_from_slice(&text_at.to_le_bytes());
        bytes[entry + 32..entry + 40].copy_from_slice(&(loader.len() as u64 + 1).to_le_bytes());
        bytes.extend_from_slice(loader.as_bytes());
        bytes.push(0);
        bytes
    }

    #[test]
    fn reads_the_loader_of_a_dynamic_executable() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "prog",
            &dynamic_elf("/lib64/ld-linux-x86-64.so.2"),
            0o755,
        );
        let exe = inspect(&path).unwrap();
        assert_eq!(exe.arch, Arch::Amd64);
        assert_eq!(
            exe.interpreter.as_deref(),
            Some(Path::new("/lib64/ld-linux-x86-64.so.2"))
        );
    }

    #[test]
    fn this_test_program_is_an_executable_of_the_build_machine() {
        let me = std::env::current_exe().unwrap();
        let exe = inspect(&me).unwrap();
        assert_eq!(Some(exe.arch), Arch::of_build_machine());
    }

    #[test]
    fn refuses_what_is_not_a_program_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("strata");
        let message = inspect(&missing).unwrap_err().to_string();
        assert_eq!(message, format!("{}: no such file", missing.display()));

        let script = write(dir.path(), "script", b"#!/bin/sh\necho hi\n", 0o755);
        let message = inspect(&script).unwrap_err().to_string();
        assert!(
            message.contains("script is not an ELF executable"),
            "{message}"
        );
        assert!(message.contains("ELF magic"), "{message}");

        let plain = write(dir.path(), "plain", &dynamic_elf("/lib/ld.so"), 0o644);
        let message = inspect(&plain).unwrap_err().to_string();
        assert!(
            message.contains("plain is not executable (mode 644)"),
            "{message}"
        );

        let mut object = dynamic_elf("/lib/ld.so");
        object[16..18].copy_from_slice(&1u16.to_le_bytes());
        let object = write(dir.path(), "object.o", &object, 0o755);
        let message = inspect(&object).unwrap_err().to_string();
        assert!(message.contains("not a program"), "{message}");

        let message = inspect(dir.path()).unwrap_err().to_string();
        assert!(message.contains("is not a regular file"), "{message}");
    }
}
