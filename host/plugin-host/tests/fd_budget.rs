//! The plugins' share of the agent's file descriptors, in a process of its
//! own: the budget is half the soft open-file limit, set low here.

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ContainerPort;
use support::Harness;
use wasmlet_plugin_host::types::{Handler, Port, TcpSocketAction};
use wasmlet_plugin_host::{CallTarget, ContainerCall, Failure};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_together_never_take_more_than_their_share_of_descriptors() {
    // Before the first socket: a budget of 32 descriptors for all plugins.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(64),
            maximum: limit.maximum,
        },
    )
    .expect("setrlimit");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let h = Harness::new("fdbudget");
    let probe = "kind = \"probe\"\nwit = \"0.1.0\"\n[capabilities]\ntarget-pod = true\n[limits]\nconcurrency = 8\n";
    let hoarder = Arc::new(
        h.load("hoarder", "hostile_probe", probe)
            .await
            .expect("load"),
    );
    // Each call for a pod of its own: they all get slots at once.
    let target = |uid: &str| {
        let grant = CallTarget {
            pod_uid: uid.into(),
            container_id: "c1".into(),
            pod_ip: Some([127, 0, 0, 1].into()),
            address: Some([127, 0, 0, 1].into()),
        };
        // The hostile probe's mode is the name of the port it is sent to.
        let ports = ["hold", "count"].map(|name| ContainerPort {
            name: Some(name.into()),
            container_port: i32::from(port),
            ..Default::default()
        });
        ContainerCall::new(grant, "p", "default", "c", &ports).expect("a target")
    };
    let hold = |mode: &str| {
        Handler::TcpSocket(TcpSocketAction {
            host: None,
            port: Port::Name(mode.into()),
        })
    };
    // Four calls at once, each holding up to its own cap of 16 for a while:
    // 64 wanted, 32 to share.
    let calls: Vec<_> = (0..4)
        .map(|n| {
            let (hoarder, target, handler) =
                (hoarder.clone(), target(&format!("uid-{n}")), hold("hold"));
            tokio::spawn(async move {
                hoarder
                    .check(&target, &handler, Duration::from_secs(10))
                    .await
                    .expect_err("refused at some cap")
                    .to_string()
            })
        })
        .collect();
    let mut refusals = Vec::new();
    for call in calls {
        refusals.push(call.await.expect("join"));
    }
    assert!(
        refusals
            .iter()
            .any(|r| r.contains("the plugins' 32 file descriptors are in use")),
        "{refusals:#?}"
    );
    // All given back when the calls ended: a new call gets its full 16.
    let target = target("uid-after");
    let after = hoarder
        .check(&target, &hold("count"), Duration::from_secs(10))
        .await
        .expect_err("refused at its own cap");
    assert!(
        matches!(&after.failure, Failure::DeniedCapability(w) if w.contains("held 0 wasi + 16 net")),
        "{after}"
    );
}
