//! Running one of the project's command-line tools as a user would, for a test to read.

use std::process::Command;

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
