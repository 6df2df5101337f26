//! Test fault injection for the move. The hooks exist only in a build with the cargo feature
//! `fault-hooks` (the test build, `scripts/test.sh`); without it nothing here reads the
//! environment, `crash_point` does nothing and `write` only awaits the write, so a release
//! build has no hook a variable could switch on.
//!
//! - `STRATA_MOVE_EXIT_AFTER=<n>`: the agent exits at once (as if killed) after performing
//!   its (n+1)-th step, before recording it. Each process so records n steps and leaves one
//!   done but unrecorded, which the next process must redo: a test restarting the agent
//!   reaches every step boundary both ways.
//! - `STRATA_MOVE_WRITE_DELAY_MS=<ms>`: the object-level writes of the move (pause, create,
//!   status, the release and the delete of a source delete, unpause) go one at a time;
//!   each that succeeds is logged as a "move write" with its kind and object, then followed
//!   by a pause of that long. A test watching the log can so kill the agent (SIGKILL) right
//!   after any chosen write, with no other write in flight: inside a group, not only at step
//!   boundaries.

use std::time::Duration;

use strata_shared::pivot::journal::MoveJournal;

/// The hooks a process runs with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultHooks {
    /// Steps to perform and record before exiting mid-move.
    pub exit_after: Option<u64>,
    /// The pause after each write of the move, which also makes the writes one at a time.
    pub write_delay: Option<Duration>,
}

#[cfg(feature = "fault-hooks")]
const EXIT_AFTER: &str = "STRATA_MOVE_EXIT_AFTER";
#[cfg(feature = "fault-hooks")]
const WRITE_DELAY_MS: &str = "STRATA_MOVE_WRITE_DELAY_MS";

impl FaultHooks {
    /// The hooks `lookup` (an environment) switches on.
    #[cfg(feature = "fault-hooks")]
    pub fn read(lookup: &dyn Fn(&str) -> Option<String>) -> FaultHooks {
        FaultHooks {
            exit_after: lookup(EXIT_AFTER).and_then(|v| v.parse().ok()),
            write_delay: lookup(WRITE_DELAY_MS)
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
        }
    }

    /// Without the feature there are no hooks: nothing is looked up.
    #[cfg(not(feature = "fault-hooks"))]
    pub fn read(_lookup: &dyn Fn(&str) -> Option<String>) -> FaultHooks {
        FaultHooks::default()
    }

    /// The hooks of this process, read once.
    fn of_process() -> FaultHooks {
        static HOOKS: std::sync::OnceLock<FaultHooks> = std::sync::OnceLock::new();
        // Without the feature `read` never calls the lookup.
        *HOOKS.get_or_init(|| FaultHooks::read(&|name| std::env::var(name).ok()))
    }
}

/// Called after each performed step, before it is recorded: exits when the process's
/// `STRATA_MOVE_EXIT_AFTER` says so.
pub fn crash_point(journal: &MoveJournal) {
    static PERFORMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some(limit) = FaultHooks::of_process().exit_after else {
        return;
    };
    let performed = PERFORMED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if performed > limit {
        tracing::warn!(performed, phase = ?journal.phase, "exiting mid-move (fault hook)");
        std::process::exit(137);
    }
}

/// One object-level write of the move; with a write delay, one at a time, logged and followed
/// by the pause. Without it only awaits the write.
pub async fn write<T, E>(
    kind: &'static str,
    object: &str,
    write: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    static TURN: std::sync::OnceLock<futures::lock::Mutex<()>> = std::sync::OnceLock::new();
    let Some(delay) = FaultHooks::of_process().write_delay else {
        return write.await;
    };
    // Parallel writes of a group would otherwise land together, and a kill after one of
    // them would not be a kill after that one only.
    let _turn = TURN
        .get_or_init(|| futures::lock::Mutex::new(()))
        .lock()
        .await;
    let result = write.await;
    if result.is_ok() {
        // The object last: the test reads it to the end of the line.
        tracing::info!(write = %kind, %object, "move write");
        tokio::time::sleep(delay).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// An environment offering a value for every variable, counting the look-ups.
    fn offering(value: &'static str, asked: &Cell<usize>) -> impl Fn(&str) -> Option<String> {
        move |_| {
            asked.set(asked.get() + 1);
            Some(value.to_string())
        }
    }

    #[cfg(not(feature = "fault-hooks"))]
    #[test]
    fn a_default_build_reads_no_variable_and_has_no_hook() {
        let asked = Cell::new(0);
        assert_eq!(
            FaultHooks::read(&offering("1", &asked)),
            FaultHooks::default()
        );
        assert_eq!(asked.get(), 0, "a default build looked a variable up");
        assert_eq!(FaultHooks::of_process(), FaultHooks::default());
    }

    #[cfg(feature = "fault-hooks")]
    #[test]
    fn the_test_build_reads_both_hooks() {
        let asked = Cell::new(0);
        let hooks = FaultHooks::read(&offering("250", &asked));
        assert_eq!(hooks.exit_after, Some(250));
        assert_eq!(hooks.write_delay, Some(Duration::from_millis(250)));
        assert_eq!(asked.get(), 2);
        let none = FaultHooks::read(&|_| None);
        assert_eq!(none, FaultHooks::default());
    }
}
