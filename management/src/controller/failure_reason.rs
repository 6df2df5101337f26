//! The short, stable labels the controller's failures are counted under (metrics, logs).

use strata_shared::kube_writer::{Operation, WriteError};

/// The label of a failed call to an API server.
pub fn write_reason(e: &WriteError) -> &'static str {
    if e.is_timeout() {
        "Timeout"
    } else if e.operation().reads() {
        "ReadFailed"
    } else if e.operation() == Operation::Delete {
        "DeleteFailed"
    } else {
        "ApplyFailed"
    }
}
