//! What a call of the writer was, on what, and how it failed.

use std::fmt;
use std::time::Duration;

/// The call made to the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Get,
    List,
    Create,
    Replace,
    /// Server-side apply.
    Apply,
    /// Server-side apply of the status subresource.
    ApplyStatus,
    /// A JSON merge patch.
    MergePatch,
    /// A JSON merge patch of the status subresource.
    MergePatchStatus,
    /// A JSON patch (RFC 6902).
    JsonPatch,
    /// A JSON patch of the status subresource.
    JsonPatchStatus,
    Delete,
    /// A token request of a service account.
    RequestToken,
    /// Discovery of the kinds a group serves.
    Discover,
}

impl Operation {
    /// Whether the call only reads.
    pub fn reads(self) -> bool {
        matches!(self, Operation::Get | Operation::List | Operation::Discover)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Get => "read",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Replace => "replace",
            Operation::Apply => "apply",
            Operation::ApplyStatus => "apply the status of",
            Operation::MergePatch | Operation::JsonPatch => "patch",
            Operation::MergePatchStatus | Operation::JsonPatchStatus => "patch the status of",
            Operation::Delete => "delete",
            Operation::RequestToken => "request a token for",
            Operation::Discover => "discover",
        })
    }
}

/// What a call was about: one object, or every object of a kind (a list, a discovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Object {
        kind: String,
        /// None for cluster-scoped objects.
        namespace: Option<String>,
        name: String,
    },
    Kind {
        kind: String,
        /// None for cluster-scoped kinds, or across all namespaces.
        namespace: Option<String>,
    },
}

impl Target {
    pub fn object(
        kind: impl Into<String>,
        namespace: Option<&str>,
        name: impl Into<String>,
    ) -> Self {
        Target::Object {
            kind: kind.into(),
            namespace: namespace.map(String::from),
            name: name.into(),
        }
    }

    pub fn kind(kind: impl Into<String>, namespace: Option<&str>) -> Self {
        Target::Kind {
            kind: kind.into(),
            namespace: namespace.map(String::from),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Object {
                kind,
                namespace: Some(namespace),
                name,
            } => write!(f, "{kind} {namespace}/{name}"),
            Target::Object {
                kind,
                namespace: None,
                name,
            } => write!(f, "{kind} {name}"),
            Target::Kind {
                kind,
                namespace: Some(namespace),
            } => write!(f, "the {kind} objects of namespace {namespace}"),
            Target::Kind {
                kind,
                namespace: None,
            } => write!(f, "the {kind} objects"),
        }
    }
}

/// A call of the writer that failed, naming the operation, its target and the cause. (The
/// target is boxed: the error travels in many `Result`s.)
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The API server answered with an error status.
    #[error("cannot {operation} {target}: the API server answered {code} {reason}: {message}")]
    Refused {
        operation: Operation,
        target: Box<Target>,
        code: u16,
        reason: String,
        message: String,
    },
    /// No answer came: the connection failed, or the answer could not be read.
    #[error("cannot {operation} {target}: {source}")]
    Unanswered {
        operation: Operation,
        target: Box<Target>,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("cannot {operation} {target}: no answer within {timeout:?}")]
    TimedOut {
        operation: Operation,
        target: Box<Target>,
        timeout: Duration,
    },
    /// The object cannot be sent as it is, or the answer does not read as one.
    #[error("cannot {operation} {target}: {reason}")]
    Invalid {
        operation: Operation,
        target: Box<Target>,
        reason: String,
    },
}

impl WriteError {
    /// The error of a call that `kube` returned.
    pub fn from_kube(operation: Operation, target: Target, error: kube::Error) -> WriteError {
        match error {
            kube::Error::Api(status) => WriteError::Refused {
                operation,
                target: Box::new(target),
                code: status.code,
                reason: status.reason,
                message: status.message,
            },
            other => WriteError::Unanswered {
                operation,
                target: Box::new(target),
                source: Box::new(other),
            },
        }
    }

    pub fn operation(&self) -> Operation {
        match self {
            WriteError::Refused { operation, .. }
            | WriteError::Unanswered { operation, .. }
            | WriteError::TimedOut { operation, .. }
            | WriteError::Invalid { operation, .. } => *operation,
        }
    }

    pub fn target(&self) -> &Target {
        match self {
            WriteError::Refused { target, .. }
            | WriteError::Unanswered { target, .. }
            | WriteError::TimedOut { target, .. }
            | WriteError::Invalid { target, .. } => target,
        }
    }

    /// The HTTP status the API server answered with, when it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            WriteError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// 409: the object exists already, or changed since it was read.
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }

    /// 403: the writer's account may not make the call.
    pub fn is_forbidden(&self) -> bool {
        self.code() == Some(403)
    }

    /// 401 or 403: the API server does not take the writer's credentials, or not for this.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.code(), Some(401 | 403))
    }

    /// 404: the object is not there (or its kind is not served).
    pub fn is_gone(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, WriteError::TimedOut { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16, reason: &str) -> WriteError {
        let status =
            kube::core::Status::failure("secrets \"x\" not allowed", reason).with_code(code);
        WriteError::from_kube(
            Operation::Apply,
            Target::object("Secret", Some("strata-system"), "x"),
            kube::Error::Api(status.boxed()),
        )
    }

    #[test]
    fn an_answer_is_classified_by_its_code() {
        let cases = [
            (404, "NotFound", [false, false, false, true]),
            (409, "Conflict", [true, false, false, false]),
            (403, "Forbidden", [false, true, true, false]),
            (401, "Unauthorized", [false, false, true, false]),
            (500, "InternalError", [false, false, false, false]),
        ];
        for (code, reason, [conflict, forbidden, unauthorized, gone]) in cases {
            let error = refused(code, reason);
            assert_eq!(error.code(), Some(code));
            assert_eq!(
                [
                    error.is_conflict(),
                    error.is_forbidden(),
                    error.is_unauthorized(),
                    error.is_gone()
                ],
                [conflict, forbidden, unauthorized, gone],
                "{code}"
            );
            assert!(!error.is_timeout());
        }
    }

    #[test]
    fn a_failure_without_an_answer_has_no_code() {
        let error = WriteError::from_kube(
            Operation::Get,
            Target::object("Namespace", None, "a"),
            kube::Error::LinesCodecMaxLineLengthExceeded,
        );
        assert!(matches!(error, WriteError::Unanswered { .. }));
        assert_eq!(error.code(), None);
        assert!(!error.is_gone());
    }

    #[test]
    fn the_message_names_the_operation_the_object_and_the_cause() {
        assert_eq!(
            refused(403, "Forbidden").to_string(),
            "cannot apply Secret strata-system/x: the API server answered 403 Forbidden: secrets \"x\" not allowed"
        );
        let timed_out = WriteError::TimedOut {
            operation: Operation::ApplyStatus,
            target: Box::new(Target::object("WorkloadCluster", Some("team-a"), "edge-1")),
            timeout: Duration::from_secs(15),
        };
        assert_eq!(
            timed_out.to_string(),
            "cannot apply the status of WorkloadCluster team-a/edge-1: no answer within 15s"
        );
        assert!(timed_out.is_timeout());
        assert_eq!(
            Target::object("ClusterRole", None, "strata-agent-x").to_string(),
            "ClusterRole strata-agent-x"
        );
        assert_eq!(
            Target::kind("ClusterRevision", Some("strata-wc-a")).to_string(),
            "the ClusterRevision objects of namespace strata-wc-a"
        );
        assert_eq!(
            Target::kind("CustomResourceDefinition", None).to_string(),
            "the CustomResourceDefinition objects"
        );
    }

    #[test]
    fn only_gets_lists_and_discovery_read() {
        assert!(Operation::Get.reads() && Operation::List.reads() && Operation::Discover.reads());
        for writes in [
            Operation::Create,
            Operation::Apply,
            Operation::ApplyStatus,
            Operation::MergePatch,
            Operation::JsonPatch,
            Operation::JsonPatchStatus,
            Operation::Delete,
            Operation::RequestToken,
        ] {
            assert!(!writes.reads(), "{writes}");
        }
    }
}
