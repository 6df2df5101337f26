//! Asking the apiserver's authorizer what a service account may do: a `SubjectAccessReview`
//! (authorization.k8s.io/v1) for the account's user name and the groups the apiserver gives
//! every service-account token, so the answer is the one a request with its token would get.

use std::fmt;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

#[derive(Debug, thiserror::Error)]
pub enum AccessReviewError {
    #[error("cannot ask whether {user} may {right}: {source}")]
    Request {
        user: String,
        right: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("the review of whether {user} may {right} came back without a status")]
    NoStatus { user: String, right: String },
}

/// A service account, as the authorizer sees a request made with one of its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountUser {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccountUser {
    pub fn new(namespace: &str, name: &str) -> ServiceAccountUser {
        ServiceAccountUser {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// `system:serviceaccount:<namespace>:<name>`.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    /// The groups the token authenticator adds for every service account.
    pub fn groups(&self) -> Vec<String> {
        vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", self.namespace),
            "system:authenticated".into(),
        ]
    }
}

impl fmt::Display for ServiceAccountUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One right: a verb on a resource (or its subresource), in a namespace or cluster-wide,
/// on one object by name or on any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Right {
    pub verb: String,
    /// The API group; `""` for the core group.
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Right {
    pub fn new(verb: &str, group: &str, resource: &str) -> Right {
        Right {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: None,
            namespace: None,
            name: None,
        }
    }

    pub fn subresource(mut self, subresource: &str) -> Right {
        self.subresource = Some(subresource.into());
        self
    }

    pub fn in_namespace(mut self, namespace: &str) -> Right {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn named(mut self, name: &str) -> Right {
        self.name = Some(name.into());
        self
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(subresource) = &self.subresource {
            write!(f, "/{subresource}")?;
        }
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        match &self.namespace {
            Some(namespace) => write!(f, " in namespace {namespace}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why (RBAC names the binding that allowed it).
    pub reason: String,
    /// Rules the authorizer could not evaluate (a binding to a missing role): a refusal
    /// with one may only mean the rule that would allow it was not read.
    pub evaluation_error: Option<String>,
}

/// Whether `user` may use `right`, as the apiserver decides it now.
pub async fn review(
    client: &Client,
    user: &ServiceAccountUser,
    right: &Right,
) -> Result<Decision, AccessReviewError> {
    let request = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.username()),
            groups: Some(user.groups()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(right.verb.clone()),
                group: Some(right.group.clone()),
                resource: Some(right.resource.clone()),
                subresource: right.subresource.clone(),
                namespace: right.namespace.clone(),
                name: right.name.clone(),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &request)
        .await
        .map_err(|source| AccessReviewError::Request {
            user: user.to_string(),
            right: right.to_string(),
            source: Box::new(source),
        })?;
    let status = answer.status.ok_or_else(|| AccessReviewError::NoStatus {
        user: user.to_string(),
        right: right.to_string(),
    })?;
    Ok(Decision {
        allowed: status.allowed,
        reason: status.reason.unwrap_or_default(),
        evaluation_error: status.evaluation_error.filter(|e| !e.is_empty()),
    })
}

/// Reviews every right (each with what it would amount to, for the report) and describes
/// each whose answer is not `expect_allowed` (a refusal the authorizer could not fully
/// evaluate counts as not refused): empty when all are as expected.
pub async fn unexpected(
    client: &Client,
    user: &ServiceAccountUser,
    rights: &[(String, Right)],
    expect_allowed: bool,
) -> Result<Vec<String>, AccessReviewError> {
    let mut found = Vec::new();
    for (meaning, right) in rights {
        let decision = review(client, user, right).await?;
        let as_expected = if expect_allowed {
            decision.allowed
        } else {
            !decision.allowed && decision.evaluation_error.is_none()
        };
        if !as_expected {
            found.push(format!(
                "{meaning}: {user} {} {right} (expected {}; reason {:?}, evaluation error {:?})",
                if decision.allowed { "may" } else { "may not" },
                if expect_allowed { "allowed" } else { "refused" },
                decision.reason,
                decision.evaluation_error,
            ));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_right_says_what_it_is() {
        let token = Right::new("create", "", "serviceaccounts")
            .subresource("token")
            .in_namespace("kube-system")
            .named("namespace-controller");
        assert_eq!(
            token.to_string(),
            "create serviceaccounts/token \"namespace-controller\" in namespace kube-system"
        );
        let bind = Right::new("bind", "rbac.authorization.k8s.io", "clusterroles");
        assert_eq!(
            bind.to_string(),
            "bind clusterroles.rbac.authorization.k8s.io cluster-wide"
        );
        let user = ServiceAccountUser::new("strata-system", "strata-controller");
        assert_eq!(
            user.username(),
            "system:serviceaccount:strata-system:strata-controller"
        );
        assert!(
            user.groups()
                .contains(&"system:serviceaccounts:strata-system".to_string())
        );
    }
}
