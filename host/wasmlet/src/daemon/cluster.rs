//! Cluster mode, when a kubeconfig is configured: the Node registered and
//! its status kept (computed every `nodeStatusUpdateFrequency`, patched when
//! it changed or every `nodeStatusReportFrequency`), and the node Lease
//! renewed in a task of its own.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeDaemonEndpoints, NodeStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmlet_agent::health::Heartbeat;
use wasmlet_agent::node_status::{self, NodeHealth};
use wasmlet_agent::pleg::RELIST_THRESHOLD;
use wasmlet_core::RuntimeInfo;
use wasmlet_cri::CriClient;
use wasmlet_kube::ApiClient;
use wasmlet_kube::lease::{self, LeaseSettings};
use wasmlet_kube::node::NodeApi;
use wasmlet_kube::reader::{self, Query, Reader};
use wasmlet_plugin_host::{ApiEventKind, ApiList, ApiQuery, ApiReader, ApiWatch, WatchEnd};

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
        pleg: Arc<Heartbeat>,
        shutdown: &CancellationToken,
    ) {
        let name = self.node.metadata.name.clone().unwrap_or_default();
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
                self.keep_status(runtime, pleg, shutdown.clone()),
            );
        }
    }

    /// Registers the Node, then keeps its status.
    async fn keep_status(
        self,
        runtime: Arc<CriClient>,
        pleg: Arc<Heartbeat>,
        shutdown: CancellationToken,
    ) {
        let api = NodeApi::new(&self.client);
        let name = self.node.metadata.name.clone().unwrap_or_default();
        let mut initial = self.node.clone();
        let health = node_health(&runtime, &pleg).await;
        let version = runtime_version(&runtime).await;
        let first = self.status(&self.node, &health, &version, None);
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
