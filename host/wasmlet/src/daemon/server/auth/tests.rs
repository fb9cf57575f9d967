//! The gate's decisions against a fake API server's reviews.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Knows `token-alice` (alice, in `team`); allows `get` on the subresources
/// listed for each user; counts its calls.
#[derive(Default)]
struct FakeReviews {
    allowed: Vec<(&'static str, &'static str)>,
    calls: Arc<Calls>,
    down: bool,
}

#[derive(Default)]
struct Calls {
    token: AtomicUsize,
    access: AtomicUsize,
}

impl Reviews for FakeReviews {
    fn token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<UserInfo>, String>> {
        self.calls.token.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if self.down {
                return Err("connection refused".into());
            }
            Ok((token == "token-alice").then(|| UserInfo {
                name: "alice".into(),
                groups: vec!["team".into()],
                ..Default::default()
            }))
        })
    }

    fn access<'a>(
        &'a self,
        user: &'a UserInfo,
        access: &'a NodeAccess,
    ) -> BoxFuture<'a, Result<Verdict, String>> {
        self.calls.access.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if self.down {
                return Err("connection refused".into());
            }
            assert_eq!(access.name, "node-1");
            let allowed = access.verb == "get"
                && self
                    .allowed
                    .iter()
                    .any(|(u, s)| *u == user.name && *s == access.subresource);
            Ok(Verdict {
                allowed,
                reason: String::new(),
            })
        })
    }
}

fn guard(anonymous: bool, mode: AuthorizationMode, reviews: FakeReviews) -> Guard {
    let mut authentication = Authentication::default();
    authentication.anonymous.enabled = anonymous;
    let authorization = Authorization {
        mode,
        ..Default::default()
    };
    Guard::new(
        "node-1".into(),
        authentication,
        authorization,
        Some(Box::new(reviews)),
    )
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        hyper::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    headers
}

#[tokio::test]
async fn a_client_certificate_user_is_authorized_by_subresource() {
    let reviews = FakeReviews {
        allowed: vec![("bob", "metrics")],
        ..Default::default()
    };
    let guard = guard(false, AuthorizationMode::Webhook, reviews);
    let bob = UserInfo {
        name: "bob".into(),
        ..Default::default()
    };
    let user = guard
        .admit(Some(&bob), &HeaderMap::new(), &Method::GET, "/metrics")
        .await
        .expect("bob may read metrics");
    assert_eq!(user.groups, ["system:authenticated"]);
    let refused = guard
        .admit(Some(&bob), &HeaderMap::new(), &Method::GET, "/pods")
        .await;
    assert_eq!(
        refused,
        Err(Refusal::Forbidden(
            "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[\"pods\", \"proxy\"])\n"
                .into()
        ))
    );
}

#[tokio::test]
async fn pods_fall_back_to_proxy_as_the_kubelet_s_fine_grained_authorization() {
    let reviews = FakeReviews {
        allowed: vec![("alice", "proxy")],
        ..Default::default()
    };
    let guard = guard(false, AuthorizationMode::Webhook, reviews);
    guard
        .admit(None, &bearer("token-alice"), &Method::GET, "/pods")
        .await
        .expect("proxy admits /pods");
    let refused = guard
        .admit(None, &bearer("token-alice"), &Method::GET, "/stats/summary")
        .await;
    assert!(matches!(refused, Err(Refusal::Forbidden(m)) if m.contains("[\"stats\"]")));
}

#[tokio::test]
async fn a_token_the_api_server_does_not_know_is_unauthorized_even_with_anonymous_on() {
    let guard = guard(true, AuthorizationMode::AlwaysAllow, FakeReviews::default());
    assert_eq!(
        guard
            .admit(None, &bearer("forged"), &Method::GET, "/pods")
            .await,
        Err(Refusal::Unauthorized)
    );
    let anonymous = guard
        .admit(None, &HeaderMap::new(), &Method::GET, "/pods")
        .await
        .expect("anonymous");
    assert_eq!(anonymous.name, "system:anonymous");
    assert_eq!(anonymous.groups, ["system:unauthenticated"]);
}

#[tokio::test]
async fn no_credentials_without_anonymous_is_unauthorized() {
    let guard = guard(
        false,
        AuthorizationMode::AlwaysAllow,
        FakeReviews::default(),
    );
    assert_eq!(
        guard
            .admit(None, &HeaderMap::new(), &Method::GET, "/healthz")
            .await,
        Err(Refusal::Unauthorized)
    );
}

#[tokio::test(start_paused = true)]
async fn answers_are_cached_for_their_ttl() {
    let reviews = FakeReviews {
        allowed: vec![("alice", "metrics")],
        ..Default::default()
    };
    let calls = reviews.calls.clone();
    let guard = guard(false, AuthorizationMode::Webhook, reviews);
    for _ in 0..3 {
        guard
            .admit(None, &bearer("token-alice"), &Method::GET, "/metrics")
            .await
            .expect("allowed");
    }
    assert_eq!(calls.token.load(Ordering::SeqCst), 1);
    assert_eq!(calls.access.load(Ordering::SeqCst), 1);
    // The token's answer lasts 2 minutes, an allowed verdict 5.
    tokio::time::advance(Duration::from_secs(121)).await;
    guard
        .admit(None, &bearer("token-alice"), &Method::GET, "/metrics")
        .await
        .expect("allowed");
    assert_eq!(calls.token.load(Ordering::SeqCst), 2);
    assert_eq!(calls.access.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_authorizer_is_a_server_error_and_is_not_cached() {
    let reviews = FakeReviews {
        down: true,
        ..Default::default()
    };
    let calls = reviews.calls.clone();
    let guard = guard(false, AuthorizationMode::Webhook, reviews);
    let bob = UserInfo {
        name: "bob".into(),
        ..Default::default()
    };
    for _ in 0..2 {
        let refused = guard
            .admit(Some(&bob), &HeaderMap::new(), &Method::GET, "/pods")
            .await;
        assert!(matches!(refused, Err(Refusal::AuthorizerFailed(_))));
    }
    assert_eq!(calls.access.load(Ordering::SeqCst), 2);
    // An unreachable token reviewer: the token does not authenticate.
    assert_eq!(
        guard
            .admit(None, &bearer("token-alice"), &Method::GET, "/pods")
            .await,
        Err(Refusal::Unauthorized)
    );
}

#[test]
fn paths_map_to_the_kubelet_s_subresources_and_methods_to_verbs() {
    assert_eq!(subresources("/stats/summary"), ["stats"]);
    assert_eq!(subresources("/metrics/probes"), ["metrics"]);
    assert_eq!(subresources("/logs/"), ["log"]);
    assert_eq!(subresources("/containerLogs/ns/pod/c"), ["proxy"]);
    assert_eq!(subresources("/exec/ns/pod/c"), ["proxy"]);
    assert_eq!(subresources("/metricsx"), ["proxy"]);
    assert_eq!(subresources("/healthz"), ["healthz", "proxy"]);
    assert_eq!(verb(&Method::POST), "create");
    assert_eq!(verb(&Method::DELETE), "delete");
    assert_eq!(bearer_token("bearer abc"), Some("abc"));
    assert_eq!(bearer_token("Basic abc"), None);
    assert_eq!(bearer_token("Bearer "), None);
}
