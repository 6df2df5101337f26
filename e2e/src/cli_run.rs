//! Running one of the project's command-line tools as a user would, for a test to read.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `command` to its end: whether it succeeded, and everything it printed (stdout,
/// then stderr). A command that cannot be started panics, naming it.
pub fn run(command: &mut Command) -> (bool, String) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", command.get_program()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Runs `command` with `input` on its standard input (passwords, for `--password-stdin`),
/// capturing what it printed. A command that cannot be started, or whose input cannot be
/// written, panics, naming it.
pub fn run_with_input(command: &mut Command, input: &str) -> Output {
    let program = command.get_program().to_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("cannot write to the input of {program:?}: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for {program:?}: {e}"))
}

/// What a finished command said, for a failed assertion's message: its exit code, then its
/// stdout and stderr apart.
pub fn describe_output(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
