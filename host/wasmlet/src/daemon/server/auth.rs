//! Who is asking, and may they: the kubelet port's authentication (client
//! certificate, then bearer token through a TokenReview, then anonymous if
//! allowed) and authorization (always, or a SubjectAccessReview on
//! `nodes/<subresource>` named after the path), with the kubelet's caches,
//! status codes and messages.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use hyper::{HeaderMap, Method};
use tokio::time::Instant;
use wasmlet_kube::ApiClient;
use wasmlet_kube::reviews::{self, NodeAccess, UserInfo, Verdict};

use crate::daemon::config::{Authentication, Authorization, AuthorizationMode};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The API server's reviews (a fake in unit tests).
pub trait Reviews: Send + Sync {
    fn token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<UserInfo>, String>>;
    fn access<'a>(
        &'a self,
        user: &'a UserInfo,
        access: &'a NodeAccess,
    ) -> BoxFuture<'a, Result<Verdict, String>>;
}

impl Reviews for ApiClient {
    fn token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<UserInfo>, String>> {
        Box::pin(async move {
            reviews::review_token(self, token)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn access<'a>(
        &'a self,
        user: &'a UserInfo,
        access: &'a NodeAccess,
    ) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(async move {
            reviews::review_access(self, user, access)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Why a request is turned away, as the kubelet answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no credentials that authenticate.
    Unauthorized,
    /// 403, with the kubelet's message.
    Forbidden(String),
    /// 500: the authorizer could not answer.
    AuthorizerFailed(String),
}

const ANONYMOUS: &str = "system:anonymous";
const UNAUTHENTICATED: &str = "system:unauthenticated";
const AUTHENTICATED: &str = "system:authenticated";

/// Answers kept per cache; a full cache forgets its expired answers, then
/// all of them (a flood of distinct tokens must not grow memory).
const CACHE_ENTRIES: usize = 4096;

/// Answers kept for a while, by key.
#[derive(Debug)]
struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (value, until) = entries.get(key)?;
        (Instant::now() < *until).then(|| value.clone())
    }

    fn put(&self, key: K, value: V, ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (value, now + ttl));
    }
}

/// The kubelet port's gate.
pub struct Guard {
    node_name: String,
    authentication: Authentication,
    authorization: Authorization,
    reviews: Option<Box<dyn Reviews>>,
    tokens: TtlCache<String, Option<UserInfo>>,
    verdicts: TtlCache<(UserInfo, NodeAccess), Verdict>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("node_name", &self.node_name)
            .field("authorization", &self.authorization.mode)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// `reviews` is the cluster's, if there is one (the config check made
    /// sure the webhooks have it).
    pub fn new(
        node_name: String,
        authentication: Authentication,
        authorization: Authorization,
        reviews: Option<Box<dyn Reviews>>,
    ) -> Self {
        Self {
            node_name,
            authentication,
            authorization,
            reviews,
            tokens: TtlCache::new(),
            verdicts: TtlCache::new(),
        }
    }

    /// The request's user, if it may make the request.
    pub async fn admit(
        &self,
        client_certificate: Option<&UserInfo>,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
    ) -> Result<UserInfo, Refusal> {
        let user = self.authenticate(client_certificate, headers).await?;
        self.authorize(&user, method, path).await?;
        Ok(user)
    }

    /// The kubelet's union: a verified client certificate, else a bearer
    /// token the API server knows, else anonymous if allowed; a token the
    /// webhook refuses is never anonymous (without the webhook, tokens are
    /// not read at all).
    async fn authenticate(
        &self,
        client_certificate: Option<&UserInfo>,
        headers: &HeaderMap,
    ) -> Result<UserInfo, Refusal> {
        if let Some(user) = client_certificate {
            return Ok(authenticated(user.clone()));
        }
        let token = headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        if let Some(token) = token
            && self.authentication.webhook.enabled
        {
            return match self.review_token(token).await {
                Some(user) => Ok(authenticated(user)),
                None => Err(Refusal::Unauthorized),
            };
        }
        if self.authentication.anonymous.enabled {
            return Ok(UserInfo {
                name: ANONYMOUS.into(),
                groups: vec![UNAUTHENTICATED.into()],
                ..Default::default()
            });
        }
        Err(Refusal::Unauthorized)
    }

    async fn review_token(&self, token: &str) -> Option<UserInfo> {
        if let Some(known) = self.tokens.get(&token.to_owned()) {
            return known;
        }
        let reviews = self.reviews.as_ref()?;
        match reviews.token(token).await {
            Ok(user) => {
                let ttl = self.authentication.webhook.cache_ttl;
                self.tokens.put(token.to_owned(), user.clone(), ttl);
                user
            }
            Err(error) => {
                tracing::warn!(%error, "reviewing a bearer token for the kubelet port");
                None
            }
        }
    }

    /// Each of the path's subresources in turn (the fine-grained one, then
    /// `proxy`, as the kubelet's KubeletFineGrainedAuthz): the first allowed
    /// admits.
    async fn authorize(&self, user: &UserInfo, method: &Method, path: &str) -> Result<(), Refusal> {
        if self.authorization.mode == AuthorizationMode::AlwaysAllow {
            return Ok(());
        }
        let verb = verb(method);
        let subresources = subresources(path);
        for subresource in subresources {
            let access = NodeAccess {
                verb: verb.into(),
                subresource: (*subresource).into(),
                name: self.node_name.clone(),
            };
            if self.review_access(user, access).await?.allowed {
                return Ok(());
            }
        }
        Err(Refusal::Forbidden(format!(
            "Forbidden (user={}, verb={verb}, resource=nodes, subresource(s)={subresources:?})\n",
            user.name
        )))
    }

    async fn review_access(&self, user: &UserInfo, access: NodeAccess) -> Result<Verdict, Refusal> {
        let key = (user.clone(), access);
        if let Some(verdict) = self.verdicts.get(&key) {
            return Ok(verdict);
        }
        let reviews = self.reviews.as_ref().ok_or_else(|| {
            Refusal::AuthorizerFailed("no API server to ask for authorization".into())
        })?;
        let verdict = reviews
            .access(&key.0, &key.1)
            .await
            .map_err(Refusal::AuthorizerFailed)?;
        let webhook = &self.authorization.webhook;
        let ttl = if verdict.allowed {
            webhook.cache_authorized_ttl
        } else {
            webhook.cache_unauthorized_ttl
        };
        self.verdicts.put(key, verdict.clone(), ttl);
        Ok(verdict)
    }
}

/// Every authenticated user is in `system:authenticated`.
fn authenticated(mut user: UserInfo) -> UserInfo {
    if !user.groups.iter().any(|g| g == AUTHENTICATED) {
        user.groups.push(AUTHENTICATED.into());
    }
    user
}

/// `Bearer <token>` (the scheme in any case, as Kubernetes reads it).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The API verb of an HTTP method, as the kubelet maps it.
fn verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// The node subresources a path is authorized as, in the order asked.
fn subresources(path: &str) -> &'static [&'static str] {
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if under("/stats") {
        &["stats"]
    } else if under("/metrics") {
        &["metrics"]
    } else if under("/logs") {
        &["log"]
    } else if under("/pods") || under("/runningpods") {
        &["pods", "proxy"]
    } else if under("/healthz") {
        &["healthz", "proxy"]
    } else if under("/configz") {
        &["configz", "proxy"]
    } else {
        &["proxy"]
    }
}

#[cfg(test)]
mod tests;
