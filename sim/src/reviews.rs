//! The self-review resources `kubectl auth can-i` and `kubectl auth whoami` create:
//! SelfSubjectAccessReview and SelfSubjectRulesReview (authorization.k8s.io/v1) and
//! SelfSubjectReview (authentication.k8s.io/v1). They are never stored: a POST answers
//! 201 with the review and its status. The simulator neither authenticates nor
//! authorises, so every client is the cluster admin a kubeadm kubeconfig names, and
//! everything is allowed.

use serde_json::{Value, json};

use crate::error::{ApiError, FieldCause};
use crate::util;

/// One create-only review resource, as discovery lists it.
pub(crate) struct Review {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) singular: &'static str,
    pub(crate) kind: &'static str,
}

pub(crate) const REVIEWS: &[Review] = &[
    Review {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        kind: "SelfSubjectReview",
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        kind: "SelfSubjectAccessReview",
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectrulesreviews",
        singular: "selfsubjectrulesreview",
        kind: "SelfSubjectRulesReview",
    },
];

/// Who every client is: the user and groups of kubeadm's admin kubeconfig.
const USER: &str = "kubernetes-admin";
const GROUPS: [&str; 2] = ["kubeadm:cluster-admins", "system:authenticated"];

/// The review a POST path names (`/apis/<group>/<version>/<plural>`).
pub(crate) fn find(segs: &[&str]) -> Option<&'static Review> {
    match segs {
        ["apis", g, v, plural] => REVIEWS.iter().find(|r| r.group == *g && r.version == *v && r.plural == *plural),
        _ => None,
    }
}

/// The review `body` completed with its status.
pub(crate) fn answer(review: &Review, mut body: Value) -> Result<Value, ApiError> {
    let Some(m) = body.as_object_mut() else {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    };
    m.insert("apiVersion".into(), json!(format!("{}/{}", review.group, review.version)));
    m.insert("kind".into(), json!(review.kind));
    m.insert("metadata".into(), json!({"creationTimestamp": util::now_rfc3339()}));
    let status = match review.kind {
        "SelfSubjectAccessReview" => access(&body)?,
        "SelfSubjectRulesReview" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        _ => json!({"userInfo": {"username": USER, "groups": GROUPS}}),
    };
    body["status"] = status;
    Ok(body)
}

/// `ValidateSelfSubjectAccessReview` (exactly one kind of attributes), then allowed, as
/// the RBAC authoriser words it for a member of `system:masters`.
fn access(body: &Value) -> Result<Value, ApiError> {
    let has = |f: &str| body.pointer(&format!("/spec/{f}")).is_some_and(Value::is_object);
    if has("resourceAttributes") == has("nonResourceAttributes") {
        return Err(ApiError::invalid_fields(
            "authorization.k8s.io",
            "SelfSubjectAccessReview",
            "",
            &[FieldCause::invalid(
                "spec.resourceAttributes",
                "null",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        ));
    }
    Ok(json!({
        "allowed": true,
        "reason": "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of ClusterRole \"cluster-admin\" to Group \"system:masters\"",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_reviews_need_exactly_one_kind_of_attributes() -> Result<(), ApiError> {
        let r = find(&["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"])
            .ok_or_else(|| ApiError::bad_request("none"))?;
        let ok = answer(r, json!({"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}))?;
        assert_eq!(ok["status"]["allowed"], true);
        assert_eq!(answer(r, json!({"spec": {}})).err().map(|e| e.code), Some(422));
        assert!(find(&["apis", "authorization.k8s.io", "v1", "nothing"]).is_none());
        Ok(())
    }
}
