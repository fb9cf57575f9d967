//! Lists and watches of core v1 resources as JSON, for the plugins' granted
//! `kube-api` reads: the agent never interprets these objects, it passes them on.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use kube::Api;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, WatchEvent, WatchParams,
};

use crate::{ApiClient, KubeError, bounded};

/// The resources a plugin may read, by plural: (kind, namespaced).
const RESOURCES: [(&str, &str, bool); 5] = [
    ("pods", "Pod", true),
    ("configmaps", "ConfigMap", true),
    ("secrets", "Secret", true),
    ("services", "Service", true),
    ("nodes", "Node", false),
];

/// How long the server keeps one watch open: the kubelet's reflectors ask
/// for 5–10 minutes; a watch that ends is simply watched again.
const WATCH_TIMEOUT_SECONDS: u32 = 290;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub resource: String,
    pub namespace: Option<String>,
    pub field_selector: Option<String>,
    pub label_selector: Option<String>,
}

/// Why a watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEnd {
    /// 410 Gone: the resourceVersion is too old; list again.
    Gone,
    Closed(String),
}

type Events = Pin<Box<dyn Stream<Item = Result<WatchEvent<DynamicObject>, kube::Error>> + Send>>;

/// An open watch.
pub struct Watch(Events);

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

impl Watch {
    /// The next event: its type as the API names it (`ADDED`, `MODIFIED`,
    /// `DELETED`, `BOOKMARK`) and the object's JSON (a bookmark's carries
    /// only `metadata.resourceVersion`).
    pub async fn next(&mut self) -> Result<(&'static str, String), WatchEnd> {
        let json = |o: &DynamicObject| serde_json::to_string(o).unwrap_or_default();
        match self.0.next().await {
            None => Err(WatchEnd::Closed("the server ended the watch".into())),
            Some(Err(e)) => Err(WatchEnd::Closed(e.to_string())),
            Some(Ok(WatchEvent::Added(o))) => Ok(("ADDED", json(&o))),
            Some(Ok(WatchEvent::Modified(o))) => Ok(("MODIFIED", json(&o))),
            Some(Ok(WatchEvent::Deleted(o))) => Ok(("DELETED", json(&o))),
            Some(Ok(WatchEvent::Bookmark(b))) => Ok((
                "BOOKMARK",
                serde_json::json!({"metadata": {"resourceVersion": b.metadata.resource_version}})
                    .to_string(),
            )),
            Some(Ok(WatchEvent::Error(status))) if status.code == 410 => Err(WatchEnd::Gone),
            Some(Ok(WatchEvent::Error(status))) => Err(WatchEnd::Closed(format!(
                "{} ({}): {}",
                status.reason, status.code, status.message
            ))),
        }
    }
}

/// Reads the API for plugins.
#[derive(Debug, Clone)]
pub struct Reader {
    client: ApiClient,
}

impl Reader {
    pub fn new(client: &ApiClient) -> Self {
        Self {
            client: client.clone(),
        }
    }

    fn api(&self, query: &Query) -> Result<Api<DynamicObject>, KubeError> {
        let (plural, kind, namespaced) = RESOURCES
            .iter()
            .find(|(plural, _, _)| *plural == query.resource)
            .ok_or_else(|| KubeError::Api {
                code: 404,
                reason: "NotFound".into(),
                message: format!("wasmlet reads no resource {:?}", query.resource),
            })?;
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", kind), plural);
        Ok(match (&query.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.kube(), ns, &resource),
            _ => Api::all_with(self.client.kube(), &resource),
        })
    }

    /// The list's resourceVersion and its items' JSON.
    pub async fn list(&self, query: &Query) -> Result<(String, Vec<String>), KubeError> {
        let params = ListParams {
            field_selector: query.field_selector.clone(),
            label_selector: query.label_selector.clone(),
            ..ListParams::default()
        };
        let list = bounded(self.api(query)?.list(&params)).await?;
        let items = list
            .items
            .iter()
            .map(|o| serde_json::to_string(o).unwrap_or_default())
            .collect();
        Ok((list.metadata.resource_version.unwrap_or_default(), items))
    }

    /// Changes after `resource_version`, with bookmarks.
    pub async fn watch(&self, query: &Query, resource_version: &str) -> Result<Watch, KubeError> {
        let mut params = WatchParams::default().timeout(WATCH_TIMEOUT_SECONDS);
        params.field_selector = query.field_selector.clone();
        params.label_selector = query.label_selector.clone();
        params.bookmarks = true;
        let events = bounded(self.api(query)?.watch(&params, resource_version)).await?;
        Ok(Watch(Box::pin(events)))
    }
}
