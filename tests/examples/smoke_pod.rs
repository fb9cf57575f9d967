//! A smoke pod on the real node: a busybox httpd in a sandbox on the pod network,
//! fetched from the host, then torn down. Part of the demo (`scripts/demo.sh`).

use std::time::{Duration, Instant};

use wasmlet_core::{ContainerRuntime, ExecTimeout, SandboxRuntime};
use wasmlet_tests::{
    Node, container_config, http_get, is_running, sandbox_config, unique, wait_for_container,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::from_env();
    let runtime = node.client();
    let started = Instant::now();

    let sc = sandbox_config(&unique("smoke"));
    let sandbox = runtime.run_sandbox(&sc, "").await?;
    let status = runtime.sandbox_status(&sandbox).await?;
    let ip = status.ip.ok_or("the smoke pod got no IP")?;
    println!(
        "pod        {} ({:?}) ip {ip}",
        sc.metadata.name, status.state
    );

    let web = container_config(
        "web",
        &node.test_image,
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo 'hello from a wasmlet pod' > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www",
        ],
    );
    let id = runtime.create_container(&sandbox, &web, &sc).await?;
    runtime.start_container(&id).await?;
    let container = wait_for_container(&runtime, &id, Duration::from_secs(30), is_running).await;
    println!(
        "container  web {:?}, image {}",
        container.state, container.image_ref
    );

    let response = http_get(ip, 8080, Duration::from_secs(10)).await?;
    let status_line = response.lines().next().unwrap_or_default();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
    println!("GET http://{ip}:8080/  {status_line}  {body:?}");

    let exec = runtime
        .exec_sync(
            &id,
            &["hostname".to_owned()],
            ExecTimeout::After(Duration::from_secs(5)),
        )
        .await?;
    println!(
        "exec       hostname -> {}",
        String::from_utf8_lossy(&exec.stdout).trim()
    );
    let log = std::fs::read_to_string(&container.log_path).unwrap_or_default();
    println!(
        "log        {}: {}",
        container.log_path.display(),
        log.trim()
    );

    runtime.stop_sandbox(&sandbox).await?;
    runtime.remove_sandbox(&sandbox).await?;
    println!("torn down  in {:.2?} total", started.elapsed());
    if !status_line.contains(" 200 ") {
        return Err(format!("the pod answered {status_line:?}").into());
    }
    Ok(())
}
