//! The shared libraries a dynamic executable loads, as the build machine's `ldd` lists
//! them: the images carry exactly those files (and the loader), nothing of a distribution.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum LddError {
    #[error("cannot run ldd for {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("ldd failed for {binary} ({status}): {stderr}")]
    Failed {
        binary: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("ldd cannot find the library {library} that {binary} needs")]
    NotFound { binary: PathBuf, library: String },
    #[error("ldd's answer for {binary} has a line this tool does not understand: {line:?}")]
    Unparsed { binary: PathBuf, line: String },
}

/// The files `binary` loads (libraries and the loader), as absolute paths of the build
/// machine, in ldd's order.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, LddError> {
    let output = Command::new("ldd")
        .arg(binary)
        // The answer is parsed; translated messages would not be.
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| LddError::Spawn {
            binary: binary.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if stderr.is_empty() {
            stderr = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        }
        return Err(LddError::Failed {
            binary: binary.to_path_buf(),
            status: output.status,
            stderr,
        });
    }
    parse(binary, &String::from_utf8_lossy(&output.stdout))
}

/// Reads glibc ldd's lines:
///
/// ```text
///     linux-vdso.so.1 (0x00007ffd...)                      the kernel's, no file
///     libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)  a library
///     /lib64/ld-linux-x86-64.so.2 (0x...)                   the loader
///     libfoo.so.1 => not found                              an error
///     statically linked                                     no libraries
/// ```
pub fn parse(binary: &Path, text: &str) -> Result<Vec<PathBuf>, LddError> {
    let mut libraries = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line == "statically linked" {
            continue;
        }
        // The load address, when there is one, is the last word.
        let without_address = match line.rfind(" (0x") {
            Some(at) if line.ends_with(')') => line[..at].trim_end(),
            _ => line,
        };
        let path = match without_address.split_once(" => ") {
            Some((library, target)) => {
                let target = target.trim();
                if target == "not found" {
                    return Err(LddError::NotFound {
                        binary: binary.to_path_buf(),
                        library: library.trim().to_owned(),
                    });
                }
                // `libX.so => (0x...)` has no file: a library the kernel provides.
                if target.is_empty() {
                    continue;
                }
                target
            }
            None if without_address.starts_with('/') => without_address,
            // A name without a path is the vDSO, which the kernel maps.
            None if !without_address.contains(char::is_whitespace)
                && without_address.contains(".so") =>
            {
                continue;
            }
            None => {
                return Err(LddError::Unparsed {
                    binary: binary.to_path_buf(),
                    line: line.to_owned(),
                });
            }
        };
        if !path.starts_with('/') {
            return Err(LddError::Unparsed {
                binary: binary.to_path_buf(),
                line: line.to_owned(),
            });
        }
        let path = PathBuf::from(path);
        if !libraries.contains(&path) {
            libraries.push(path);
        }
    }
    Ok(libraries)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const BINARY: &str = "/target/release/strata";

    #[test]
    fn reads_libraries_and_the_loader_and_skips_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc6b5f2000)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f3119b5a000)\n\
            \tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f3116d20000)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3116b3e000)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f3119b8d000)\n";
        let libraries = parse(Path::new(BINARY), text).unwrap();
        assert_eq!(
            libraries,
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn reads_arm64_and_paths_with_spaces() {
        let text = "\tlinux-vdso.so.1 (0x0000ffff9c5e4000)\n\
            \tlibc.so.6 => /opt/my libs/libc.so.6 (0x0000ffff9c3f0000)\n\
            \t/lib/ld-linux-aarch64.so.1 (0x0000ffff9c5a7000)\n";
        let libraries = parse(Path::new(BINARY), text).unwrap();
        assert_eq!(
            libraries,
            ["/opt/my libs/libc.so.6", "/lib/ld-linux-aarch64.so.1"].map(PathBuf::from)
        );
    }

    #[test]
    fn a_static_executable_needs_nothing() {
        assert!(
            parse(Path::new(BINARY), "\tstatically linked\n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_missing_library_is_an_error_naming_it_and_the_binary() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc6b5f2000)\n\
            \tlibssl.so.3 => not found\n";
        let message = parse(Path::new(BINARY), text).unwrap_err().to_string();
        assert_eq!(
            message,
            "ldd cannot find the library libssl.so.3 that /target/release/strata needs"
        );
    }

    #[test]
    fn an_unknown_line_is_an_error_not_a_silent_skip() {
        let message = parse(Path::new(BINARY), "\tsomething else entirely\n")
            .unwrap_err()
            .to_string();
        assert!(message.contains("something else entirely"), "{message}");
    }

    #[test]
    fn ldd_failing_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not a program\n").unwrap();
        let message = shared_libraries(&text).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("ldd failed for {}", text.display())),
            "{message}"
        );
    }
}
