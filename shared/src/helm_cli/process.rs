//! One process run to completion or stopped at a deadline, its output collected.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use wait_timeout::ChildExt;

pub struct Finished {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub enum RunError {
    Spawn(std::io::Error),
    /// The process was still running at the deadline; it was killed.
    TimedOut,
}

/// Runs `binary args…` with no standard input. Both output pipes are drained on threads
/// of their own while waiting, so a process that writes more than a pipe holds does not
/// block on a reader that is not reading.
pub fn run(binary: &Path, args: &[OsString], timeout: Duration) -> Result<Finished, RunError> {
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(RunError::Spawn)?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let status = match child.wait_timeout(timeout).map_err(RunError::Spawn)? {
        Some(status) => status,
        None => {
            // The child is ours; stopping it is the point of the deadline. Its pipes close
            // with it, which ends the readers.
            let _ = child.kill();
            let _ = child.wait();
            let _ = collect(stdout);
            let _ = collect(stderr);
            return Err(RunError::TimedOut);
        }
    };
    Ok(Finished {
        success: status.success(),
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error ends the output early; what was read is still the best account.
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn collect(reader: Option<thread::JoinHandle<Vec<u8>>>) -> Vec<u8> {
    reader
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default()
}
