//! The node's Lease in `kube-node-lease`, kept as the kubelet's lease
//! controller keeps it: ensured (created, owned by the Node) with back-off,
//! then renewed every `renew_interval` from the last lease written, so a
//! renewal is one PUT; a 409 re-reads the lease and tries again, up to five
//! times. It runs in its own task: nothing else the agent does delays it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

use crate::{ApiClient, KubeError, bounded};

pub const NAMESPACE: &str = "kube-node-lease";
/// The kubelet's `maxUpdateRetries`.
const MAX_UPDATE_RETRIES: usize = 5;
/// The kubelet's back-off while the lease cannot be ensured.
const ENSURE_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(7));

#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub node_name: String,
    /// `nodeLeaseDurationSeconds` (40 s).
    pub duration: Duration,
    /// A quarter of the duration, as the kubelet's.
    pub renew_interval: Duration,
}

impl LeaseSettings {
    pub fn new(node_name: impl Into<String>, duration: Duration) -> Self {
        Self {
            node_name: node_name.into(),
            duration,
            renew_interval: duration / 4,
        }
    }
}

/// Keeps the lease until `shutdown`.
pub async fn run(client: ApiClient, settings: LeaseSettings, shutdown: CancellationToken) {
    let leases: Api<Lease> = Api::namespaced(client.kube(), NAMESPACE);
    let nodes: Api<Node> = Api::all(client.kube());
    let mut latest: Option<Lease> = None;
    loop {
        let base = match latest.take() {
            Some(lease) => Some(lease),
            None => {
                shutdown
                    .run_until_cancelled(ensure(&leases, &nodes, &settings))
                    .await
            }
        };
        let Some(base) = base else { return };
        latest = renew(&leases, &nodes, &settings, base).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(settings.renew_interval) => {}
        }
    }
}

/// The lease, read or created, retried with back-off until it is there.
async fn ensure(leases: &Api<Lease>, nodes: &Api<Node>, settings: &LeaseSettings) -> Lease {
    let mut delay = ENSURE_BACKOFF.0;
    loop {
        match ensure_once(leases, nodes, settings).await {
            Ok(lease) => return lease,
            Err(e) => {
                tracing::warn!(error = %e, node = %settings.node_name, "the node lease could not be ensured; retrying in {delay:?}");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(ENSURE_BACKOFF.1);
    }
}

async fn ensure_once(
    leases: &Api<Lease>,
    nodes: &Api<Node>,
    settings: &LeaseSettings,
) -> Result<Lease, KubeError> {
    match bounded(leases.get(&settings.node_name)).await {
        Ok(lease) => Ok(lease),
        Err(e) if e.is_not_found() => {
            let lease = fresh(&settings.node_name, settings, owner(nodes, settings).await);
            bounded(leases.create(&PostParams::default(), &lease)).await
        }
        Err(e) => Err(e),
    }
}

/// The Node as the lease's owner, if it is registered (so the lease goes
/// when the Node is deleted).
async fn owner(nodes: &Api<Node>, settings: &LeaseSettings) -> Option<OwnerReference> {
    let node = bounded(nodes.get(&settings.node_name)).await.ok()?;
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: settings.node_name.clone(),
        uid: node.metadata.uid?,
        ..OwnerReference::default()
    })
}

fn fresh(name: &str, settings: &LeaseSettings, owner: Option<OwnerReference>) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NAMESPACE.into()),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_owned()),
            lease_duration_seconds: i32::try_from(settings.duration.as_secs()).ok(),
            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..LeaseSpec::default()
        }),
    }
}

/// One renewal: the lease written now, or `None` to ensure it again.
async fn renew(
    leases: &Api<Lease>,
    nodes: &Api<Node>,
    settings: &LeaseSettings,
    mut base: Lease,
) -> Option<Lease> {
    for attempt in 1..=MAX_UPDATE_RETRIES {
        let mut lease = base.clone();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(settings.node_name.clone());
        spec.lease_duration_seconds = i32::try_from(settings.duration.as_secs()).ok();
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        if lease
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(Vec::is_empty)
        {
            lease.metadata.owner_references = owner(nodes, settings).await.map(|o| vec![o]);
        }
        match bounded(leases.replace(&settings.node_name, &PostParams::default(), &lease)).await {
            Ok(written) => return Some(written),
            Err(e) if e.is_conflict() => {
                tracing::debug!(attempt, "the node lease changed under us; reading it again");
                match bounded(leases.get(&settings.node_name)).await {
                    Ok(current) => base = current,
                    Err(e) => {
                        tracing::warn!(error = %e, "failed to read the node lease");
                        return None;
                    }
                }
            }
            Err(e) if e.is_not_found() => return None,
            Err(e) => {
                tracing::warn!(attempt, error = %e, "failed to update the node lease");
            }
        }
    }
    tracing::error!(
        "failed {MAX_UPDATE_RETRIES} attempts to update the node lease; trying again in {:?}",
        settings.renew_interval
    );
    Some(base)
}
