//! The API objects a cluster's pod may name, read through a port so the
//! agent never sees the API (the kubelet's configmap, secret and token
//! managers): ConfigMaps' and Secrets' data, and service account tokens.
//! [`fetch`] reads what one pod names before its volumes and environment
//! are made, so the blocking volume set-up has it all at hand.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Container, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::pod_ext::PodExt;

/// Keys to bytes: a ConfigMap's `data` and `binaryData`, a Secret's `data`.
pub type Data = BTreeMap<String, Vec<u8>>;

pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

impl ObjectKind {
    /// As the kubelet's messages name it (`configmap "x" not found`).
    pub fn lowercase(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
        }
    }
}

/// How the agent reads API objects (in cluster mode).
pub trait ApiObjects: Send + Sync {
    /// The object's data; None if it does not exist.
    fn get<'a>(
        &'a self,
        kind: ObjectKind,
        namespace: &'a str,
        name: &'a str,
    ) -> Boxed<'a, Result<Option<Data>, String>>;

    /// Every Service of the cluster (for the variables pods get from them).
    fn services(&self) -> Boxed<'_, Result<Vec<Service>, String>>;

    /// A token for `request` (the TokenRequest of the service account
    /// `metadata.name` in `metadata.namespace`), refreshed before it expires.
    fn token<'a>(&'a self, request: &'a TokenRequest) -> Boxed<'a, Result<String, String>>;
}

/// What one pod's references read as.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// None: the object does not exist.
    /// Ok(None): the object does not exist; Err: it could not be read (an
    /// error of whoever uses it: a volume's mount, a container's config).
    objects: BTreeMap<(ObjectKind, String), Result<Option<Data>, String>>,
    tokens: BTreeMap<(Option<String>, i64), Result<String, String>>,
    /// The variables of the Services the pod sees, before its own; why
    /// not, if the Services could not be read.
    service_env: Result<Vec<(String, String)>, String>,
}

impl Default for Fetched {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            tokens: BTreeMap::new(),
            service_env: Ok(Vec::new()),
        }
    }
}

impl Fetched {
    pub fn insert_object(&mut self, kind: ObjectKind, name: &str, data: Option<Data>) {
        self.objects.insert((kind, name.to_owned()), Ok(data));
    }

    /// An object that could not be read, and why.
    pub fn insert_failure(&mut self, kind: ObjectKind, name: &str, why: &str) {
        self.objects
            .insert((kind, name.to_owned()), Err(why.to_owned()));
    }

    pub fn insert_token(&mut self, audience: Option<&str>, expiration_seconds: i64, token: String) {
        self.tokens
            .insert((audience.map(str::to_owned), expiration_seconds), Ok(token));
    }

    /// The object's data: Ok(None) if it does not exist.
    pub fn object(&self, kind: ObjectKind, name: &str) -> Result<Option<&Data>, String> {
        match self.objects.get(&(kind, name.to_owned())) {
            Some(Ok(data)) => Ok(data.as_ref()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!("{} {name:?} was not read", kind.lowercase())),
        }
    }

    /// The Services' variables; an error is the containers' config error
    /// (the kubelet's CreateContainerConfigError), not the volumes'.
    pub fn service_env(&self) -> Result<&[(String, String)], String> {
        self.service_env.as_deref().map_err(Clone::clone)
    }

    /// The token of a `serviceAccountToken` projection.
    pub fn token(&self, audience: Option<&str>, expiration_seconds: i64) -> Result<&str, String> {
        match self
            .tokens
            .get(&(audience.map(str::to_owned), expiration_seconds))
        {
            Some(Ok(token)) => Ok(token),
            Some(Err(e)) => Err(e.clone()),
            None => Err("the service account token was not requested".to_owned()),
        }
    }
}

/// How long a static pod's start waits for the Services, at most.
const STATIC_POD_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The kubelet's default token lifetime for a projection.
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;

fn containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.init_containers().iter().chain(pod.app_containers())
}

/// Every ConfigMap and Secret `pod` names, in volumes and env.
pub fn references(pod: &Pod) -> Vec<(ObjectKind, String)> {
    let mut found = Vec::new();
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    for volume in volumes {
        if let Some(c) = &volume.config_map {
            found.push((ObjectKind::ConfigMap, c.name.clone()));
        }
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            found.push((ObjectKind::Secret, name));
        }
        let sources = volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten());
        for source in sources {
            if let Some(c) = &source.config_map {
                found.push((ObjectKind::ConfigMap, c.name.clone()));
            }
            if let Some(s) = &source.secret {
                found.push((ObjectKind::Secret, s.name.clone()));
            }
        }
    }
    for container in containers(pod) {
        for from in container.env_from.iter().flatten() {
            if let Some(c) = &from.config_map_ref {
                found.push((ObjectKind::ConfigMap, c.name.clone()));
            }
            if let Some(s) = &from.secret_ref {
                found.push((ObjectKind::Secret, s.name.clone()));
            }
        }
        let sources = container
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.as_ref());
        for source in sources {
            if let Some(c) = &source.config_map_key_ref {
                found.push((ObjectKind::ConfigMap, c.name.clone()));
            }
            if let Some(s) = &source.secret_key_ref {
                found.push((ObjectKind::Secret, s.name.clone()));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The pod's image pull secrets, by name.
pub fn pull_secrets(pod: &Pod) -> Vec<String> {
    let mut names: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
        .map(|r| r.name.clone())
        .filter(|name| !name.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The pod's token projections: (audience, expirationSeconds).
fn token_projections(pod: &Pod) -> Vec<(Option<String>, i64)> {
    let mut found: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| {
            (
                t.audience.clone().filter(|a| !a.is_empty()),
                t.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
            )
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// What [`fetch`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Before containers start: the objects and the Services' variables.
    Start,
    /// A running pod's volumes brought up to date: the objects only.
    Volumes,
}

/// Reads everything `pod` names, and (for a start) the Services it sees.
/// What could not be read fails where it is used (a volume's mount, a
/// container's config), as in the kubelet. Without a port (standalone mode)
/// there are no Services, and a pod that names something cannot be served.
pub async fn fetch(
    objects: Option<&dyn ApiObjects>,
    pod: &Pod,
    needs: Needs,
) -> Result<Fetched, String> {
    let mut references = references(pod);
    // Pulls happen only when containers start.
    if needs == Needs::Start {
        references.extend(
            pull_secrets(pod)
                .into_iter()
                .map(|name| (ObjectKind::Secret, name)),
        );
        references.sort();
        references.dedup();
    }
    let tokens = token_projections(pod);
    let mut fetched = Fetched::default();
    let Some(objects) = objects else {
        if references.is_empty() && tokens.is_empty() {
            return Ok(fetched);
        }
        return Err("API objects can be read only in cluster mode".into());
    };
    // An API pod waits for the Services to have been read once; a static
    // pod never waits on the API server (it may be what serves it) and
    // goes without them, as the kubelet's.
    let services = if needs == Needs::Volumes {
        Ok(Vec::new())
    } else if pod.is_static() {
        let read = tokio::time::timeout(STATIC_POD_WAIT, objects.services()).await;
        Ok(read.ok().and_then(Result::ok).unwrap_or_default())
    } else {
        objects
            .services()
            .await
            .map_err(|e| format!("services have not yet been read at least once: {e}"))
    };
    fetched.service_env = services.map(|services| {
        let seen = wasmlet_rules::service_env::for_pod(pod, &services);
        wasmlet_rules::service_env::variables(&seen)
    });
    let namespace = pod.namespace_or_default();
    for (kind, name) in references {
        let data = objects.get(kind, namespace, &name).await.map_err(|e| {
            format!(
                "{} {namespace}/{name} could not be read: {e}",
                kind.lowercase()
            )
        });
        fetched.objects.insert((kind, name), data);
    }
    let service_account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    for (audience, expiration_seconds) in tokens {
        // Bound to the pod, so it dies with it.
        let request = TokenRequest {
            metadata: ObjectMeta {
                name: Some(service_account.clone()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            spec: TokenRequestSpec {
                audiences: audience.iter().cloned().collect(),
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    kind: Some("Pod".into()),
                    api_version: Some("v1".into()),
                    name: Some(pod.name_str().to_owned()),
                    uid: Some(pod.uid_str().to_owned()),
                }),
            },
            status: None,
        };
        let token = objects
            .token(&request)
            .await
            .map_err(|e| format!("failed to fetch token: {e}"));
        fetched.tokens.insert((audience, expiration_seconds), token);
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster whose Services cannot be read: they fail, or never answer.
    struct NoServices {
        hang: bool,
    }

    impl ApiObjects for NoServices {
        fn get<'a>(
            &'a self,
            _: ObjectKind,
            _: &'a str,
            _: &'a str,
        ) -> Boxed<'a, Result<Option<Data>, String>> {
            Box::pin(async { Ok(Some(Data::new())) })
        }

        fn services(&self) -> Boxed<'_, Result<Vec<Service>, String>> {
            let hang = self.hang;
            Box::pin(async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Err("the API server is away".into())
            })
        }

        fn token<'a>(&'a self, _: &'a TokenRequest) -> Boxed<'a, Result<String, String>> {
            Box::pin(async { Err("no tokens".into()) })
        }
    }

    fn pod(source: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "uid": "u1",
                         "annotations": {"kubernetes.io/config.source": source}},
            "spec": {"containers": [{"name": "app"}]},
        }))
        .expect("pod")
    }

    #[tokio::test]
    async fn unread_services_are_the_containers_config_error_not_the_volumes() {
        let objects = NoServices { hang: false };
        let fetched = fetch(Some(&objects), &pod("api"), Needs::Start)
            .await
            .expect("the volumes' objects are read all the same");
        let error = fetched.service_env().expect_err("no Services");
        assert!(error.contains("services have not yet been read"), "{error}");
        // A running pod's volume refresh does not read them at all.
        let refreshed = fetch(Some(&objects), &pod("api"), Needs::Volumes)
            .await
            .expect("read");
        assert_eq!(refreshed.service_env(), Ok(&[][..]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_static_pod_waits_a_second_at_most_for_the_services_and_goes_without() {
        let objects = NoServices { hang: true };
        let started = tokio::time::Instant::now();
        let fetched = fetch(Some(&objects), &pod("file"), Needs::Start)
            .await
            .expect("read");
        assert_eq!(fetched.service_env(), Ok(&[][..]));
        assert_eq!(started.elapsed(), STATIC_POD_WAIT);
    }

    #[test]
    fn every_reference_of_volumes_env_and_env_from_is_found_once() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "uid": "u1"},
            "spec": {
                "volumes": [
                    {"name": "a", "configMap": {"name": "settings"}},
                    {"name": "b", "secret": {"secretName": "creds"}},
                    {"name": "c", "projected": {"sources": [
                        {"configMap": {"name": "ca"}},
                        {"serviceAccountToken": {"path": "token"}},
                        {"serviceAccountToken": {"path": "vault", "audience": "vault", "expirationSeconds": 600}},
                    ]}},
                ],
                "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
                "containers": [{"name": "app", "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "b"}}},
                ]}],
            }
        }))
        .expect("pod");
        assert_eq!(
            references(&pod),
            [
                (ObjectKind::ConfigMap, "ca".to_owned()),
                (ObjectKind::ConfigMap, "settings".to_owned()),
                (ObjectKind::Secret, "creds".to_owned()),
                (ObjectKind::Secret, "init-env".to_owned()),
            ]
        );
        assert_eq!(
            token_projections(&pod),
            [(None, DEFAULT_TOKEN_SECONDS), (Some("vault".into()), 600)]
        );
    }
}
