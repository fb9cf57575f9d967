//! The API server's verdicts for the kubelet port: who a bearer token
//! belongs to (TokenReview) and whether that user may do what a request asks
//! (SubjectAccessReview), as the kubelet's webhook authenticator and
//! authorizer ask them.

use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use crate::{ApiClient, KubeError, bounded};

/// An authenticated user, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// What a request to the kubelet asks of the node object: the resource
/// attributes of a SubjectAccessReview (`nodes/<subresource>` of `name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAccess {
    pub verb: String,
    pub subresource: String,
    pub name: String,
}

/// The API server's answer to a SubjectAccessReview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Why, if the authorizer said.
    pub reason: String,
}

/// The user `token` belongs to, or `None` if the API server does not know it.
pub async fn review_token(client: &ApiClient, token: &str) -> Result<Option<UserInfo>, KubeError> {
    let reviews: Api<TokenReview> = Api::all(client.kube());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: None,
        },
        ..Default::default()
    };
    let answer = bounded(reviews.create(&PostParams::default(), &review)).await?;
    let Some(status) = answer.status.filter(|s| s.authenticated == Some(true)) else {
        return Ok(None);
    };
    let user = status.user.unwrap_or_default();
    Ok(Some(UserInfo {
        name: user.username.unwrap_or_default(),
        uid: user.uid.unwrap_or_default(),
        groups: user.groups.unwrap_or_default(),
        extra: user.extra.unwrap_or_default(),
    }))
}

/// Whether `user` may `access` the node.
pub async fn review_access(
    client: &ApiClient,
    user: &UserInfo,
    access: &NodeAccess,
) -> Result<Verdict, KubeError> {
    let reviews: Api<SubjectAccessReview> = Api::all(client.kube());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(access.verb.clone()),
                group: Some(String::new()),
                version: Some("v1".into()),
                resource: Some("nodes".into()),
                subresource: Some(access.subresource.clone()),
                name: Some(access.name.clone()),
                ..Default::default()
            }),
            non_resource_attributes: None,
        },
        ..Default::default()
    };
    let answer = bounded(reviews.create(&PostParams::default(), &review)).await?;
    let status = answer.status.unwrap_or_default();
    Ok(Verdict {
        allowed: status.allowed && status.denied != Some(true),
        reason: status.reason.unwrap_or_default(),
    })
}
