//! Cluster mode, when a kubeconfig is configured: the Node registered and
//! its status kept (computed every `nodeStatusUpdateFrequency`, patched when
//! it changed or every `nodeStatusReportFrequency`), and the node Lease
//! renewed in a task of its own; pod statuses and events sent, and the
//! static pods' mirror pods kept.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeDaemonEndpoints, NodeStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::HashMap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Event, Pod, PodStatus, Service};
use tokio::sync::broadcast;
use wasmlet_agent::agent::AgentView;
use wasmlet_agent::api_objects::{ApiObjects, Data, ObjectKind};
use wasmlet_agent::events::{EventType, Recorder};
use wasmlet_agent::health::Heartbeat;
use wasmlet_agent::mirror_pods::{MirrorChange, MirrorPods, MirrorSet, mirror_pod};
use wasmlet_agent::node_status::{self, NodeHealth};
use wasmlet_agent::pleg::RELIST_THRESHOLD;
use wasmlet_agent::pod_ext::PodUidExt;
use wasmlet_agent::status_manager::PodStatuses;
use wasmlet_core::RuntimeInfo;
use wasmlet_cri::CriClient;
use wasmlet_kube::ApiClient;
use wasmlet_kube::events::{self, Correlator, EventApi};
use wasmlet_kube::lease::{self, LeaseSettings};
use wasmlet_kube::node::NodeApi;
use wasmlet_kube::objects::{self, Objects};
use wasmlet_kube::pods::{self, PodApi};
use wasmlet_kube::reader::{self, Query, Reader};
use wasmlet_plugin_host::{ApiEventKind, ApiList, ApiQuery, ApiReader, ApiWatch, WatchEnd};
use wasmlet_rules::PodExt;
use wasmlet_rules::pod::CONFIG_HASH;

use super::AgentFileConfig;
use super::tasks::CoreTasks;
use crate::node_facts;

/// What cluster mode runs on.
pub struct Cluster {
    client: ApiClient,
    node: Node,
    register: bool,
    lease_duration: Duration,
    update_every: Duration,
    report_every: Duration,
    root_dir: std::path::PathBuf,
}

/// The cluster's client, if a kubeconfig is configured (cluster mode).
pub async fn connect(config: &AgentFileConfig) -> anyhow::Result<Option<ApiClient>> {
    let Some(path) = &config.kubeconfig else {
        return Ok(None);
    };
    let client = ApiClient::from_kubeconfig(path)
        .await
        .context("cluster mode")?;
    tracing::info!(server = %client.server(), "cluster mode");
    Ok(Some(client))
}

/// The plugins' `kube-api` reads, through the cluster's client.
pub fn reads(client: &ApiClient) -> Arc<dyn ApiReader> {
    Arc::new(ApiReads(Reader::new(client)))
}

struct ApiReads(Reader);

/// The ConfigMaps, Secrets and tokens pods name, through the cluster's client.
pub fn objects(client: &ApiClient) -> Arc<dyn ApiObjects> {
    Arc::new(PodObjects(Objects::new(client)))
}

struct PodObjects(Objects);

impl ApiObjects for PodObjects {
    fn get<'a>(
        &'a self,
        kind: ObjectKind,
        namespace: &'a str,
        name: &'a str,
    ) -> Boxed<'a, Result<Option<Data>, String>> {
        let kind = match kind {
            ObjectKind::ConfigMap => objects::ObjectKind::ConfigMap,
            ObjectKind::Secret => objects::ObjectKind::Secret,
        };
        Box::pin(async move {
            self.0
                .get(kind, namespace, name)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn services(&self) -> Boxed<'_, Result<Vec<Service>, String>> {
        Box::pin(async move { self.0.services().await.map_err(|e| e.to_string()) })
    }

    fn token<'a>(&'a self, request: &'a TokenRequest) -> Boxed<'a, Result<String, String>> {
        Box::pin(async move { self.0.token(request).await.map_err(|e| e.to_string()) })
    }
}

struct Watched(reader::Watch);

fn query(q: &ApiQuery) -> Query {
    Query {
        resource: q.resource.clone(),
        namespace: q.namespace.clone(),
        field_selector: q.field_selector.clone(),
        label_selector: q.label_selector.clone(),
    }
}

type Boxed<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl ApiReader for ApiReads {
    fn list<'a>(&'a self, q: &'a ApiQuery) -> Boxed<'a, Result<ApiList, String>> {
        Box::pin(async move {
            let (resource_version, items) =
                self.0.list(&query(q)).await.map_err(|e| e.to_string())?;
            Ok(ApiList {
                resource_version,
                items,
            })
        })
    }

    fn watch<'a>(
        &'a self,
        q: &'a ApiQuery,
        resource_version: &'a str,
    ) -> Boxed<'a, Result<Box<dyn ApiWatch>, String>> {
        Box::pin(async move {
            let watch = self
                .0
                .watch(&query(q), resource_version)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Box::new(Watched(watch)) as Box<dyn ApiWatch>)
        })
    }
}

impl ApiWatch for Watched {
    fn next(&mut self) -> Boxed<'_, Result<(ApiEventKind, String), WatchEnd>> {
        Box::pin(async move {
            match self.0.next().await {
                Ok((kind, object)) => {
                    let kind = match kind {
                        "ADDED" => ApiEventKind::Added,
                        "MODIFIED" => ApiEventKind::Modified,
                        "DELETED" => ApiEventKind::Deleted,
                        _ => ApiEventKind::Bookmark,
                    };
                    Ok((kind, object))
                }
                Err(reader::WatchEnd::Gone) => Err(WatchEnd::Gone),
                Err(reader::WatchEnd::Closed(why)) => Err(WatchEnd::Closed(why)),
            }
        })
    }
}

impl Cluster {
    /// `node` is the Node as admission sees it (labels, taints, capacity).
    pub fn new(
        client: ApiClient,
        config: &AgentFileConfig,
        mut node: Node,
        node_ip: Option<std::net::IpAddr>,
    ) -> Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(labels) = node.metadata.labels.as_mut() {
            // The kubelet also sets the deprecated beta labels.
            for (beta, ga) in [
                ("beta.kubernetes.io/os", "kubernetes.io/os"),
                ("beta.kubernetes.io/arch", "kubernetes.io/arch"),
            ] {
                if let Some(value) = labels.get(ga).cloned() {
                    labels.insert(beta.into(), value);
                }
            }
        }
        let status = node.status.get_or_insert_with(NodeStatus::default);
        status.addresses = Some(
            node_ip
                .map(|ip| NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.to_string(),
                })
                .into_iter()
                .chain([NodeAddress {
                    type_: "Hostname".into(),
                    address: name,
                }])
                .collect(),
        );
        status.daemon_endpoints = Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(config.port),
            }),
        });
        Self {
            client,
            node,
            register: config.register_node,
            lease_duration: Duration::from_secs(u64::from(config.node_lease_duration_seconds)),
            update_every: config.node_status_update_frequency,
            report_every: config.node_status_report_frequency,
            root_dir: config.root_dir.clone(),
        }
    }

    pub fn spawn(
        self,
        tasks: &mut CoreTasks,
        runtime: Arc<CriClient>,
        view: &AgentView,
        shutdown: &CancellationToken,
    ) {
        let pleg = view.pleg.clone();
        let name = self.node.metadata.name.clone().unwrap_or_default();
        tasks.spawn(
            "pod status",
            report_pod_statuses(
                PodApi::new(&self.client),
                view.statuses.clone(),
                view.mirror_pods.clone(),
                shutdown.clone(),
            ),
        );
        tasks.spawn(
            "events",
            send_events(
                EventApi::new(&self.client),
                view.events.subscribe(),
                name.clone(),
                shutdown.clone(),
            ),
        );
        tasks.spawn(
            "mirror pods",
            keep_mirror_pods(
                PodApi::new(&self.client),
                NodeApi::new(&self.client),
                name.clone(),
                view.mirror_pods.clone(),
                shutdown.clone(),
            ),
        );
        tasks.spawn(
            "node lease",
            lease::run(
                self.client.clone(),
                LeaseSettings::new(name, self.lease_duration),
                shutdown.clone(),
            ),
        );
        if self.register {
            tasks.spawn(
                "node status",
                self.keep_status(runtime, pleg, view.events.clone(), shutdown.clone()),
            );
        }
    }

    /// Registers the Node, then keeps its status.
    async fn keep_status(
        self,
        runtime: Arc<CriClient>,
        pleg: Arc<Heartbeat>,
        events: Arc<Recorder>,
        shutdown: CancellationToken,
    ) {
        let api = NodeApi::new(&self.client);
        let name = self.node.metadata.name.clone().unwrap_or_default();
        // The kubelet's node events: its start, then each condition's news
        // (all of them first, as its status setters start from nothing).
        let node_events = |before: Option<&NodeStatus>, now: &NodeStatus| {
            let conditions =
                |s: Option<&NodeStatus>| s.and_then(|s| s.conditions.clone()).unwrap_or_default();
            for reason in node_status::transitions(&conditions(before), &conditions(Some(now))) {
                let message = format!("Node {name} status is now: {reason}");
                events.record_node(&name, EventType::Normal, reason, message);
            }
        };
        events.record_node(
            &name,
            EventType::Normal,
            "Starting",
            "Starting kubelet.".into(),
        );
        let mut initial = self.node.clone();
        let health = node_health(&runtime, &pleg).await;
        let version = runtime_version(&runtime).await;
        let first = self.status(&self.node, &health, &version, None);
        node_events(None, &first);
        initial.status = Some(first);
        let Some(registered) = api.register(&initial, &shutdown).await else {
            return;
        };
        let mut reported: Option<(NodeStatus, Instant)> = None;
        let mut server = registered.status;
        let mut ticks = tokio::time::interval(self.update_every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let health = node_health(&runtime, &pleg).await;
            let version = runtime_version(&runtime).await;
            let previous = reported.as_ref().map(|(s, _)| s).or(server.as_ref());
            let status = self.status(&self.node, &health, &version, previous);
            node_events(previous, &status);
            let due = match &reported {
                None => true,
                Some((last, at)) => {
                    node_status::changed(last, &status) || at.elapsed() >= self.report_every
                }
            };
            if !due {
                continue;
            }
            match api.patch_status(&name, server.as_ref(), &status).await {
                Ok(node) => {
                    server = node.status;
                    reported = Some((status, Instant::now()));
                }
                Err(e) => tracing::warn!(error = %e, "error updating the node status; will retry"),
            }
        }
    }

    /// The Node's status now: the static facts, the runtime's version and
    /// the conditions (transition times from `previous`).
    fn status(
        &self,
        node: &Node,
        health: &NodeHealth,
        runtime_version: &str,
        previous: Option<&NodeStatus>,
    ) -> NodeStatus {
        let mut status = node.status.clone().unwrap_or_default();
        let now = now();
        let before = previous
            .and_then(|p| p.conditions.as_deref())
            .unwrap_or_default();
        status.conditions = Some(node_status::conditions(
            before,
            health,
            node_facts::pressure(&self.root_dir),
            &now,
        ));
        status.node_info = Some(node_facts::system_info(runtime_version));
        status
    }
}

async fn node_health(runtime: &CriClient, pleg: &Heartbeat) -> NodeHealth {
    NodeHealth {
        runtime: Some(runtime.status().await.map_err(|e| e.to_string())),
        pleg: pleg.check("pleg", RELIST_THRESHOLD),
    }
}

/// `containerd://1.6.20`, as the kubelet reports the runtime.
async fn runtime_version(runtime: &CriClient) -> String {
    match runtime.version().await {
        Ok(v) => format!("{}://{}", v.runtime_name, v.runtime_version),
        Err(_) => String::new(),
    }
}

fn now() -> Time {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = i64::try_from(since.as_secs()).unwrap_or(0);
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_default())
}

/// Every status is looked at again this often, changed or not (the
/// kubelet's status manager syncs all pods every 10 s).
const STATUS_RESYNC: Duration = Duration::from_secs(10);
const STATUS_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// The back-off of a task's rounds against the API server: 1 s doubling to
/// 30 s while rounds fail, the resync period once one succeeds.
struct Retry(Duration);

impl Retry {
    fn new() -> Self {
        Self(STATUS_RETRY.0)
    }

    /// The delay after a failed round (then the next is longer).
    fn failed(&mut self) -> Duration {
        let delay = self.0;
        self.0 = (self.0 * 2).min(STATUS_RETRY.1);
        delay
    }

    /// What the next round waits for at most after this one.
    fn after(&mut self, failed: bool) -> Duration {
        if failed {
            self.failed()
        } else {
            self.0 = STATUS_RETRY.0;
            STATUS_RESYNC
        }
    }
}

/// The API server's pods (a static pod's status goes to its mirror pod).
fn from_api(pod: &Pod) -> bool {
    !pod.is_static()
}

/// A pod marked for deletion whose containers have all stopped and whose
/// sandbox is down (the kubelet's canBeDeleted).
fn can_be_deleted(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let stopped = status
        .init_container_statuses
        .iter()
        .chain(status.container_statuses.iter())
        .flatten()
        .all(|c| c.state.as_ref().is_none_or(|s| s.running.is_none()));
    let sandbox_down = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "PodReadyToStartContainers" && c.status == "False");
    pod.metadata.deletion_timestamp.is_some() && stopped && sandbox_down
}

/// Where a pod's status goes: the pod itself, or for a static pod its
/// mirror (none until it has one): namespace, name and the UID written to.
fn status_target<'a>(pod: &'a Pod, mirrors: &'a MirrorSet) -> Option<(&'a str, &'a str, &'a str)> {
    let target = if from_api(pod) {
        pod
    } else {
        mirrors.mirror_of(pod)?
    };
    Some((
        target.metadata.namespace.as_deref()?,
        target.metadata.name.as_deref()?,
        target.metadata.uid.as_deref()?,
    ))
}

/// Sends the pods' statuses when they change (a static pod's to its
/// mirror): one task, so a slow or absent API server never holds up the
/// sync loop; a failed round is retried with back-off. A status the server
/// already holds (after a restart, say) is not written again.
async fn report_pod_statuses(
    api: PodApi,
    statuses: Arc<PodStatuses>,
    mirrors: Arc<MirrorPods>,
    shutdown: CancellationToken,
) {
    let mut changed = statuses.subscribe();
    let mut mirrors_changed = mirrors.subscribe();
    // The UID written to → what was written.
    let mut sent: HashMap<String, PodStatus> = HashMap::new();
    let mut retry = Retry::new();
    let mut failed = false;
    loop {
        let wait = retry.after(failed);
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = changed.changed(), if !failed => {}
            _ = mirrors_changed.changed(), if !failed => {}
            () = tokio::time::sleep(wait) => {}
        }
        let pods = statuses.list();
        let mirror_set = mirrors.current();
        let targets: Vec<_> = pods
            .iter()
            .filter_map(|pod| Some((pod, status_target(pod, &mirror_set)?, pod.status.as_ref()?)))
            .collect();
        sent.retain(|uid, _| targets.iter().any(|(_, (_, _, target), _)| target == uid));
        failed = false;
        for (pod, (namespace, name, uid), status) in targets {
            if sent.get(uid) == Some(status) {
                continue;
            }
            let deleting = from_api(pod) && can_be_deleted(pod);
            if !sent.contains_key(uid) && !deleting {
                let server = if from_api(pod) {
                    statuses.server_status(&pod.pod_uid())
                } else {
                    mirror_set.mirror_of(pod).and_then(|m| m.status.clone())
                };
                if server.is_some_and(|server| pods::status_written(status, &server)) {
                    sent.insert(uid.to_owned(), status.clone());
                    continue;
                }
            }
            match api.patch_status(namespace, name, uid, status).await {
                Ok(()) if deleting => {
                    // The kubelet's last word on a deleted pod: its final
                    // status, then the delete that removes it from the API.
                    match api.delete(namespace, name, uid).await {
                        Ok(()) => tracing::info!(pod = %name, "pod deleted from the API server"),
                        Err(e) if e.is_not_found() || e.is_conflict() => {}
                        Err(e) => {
                            tracing::warn!(pod = %name, error = %e, "failed to delete the pod; retrying");
                            failed = true;
                            break;
                        }
                    }
                    sent.insert(uid.to_owned(), status.clone());
                }
                Ok(()) => {
                    sent.insert(uid.to_owned(), status.clone());
                }
                // Gone, or replaced by a namesake: nothing to write to.
                Err(e) if e.is_not_found() || e.is_conflict() => {
                    tracing::debug!(pod = %name, error = %e, "pod status not written");
                    sent.insert(uid.to_owned(), status.clone());
                }
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "failed to update the pod's status; retrying");
                    failed = true;
                    // The server is unwell: the rest waits for the retry too.
                    break;
                }
            }
        }
    }
}

/// The Node's UID, once it is registered (mirror pods are owned by it).
async fn node_uid(nodes: &NodeApi, name: &str, shutdown: &CancellationToken) -> Option<String> {
    let mut retry = Retry::new();
    loop {
        match nodes.get(name).await {
            Ok(node) if node.metadata.uid.is_some() => return node.metadata.uid,
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not read the Node for its mirror pods; retrying")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(retry.failed()) => {}
        }
    }
}

/// Keeps a mirror pod for every static pod (the kubelet's mirror client):
/// created when missing, replaced when being deleted or stale, deleted once
/// its static pod is gone. Retried with back-off while the server is unwell.
async fn keep_mirror_pods(
    api: PodApi,
    nodes: NodeApi,
    node_name: String,
    mirrors: Arc<MirrorPods>,
    shutdown: CancellationToken,
) {
    let Some(node_uid) = node_uid(&nodes, &node_name, &shutdown).await else {
        return;
    };
    let mut changed = mirrors.subscribe();
    // Full name → config hash of the mirrors created and not yet seen back
    // through the API source: not created twice meanwhile.
    let mut created: HashMap<String, String> = HashMap::new();
    let mut retry = Retry::new();
    loop {
        let set = mirrors.current();
        created.retain(|name, _| !set.mirrors.contains_key(name));
        let mut failed = false;
        for change in set.changes() {
            let result = match &change {
                MirrorChange::Create(pod) => {
                    let hash = pod.annotation(CONFIG_HASH).unwrap_or_default();
                    if created.get(&pod.full_name()).map(String::as_str) == Some(hash) {
                        continue;
                    }
                    match api.create(&mirror_pod(pod, &node_name, &node_uid)).await {
                        Ok(_) => {
                            tracing::info!(pod = %pod.full_name(), "mirror pod created");
                            created.insert(pod.full_name(), hash.to_owned());
                            Ok(())
                        }
                        // Its deletion is still under way, or it was made
                        // before a restart: the API source shows which.
                        Err(e) if e.is_already_exists() => Ok(()),
                        Err(e) => Err(e),
                    }
                }
                MirrorChange::Delete(mirror) => {
                    let (namespace, name) = (mirror.namespace_or_default(), mirror.name_str());
                    match api.delete(namespace, name, mirror.uid_str()).await {
                        Ok(()) => {
                            tracing::info!(pod = %mirror.full_name(), "mirror pod deleted");
                            Ok(())
                        }
                        Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "failed to update a mirror pod; retrying");
                failed = true;
                break;
            }
        }
        let wait = retry.after(failed);
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = changed.changed(), if !failed => {}
            () = tokio::time::sleep(wait) => created.clear(),
        }
    }
}

/// How often, and how far apart, an event write that got no answer is
/// tried (client-go's recorder: 12 times, 10 s apart).
const EVENT_TRIES: usize = 12;
const EVENT_RETRY: Duration = Duration::from_secs(10);

/// Sends the recorder's events to the API server, correlated as client-go's
/// recorder does. A write that got no answer is tried again; one the server
/// refused is not. Events that pile up meanwhile beyond the broadcast queue
/// are dropped, with a warning.
async fn send_events(
    api: EventApi,
    mut recorded: broadcast::Receiver<Event>,
    node: String,
    shutdown: CancellationToken,
) {
    let mut correlator = Correlator::default();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            received = recorded.recv() => match received {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!("{missed} events not sent to the API server: it was too slow");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        let Some(write) = correlator.correlate(events::from_node(event, &node), Instant::now())
        else {
            continue;
        };
        for attempt in 1..=EVENT_TRIES {
            match api.write(&write).await {
                Ok(()) => break,
                Err(e @ wasmlet_kube::KubeError::Unreachable(_)) if attempt < EVENT_TRIES => {
                    tracing::debug!(error = %e, "event not written; trying again in {EVENT_RETRY:?}");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(EVENT_RETRY) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event not written; dropped");
                    break;
                }
            }
        }
    }
}
