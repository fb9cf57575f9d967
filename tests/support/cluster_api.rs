//! One face for the API server of the cluster-mode tests: the stand-in, or
//! a real cluster named by `KUBECONFIG`, so the same scenarios run against
//! both (as kube-rs runs its e2e tests: the real-cluster ones are ignored
//! unless asked for with `--ignored`). Faults and the request log exist
//! only on the stand-in.

use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::apiserver::{ApiServer, PatchType};

pub trait ClusterApi {
    fn create(&self, object: Value) -> Result<Value, String>;
    fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value>;
    /// Objects of `kind`, in every namespace.
    fn list(&self, kind: &str) -> Vec<Value>;
    fn patch(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        how: PatchType,
        patch: &Value,
        status: bool,
    ) -> Result<Value, String>;
    fn delete(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        options: &Value,
    ) -> Result<Value, String>;
    /// A kubeconfig for the agent.
    fn write_kubeconfig(&self, path: &Path);
    /// Where a scenario's API objects live: `default` on the stand-in (one
    /// per test), a namespace of its own on a real cluster.
    fn namespace(&self) -> &str;
    /// The stand-in, for what only it does (faults, the request log).
    fn stand_in(&self) -> Option<&ApiServer> {
        None
    }
}

impl ClusterApi for ApiServer {
    fn create(&self, object: Value) -> Result<Value, String> {
        ApiServer::create(self, object).map_err(|f| format!("{f:?}"))
    }

    fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        ApiServer::get(self, kind, namespace, name)
    }

    fn list(&self, kind: &str) -> Vec<Value> {
        ApiServer::list(self, kind)
    }

    fn patch(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        how: PatchType,
        patch: &Value,
        status: bool,
    ) -> Result<Value, String> {
        ApiServer::patch(self, kind, namespace, name, how, patch, status)
            .map_err(|f| format!("{f:?}"))
    }

    fn delete(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        options: &Value,
    ) -> Result<Value, String> {
        ApiServer::delete(self, kind, namespace, name, options).map_err(|f| format!("{f:?}"))
    }

    fn write_kubeconfig(&self, path: &Path) {
        ApiServer::write_kubeconfig(self, path);
    }

    fn namespace(&self) -> &str {
        "default"
    }

    fn stand_in(&self) -> Option<&ApiServer> {
        Some(self)
    }
}

/// A real cluster, from `KUBECONFIG`, whose user may do what a node does
/// and make namespaces (an admin's, on a test cluster). Its calls block
/// the test on a runtime of their own.
pub struct RealCluster {
    kubeconfig: std::path::PathBuf,
    /// Taken by `drop`, which ends it in the background (a runtime may
    /// not be dropped in the test's async context).
    runtime: Option<tokio::runtime::Runtime>,
    client: Client,
    namespace: String,
}

impl std::fmt::Debug for RealCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealCluster")
            .field("kubeconfig", &self.kubeconfig)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The resource of each kind the scenarios use, and whether it is namespaced.
fn resource(kind: &str) -> (ApiResource, bool) {
    let (group, version, plural, namespaced) = match kind {
        "Pod" => ("", "v1", "pods", true),
        "Node" => ("", "v1", "nodes", false),
        "Event" => ("", "v1", "events", true),
        "ConfigMap" => ("", "v1", "configmaps", true),
        "Secret" => ("", "v1", "secrets", true),
        "ServiceAccount" => ("", "v1", "serviceaccounts", true),
        "Service" => ("", "v1", "services", true),
        "Lease" => ("coordination.k8s.io", "v1", "leases", true),
        other => panic!("the scenarios use no kind {other}"),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    (ApiResource::from_gvk_with_plural(&gvk, plural), namespaced)
}

impl RealCluster {
    /// The cluster `KUBECONFIG` names, with a namespace for this scenario.
    pub fn from_env() -> Self {
        let kubeconfig = std::env::var_os("KUBECONFIG")
            .map(std::path::PathBuf::from)
            .expect("these tests run against the cluster KUBECONFIG names: set it");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let client = Self::on(&runtime, Client::try_default()).expect("a client for KUBECONFIG");
        let namespace = crate::unique("wasmlet-e2e").to_lowercase();
        let cluster = Self {
            kubeconfig,
            runtime: Some(runtime),
            client,
            namespace,
        };
        let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
        let made =
            serde_json::from_value::<Namespace>(json!({"metadata": {"name": cluster.namespace}}))
                .expect("a namespace");
        cluster
            .call(namespaces.create(&PostParams::default(), &made))
            .expect("the scenario's namespace");
        cluster
    }

    /// Runs `call` to its end on `runtime`, from a thread of its own (the
    /// test's runtime cannot block on another).
    fn on<T: Send>(runtime: &tokio::runtime::Runtime, call: impl Future<Output = T> + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(call))
                .join()
                .expect("the call ran")
        })
    }

    fn call<T: Send>(&self, call: impl Future<Output = T> + Send) -> T {
        let runtime = self.runtime.as_ref().expect("the cluster's runtime");
        Self::on(runtime, call)
    }

    fn api(&self, kind: &str, namespace: &str) -> Api<DynamicObject> {
        let (resource, namespaced) = resource(kind);
        if namespaced && !namespace.is_empty() {
            Api::namespaced_with(self.client.clone(), namespace, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        }
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = self.call(namespaces.delete(&self.namespace, &DeleteParams::default()));
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or_default()
}

impl ClusterApi for RealCluster {
    fn create(&self, object: Value) -> Result<Value, String> {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (resource, _) = resource(&kind);
        let mut object = object;
        object["apiVersion"] = json!(resource.api_version);
        let object: DynamicObject = serde_json::from_value(object).map_err(|e| e.to_string())?;
        let api = self.api(&kind, &namespace);
        self.call(api.create(&PostParams::default(), &object))
            .map(|o| to_value(&o))
            .map_err(|e| e.to_string())
    }

    fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let api = self.api(kind, namespace);
        self.call(api.get_opt(name))
            .ok()
            .flatten()
            .map(|o| to_value(&o))
    }

    fn list(&self, kind: &str) -> Vec<Value> {
        let api = self.api(kind, "");
        self.call(api.list(&ListParams::default()))
            .map(|l| l.items.iter().map(to_value).collect())
            .unwrap_or_default()
    }

    fn patch(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        how: PatchType,
        patch: &Value,
        status: bool,
    ) -> Result<Value, String> {
        let api = self.api(kind, namespace);
        let patch = match how {
            PatchType::Merge => Patch::Merge(patch.clone()),
            PatchType::Strategic => Patch::Strategic(patch.clone()),
        };
        let params = PatchParams::default();
        let done = if status {
            self.call(api.patch_status(name, &params, &patch))
        } else {
            self.call(api.patch(name, &params, &patch))
        };
        done.map(|o| to_value(&o)).map_err(|e| e.to_string())
    }

    fn delete(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        options: &Value,
    ) -> Result<Value, String> {
        let api = self.api(kind, namespace);
        let params = DeleteParams {
            grace_period_seconds: options["gracePeriodSeconds"]
                .as_u64()
                .and_then(|g| u32::try_from(g).ok()),
            ..DeleteParams::default()
        };
        self.call(api.delete(name, &params))
            .map(|done| done.either(|o| to_value(&o), |_status| json!({})))
            .map_err(|e| e.to_string())
    }

    fn write_kubeconfig(&self, path: &Path) {
        std::fs::copy(&self.kubeconfig, path).expect("the kubeconfig copied");
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }
}
