//! `wasmlet:plugin/kube-api`: lists and watches of the Kubernetes API, made
//! by the host with the node's credentials, for what the plugin is granted
//! (a resource, a namespace, the field selector it must use). Waiting for a
//! watch's next event is not working: it does not count against the deadline.

use std::time::{Duration, Instant};

use wasmtime::component::Resource;

use crate::bindings::{kube_api, types};
use crate::capability::{ApiEventKind, ApiQuery, WatchEnd};
use crate::imports::changes::MAX_WAIT;
use crate::state::CallState;
use crate::watch_stream::HostWatch;

/// Largest list a guest gets (JSON bytes, all items): a node's pods are far
/// below it, and the guest's memory cap holds below anyway.
const MAX_LIST_BYTES: usize = 64 << 20;
/// Largest single object: etcd's own limit is 1.5 MiB.
const MAX_OBJECT_BYTES: usize = 4 << 20;

impl CallState {
    /// The query, if the plugin is granted it and the node is in a cluster.
    fn api_query(
        &self,
        q: kube_api::Query,
    ) -> Result<(std::sync::Arc<dyn crate::capability::ApiReader>, ApiQuery), types::Error> {
        let granted = self.plugin.grant.kube_api.iter().any(|a| {
            a.allows(
                &q.resource,
                q.namespace.as_deref(),
                q.field_selector.as_deref(),
            )
        });
        let described = format!(
            "kube-api {}{}{}",
            q.resource,
            q.namespace
                .as_deref()
                .map(|n| format!(" in {n}"))
                .unwrap_or_default(),
            q.field_selector
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
        );
        if !granted {
            return Err(self.grants.refuse(format!("{described} is not granted")));
        }
        let Some(reader) = self.host.kube.clone() else {
            return Err(self
                .grants
                .refuse(format!("{described}: the node is not joined to a cluster")));
        };
        Ok((
            reader,
            ApiQuery {
                resource: q.resource,
                namespace: q.namespace,
                field_selector: q.field_selector,
                label_selector: q.label_selector,
            },
        ))
    }
}

impl kube_api::Host for CallState {
    async fn list(&mut self, q: kube_api::Query) -> Result<kube_api::ObjectList, types::Error> {
        let (reader, query) = self.api_query(q)?;
        let list = reader.list(&query).await.map_err(types::Error::Failed)?;
        let bytes: usize = list.items.iter().map(String::len).sum();
        if bytes > MAX_LIST_BYTES || list.items.iter().any(|i| i.len() > MAX_OBJECT_BYTES) {
            return Err(types::Error::Failed(format!(
                "the list of {} is {bytes} bytes, more than a plugin gets ({MAX_LIST_BYTES})",
                query.resource
            )));
        }
        Ok(kube_api::ObjectList {
            resource_version: list.resource_version,
            items: list.items,
        })
    }

    async fn watch(
        &mut self,
        q: kube_api::Query,
        resource_version: String,
    ) -> Result<Resource<HostWatch>, types::Error> {
        let (reader, query) = self.api_query(q)?;
        let watch = reader
            .watch(&query, &resource_version)
            .await
            .map_err(types::Error::Failed)?;
        self.table
            .push(HostWatch(watch))
            .map_err(|e| types::Error::Failed(format!("watch: {e}")))
    }
}

impl kube_api::HostWatchStream for CallState {
    async fn next(
        &mut self,
        watch: Resource<HostWatch>,
        timeout_ms: u32,
    ) -> Result<Option<kube_api::Event>, kube_api::WatchEnd> {
        let timeout = Duration::from_millis(u64::from(timeout_ms)).min(MAX_WAIT);
        let start = Instant::now();
        let Ok(HostWatch(inner)) = self.table.get_mut(&watch) else {
            return Err(kube_api::WatchEnd::Closed("no such watch".into()));
        };
        let next = {
            let _waiting = self.clock.waiting();
            tokio::time::timeout(timeout, inner.next()).await
        };
        // Waiting is not working: it does not count against the deadline.
        self.deadline += start.elapsed();
        match next {
            Err(_) => Ok(None),
            Ok(Err(WatchEnd::Gone)) => Err(kube_api::WatchEnd::Gone),
            Ok(Err(WatchEnd::Closed(why))) => Err(kube_api::WatchEnd::Closed(why)),
            Ok(Ok((_, object))) if object.len() > MAX_OBJECT_BYTES => Err(
                kube_api::WatchEnd::Closed(format!("an object of {} bytes", object.len())),
            ),
            Ok(Ok((kind, object))) => Ok(Some(kube_api::Event {
                kind: match kind {
                    ApiEventKind::Added => kube_api::EventKind::Added,
                    ApiEventKind::Modified => kube_api::EventKind::Modified,
                    ApiEventKind::Deleted => kube_api::EventKind::Deleted,
                    ApiEventKind::Bookmark => kube_api::EventKind::Bookmark,
                },
                object,
            })),
        }
    }

    async fn drop(&mut self, watch: Resource<HostWatch>) -> wasmtime::Result<()> {
        self.table.delete(watch)?;
        Ok(())
    }
}
