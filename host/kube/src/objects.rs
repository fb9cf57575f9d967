//! The ConfigMaps and Secrets this node's pods name, each kept current by a
//! watch of its own while pods use it (the kubelet's watch-based manager:
//! list and watch with `metadata.name=<name>` in its namespace), and
//! service account tokens from the TokenRequest API, bound to their pod,
//! cached and requested anew once 80 % of their life has passed or after
//! 24 hours (the kubelet's token manager); and every Service, through one
//! watch, for the variables pods get from them (the kubelet's service
//! lister).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::{ApiClient, CALL_TIMEOUT, KubeError, bounded};

/// Keys to bytes: a ConfigMap's `data` and `binaryData`, a Secret's `data`.
pub type Data = BTreeMap<String, Vec<u8>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

/// A watch no pod asked for this long is stopped.
const IDLE: Duration = Duration::from_secs(300);
const WATCH_TIMEOUT_SECONDS: u32 = 290;
const RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
const TOKEN_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// What the Services' reflector last saw, as [`Current`].
type ServicesSeen = Option<Result<Vec<Service>, String>>;

/// What one object's reflector last saw: None before its first list; an
/// error only while it has never listed.
type Current = Option<Result<Option<Data>, String>>;

struct Watched {
    current: watch::Receiver<Current>,
    last_used: Instant,
    task: AbortHandle,
}

struct Token {
    token: String,
    issued: Instant,
    lifetime: Duration,
}

impl Token {
    fn expired(&self) -> bool {
        self.issued.elapsed() >= self.lifetime
    }

    /// The kubelet's requiresRefresh: 80 % of its life gone, or a day old.
    fn due(&self) -> bool {
        let age = self.issued.elapsed();
        age >= self.lifetime.mul_f64(0.8) || age >= TOKEN_MAX_AGE
    }
}

/// Reads API objects for pods, holding their watches.
pub struct Objects {
    client: ApiClient,
    watched: Mutex<HashMap<(ObjectKind, String, String), Watched>>,
    /// By the request's JSON.
    tokens: tokio::sync::Mutex<HashMap<String, Token>>,
    services: Mutex<Option<(watch::Receiver<ServicesSeen>, AbortHandle)>>,
}

impl Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").finish_non_exhaustive()
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        let watched = self
            .watched
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, w) in watched.drain() {
            w.task.abort();
        }
        let services = self
            .services
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, task)) = services.take() {
            task.abort();
        }
    }
}

fn config_map_data(c: &ConfigMap) -> Data {
    let text = c
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()));
    let binary = c
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()));
    text.chain(binary).collect()
}

fn secret_data(s: &Secret) -> Data {
    let data = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()));
    let text = s
        .string_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()));
    data.chain(text).collect()
}

impl Objects {
    pub fn new(client: &ApiClient) -> Self {
        Self {
            client: client.clone(),
            watched: Mutex::default(),
            tokens: tokio::sync::Mutex::default(),
            services: Mutex::default(),
        }
    }

    /// Every Service of the cluster, as one watch (started by the first
    /// call, then kept) last saw them.
    pub async fn services(&self) -> Result<Vec<Service>, KubeError> {
        let mut current = {
            let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
            let (current, _) = services.get_or_insert_with(|| {
                let (tx, rx) = watch::channel(None);
                let task = tokio::spawn(reflect_services(Api::all(self.client.kube()), tx));
                (rx, task.abort_handle())
            });
            current.clone()
        };
        listed(&mut current).await
    }

    /// The object's data as its watch last saw it (None: it does not exist).
    /// The first read of an object starts its watch and waits for its list.
    pub async fn get(
        &self,
        kind: ObjectKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Data>, KubeError> {
        let mut current = {
            let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
            watched.retain(|_, w| {
                let keep = w.last_used.elapsed() < IDLE;
                if !keep {
                    w.task.abort();
                }
                keep
            });
            let key = (kind, namespace.to_owned(), name.to_owned());
            let entry = watched
                .entry(key)
                .or_insert_with(|| self.start(kind, namespace, name));
            entry.last_used = Instant::now();
            entry.current.clone()
        };
        listed(&mut current).await
    }

    fn start(&self, kind: ObjectKind, namespace: &str, name: &str) -> Watched {
        let (tx, current) = watch::channel(None);
        let client = self.client.kube();
        let name = name.to_owned();
        // Tracked: aborted when idle, or with `Objects`.
        let task = match kind {
            ObjectKind::ConfigMap => tokio::spawn(reflect(
                Api::<ConfigMap>::namespaced(client, namespace),
                name,
                tx,
                config_map_data,
            )),
            ObjectKind::Secret => tokio::spawn(reflect(
                Api::<Secret>::namespaced(client, namespace),
                name,
                tx,
                secret_data,
            )),
        };
        Watched {
            current,
            last_used: Instant::now(),
            task: task.abort_handle(),
        }
    }

    /// A token for `request` (of service account `metadata.name` in
    /// `metadata.namespace`), from the cache while it is fresh; a failed
    /// refresh falls back on the cached token while it is valid.
    pub async fn token(&self, request: &TokenRequest) -> Result<String, KubeError> {
        let key = serde_json::to_string(request).unwrap_or_default();
        let mut tokens = self.tokens.lock().await;
        tokens.retain(|_, t| !t.expired());
        if let Some(t) = tokens.get(&key).filter(|t| !t.due()) {
            return Ok(t.token.clone());
        }
        match self.request_token(request).await {
            Ok(token) => {
                let value = token.token.clone();
                tokens.insert(key, token);
                Ok(value)
            }
            Err(e) => match tokens.get(&key) {
                Some(cached) => {
                    tracing::warn!(error = %e, service_account = ?request.metadata.name, "could not refresh a service account token; using the cached one");
                    Ok(cached.token.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn request_token(&self, request: &TokenRequest) -> Result<Token, KubeError> {
        let namespace = request.metadata.namespace.as_deref().unwrap_or("default");
        let account = request.metadata.name.as_deref().unwrap_or("default");
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.kube(), namespace);
        let answer =
            bounded(accounts.create_token_request(account, &PostParams::default(), request))
                .await?;
        let Some(status) = answer.status else {
            return Err(KubeError::Unreachable(
                "the TokenRequest came back without a token".into(),
            ));
        };
        // Its life from the server's expiry (it may shorten or extend it).
        let now = std::time::SystemTime::now();
        let expiry: std::time::SystemTime = status.expiration_timestamp.0.into();
        let lifetime = expiry.duration_since(now).unwrap_or_default();
        Ok(Token {
            token: status.token,
            issued: Instant::now(),
            lifetime,
        })
    }
}

/// What a reflector has once it listed (at most [`CALL_TIMEOUT`] away):
/// its value, or why it could not list.
async fn listed<T: Clone>(
    current: &mut watch::Receiver<Option<Result<T, String>>>,
) -> Result<T, KubeError> {
    let first = tokio::time::timeout(CALL_TIMEOUT, current.wait_for(Option::is_some)).await;
    match first {
        Ok(Ok(seen)) => match seen.as_ref() {
            Some(Ok(value)) => Ok(value.clone()),
            Some(Err(e)) => Err(KubeError::Unreachable(e.clone())),
            None => Err(KubeError::Unreachable("not listed yet".into())),
        },
        Ok(Err(_)) => Err(KubeError::Unreachable("the watch ended".into())),
        Err(_) => Err(KubeError::Unreachable(format!(
            "no answer within {CALL_TIMEOUT:?}"
        ))),
    }
}

/// A list that failed: its error stands only while nothing was ever
/// listed (the last value outlives an outage); then the back-off.
async fn list_failed<T>(
    tx: &watch::Sender<Option<Result<T, String>>>,
    e: &KubeError,
    retry: &mut Duration,
) {
    if tx.borrow().as_ref().is_none_or(Result::is_err) {
        tx.send_replace(Some(Err(e.to_string())));
    }
    tokio::time::sleep(*retry).await;
    *retry = (*retry * 2).min(RETRY.1);
}

/// Keeps `tx` current with object `name`: list, then watch from the list's
/// resourceVersion; a watch that ends is watched again, a 410 lists again,
/// an outage keeps the last value.
async fn reflect<K>(api: Api<K>, name: String, tx: watch::Sender<Current>, data_of: fn(&K) -> Data)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static,
{
    let fields = format!("metadata.name={name}");
    let mut retry = RETRY.0;
    loop {
        let list = bounded(api.list(&ListParams::default().fields(&fields))).await;
        let mut version = match list {
            Ok(list) => {
                retry = RETRY.0;
                tx.send_replace(Some(Ok(list.items.first().map(data_of))));
                list.metadata.resource_version.unwrap_or_default()
            }
            Err(e) => {
                list_failed(&tx, &e, &mut retry).await;
                continue;
            }
        };
        // Watch until the resourceVersion is gone (or watching fails).
        'watching: loop {
            let params = WatchParams::default()
                .fields(&fields)
                .timeout(WATCH_TIMEOUT_SECONDS);
            let Ok(events) = bounded(api.watch(&params, &version)).await else {
                break 'watching;
            };
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                        version = o.meta().resource_version.clone().unwrap_or(version);
                        tx.send_replace(Some(Ok(Some(data_of(&o)))));
                    }
                    Ok(WatchEvent::Deleted(o)) => {
                        version = o.meta().resource_version.clone().unwrap_or(version);
                        tx.send_replace(Some(Ok(None)));
                    }
                    Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
                    Ok(WatchEvent::Error(_)) | Err(_) => break 'watching,
                }
            }
        }
        tokio::time::sleep(retry).await;
    }
}

/// Keeps `tx` current with every Service: list, then watch; as [`reflect`].
async fn reflect_services(api: Api<Service>, tx: watch::Sender<ServicesSeen>) {
    let mut retry = RETRY.0;
    loop {
        let mut version = match bounded(api.list(&ListParams::default())).await {
            Ok(list) => {
                retry = RETRY.0;
                let version = list.metadata.resource_version.clone().unwrap_or_default();
                tx.send_replace(Some(Ok(list.items)));
                version
            }
            Err(e) => {
                list_failed(&tx, &e, &mut retry).await;
                continue;
            }
        };
        'watching: loop {
            let params = WatchParams::default().timeout(WATCH_TIMEOUT_SECONDS);
            let Ok(events) = bounded(api.watch(&params, &version)).await else {
                break 'watching;
            };
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                let (service, gone) = match event {
                    Ok(WatchEvent::Added(s) | WatchEvent::Modified(s)) => (s, false),
                    Ok(WatchEvent::Deleted(s)) => (s, true),
                    Ok(WatchEvent::Bookmark(b)) => {
                        version = b.metadata.resource_version;
                        continue;
                    }
                    Ok(WatchEvent::Error(_)) | Err(_) => break 'watching,
                };
                version = service.metadata.resource_version.clone().unwrap_or(version);
                tx.send_modify(|current| {
                    if let Some(Ok(services)) = current {
                        services.retain(|s| s.metadata.uid != service.metadata.uid);
                        if !gone {
                            services.push(service);
                        }
                    }
                });
            }
        }
        tokio::time::sleep(retry).await;
    }
}
