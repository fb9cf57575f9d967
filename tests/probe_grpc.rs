//! The probe-grpc plugin against a real gRPC health server (tonic-health):
//! grpc.health.v1 Check with and without a service name.

use std::sync::Arc;
use std::time::Duration;

use wasmlet_plugin_host::types::{GrpcAction, Handler};
use wasmlet_plugin_host::{
    CallTarget, ContainerCall, HostContext, Outcome, Plugin, PluginEngine, PluginMetrics,
};
use wasmlet_tests::daemon::repo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_probes_read_the_health_status() {
    let port = wasmlet_tests::grpc_health::serve().await;
    let engine = Arc::new(PluginEngine::new(None).expect("engine"));
    let host = Arc::new(HostContext::default());
    let plugin = Plugin::load(
        &engine,
        &host,
        &PluginMetrics::default(),
        &repo().join("target/plugins/probe-grpc.toml"),
        None,
    )
    .await
    .expect("load probe-grpc (scripts/build-plugins.sh builds it)");
    let grant = CallTarget {
        pod_uid: "uid-db".into(),
        container_id: "c".into(),
        pod_ip: Some([127, 0, 0, 1].into()),
        address: Some([127, 0, 0, 1].into()),
    };
    let target = ContainerCall::new(grant, "db", "default", "db", &[]).expect("a target");
    let check = |service: Option<&str>, port: u16| {
        let handler = Handler::Grpc(GrpcAction {
            port,
            service: service.map(Into::into),
        });
        let (plugin, target) = (&plugin, &target);
        async move {
            plugin
                .check(target, &handler, Duration::from_secs(2))
                .await
                .expect("the call itself works")
        }
    };
    assert_eq!(check(None, port).await.outcome, Outcome::Success);
    assert_eq!(check(Some("db"), port).await.outcome, Outcome::Success);
    let down = check(Some("down"), port).await;
    assert_eq!(down.outcome, Outcome::Failure);
    assert!(down.message.contains("NOT_SERVING"), "{}", down.message);
    let unknown = check(Some("nope"), port).await;
    assert_eq!(unknown.outcome, Outcome::Failure, "{}", unknown.message);
    assert!(
        unknown.message.contains("rpc error: code = NotFound"),
        "the kubelet's message: {}",
        unknown.message
    );
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address").port()
    };
    let refused = check(None, closed).await;
    assert_eq!(refused.outcome, Outcome::Failure);
    assert!(
        refused.message.contains("failed to connect service")
            && refused.message.contains("connection refused"),
        "{}",
        refused.message
    );
}
