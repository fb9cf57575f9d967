//! Pod specs carried out field by field against the real containerd, each
//! checked from inside the container: env references, the security
//! context, the downward API, volumes and the pod's names on the network.

use std::time::Duration;

use wasmlet_core::{ContainerFilter, ContainerRuntime, ContainerState};
use wasmlet_tests::Node;
use wasmlet_tests::daemon::{
    Daemon, container_named, exec_in, first_container, phase, waiting_reason,
};

const MINUTE: Duration = Duration::from_secs(60);

/// A `/proc/<pid>/status` line's value, e.g. `CapBnd` → `00000000000004000`.
fn status_field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_default()
        .trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_command_and_args_references_are_expanded_as_the_kubelet_does() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "expand", "");
    agent.start();
    // Checked from inside: the container stays up only if it got the
    // expanded values ($0 = "world", $1 = the escaped "$(NAME)", 7 bytes).
    let script = r#"test "$FULL" = "hello world" && test "$0" = world && test "${#1}" = 7 && exec sleep 3600; exit 3"#;
    agent.write_manifest(
        "expanded.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: expanded}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {}\n    env:\n    - {{name: NAME, value: world}}\n    - {{name: FULL, value: 'hello $(NAME)'}}\n    command: [sh, -c, '{script}', '$(NAME)', '$$(NAME)']\n",
            node.test_image
        ),
    );
    let pod = agent
        .wait_pod("expanded", MINUTE, |p| {
            matches!(phase(p), "Running" | "Failed")
        })
        .await;
    assert_eq!(phase(&pod), "Running", "{pod}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pod = agent.pod("expanded").await.expect("the pod");
    assert_eq!(phase(&pod), "Running", "still running: {pod}");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_context_is_what_the_container_runs_with() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "secure", "");
    agent.start();
    let image = &node.test_image;
    agent.write_manifest(
        "secure.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: secure}}\nspec:\n  terminationGracePeriodSeconds: 1\n  securityContext: {{runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000], seccompProfile: {{type: RuntimeDefault}}}}\n  containers:\n  - name: main\n    image: {image}\n    command: [sleep, '3600']\n    securityContext: {{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {{drop: [ALL], add: [NET_BIND_SERVICE]}}}}\n  - name: admin\n    image: {image}\n    command: [sleep, '3600']\n    securityContext: {{privileged: true, runAsUser: 0}}\n"
        ),
    );
    agent.write_manifest(
        "nonroot.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: nonroot}}\nspec:\n  terminationGracePeriodSeconds: 1\n  securityContext: {{runAsNonRoot: true}}\n  containers:\n  - {{name: main, image: {image}, command: [sleep, '3600']}}\n"
        ),
    );
    let pod = agent
        .wait_pod("secure", MINUTE, |p| {
            phase(p) == "Running"
                || ["main", "admin"]
                    .iter()
                    .any(|c| !waiting_reason(container_named(p, c)).is_empty())
        })
        .await;
    assert_eq!(phase(&pod), "Running", "{pod}");

    // As seen from inside the unprivileged container.
    assert_eq!(
        exec_in(&node, &pod, "main", "id -u").await,
        Ok("1000".into())
    );
    assert_eq!(
        exec_in(&node, &pod, "main", "id -g").await,
        Ok("3000".into())
    );
    let groups = exec_in(&node, &pod, "main", "id -G").await.expect("groups");
    for group in ["3000", "2000", "4000"] {
        assert!(groups.split(' ').any(|g| g == group), "{group} in {groups}");
    }
    let status = exec_in(&node, &pod, "main", "cat /proc/self/status")
        .await
        .expect("status");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{status}");
    assert_eq!(status_field(&status, "Seccomp"), "2", "{status}");
    // Every capability dropped but CAP_NET_BIND_SERVICE (bit 10).
    assert_eq!(
        status_field(&status, "CapBnd"),
        "0000000000000400",
        "{status}"
    );
    assert_ne!(
        exec_in(&node, &pod, "main", "touch /written").await,
        Ok(String::new()),
        "the root filesystem is read-only"
    );
    assert_eq!(
        exec_in(&node, &pod, "main", "ls -A /sys/firmware").await,
        Ok(String::new()),
        "/sys/firmware is masked"
    );

    // The privileged one (its sandbox is privileged too, or it could not run).
    assert_eq!(exec_in(&node, &pod, "admin", "id -u").await, Ok("0".into()));
    let status = exec_in(&node, &pod, "admin", "cat /proc/self/status")
        .await
        .expect("status");
    let effective = u64::from_str_radix(status_field(&status, "CapEff"), 16).unwrap_or(0);
    assert_ne!(effective & (1 << 21), 0, "CAP_SYS_ADMIN: {status}");

    // runAsNonRoot with an image that runs as root: not created, and why.
    let refused = agent
        .wait_pod("nonroot", MINUTE, |p| {
            waiting_reason(first_container(p)) == "CreateContainerConfigError"
        })
        .await;
    let message = first_container(&refused)["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("container has runAsNonRoot and image will run as root"),
        "{refused}"
    );
    assert_eq!(phase(&refused), "Pending", "{refused}");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_downward_api_env_reads_the_pod_and_the_node() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "downward", "");
    agent.start();
    let env = [
        "    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}",
        "    - {name: TIER, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['tier']\"}}}",
        "    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}",
        "    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}",
        "    - {name: MEMORY_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}",
        "    - {name: CPU_MILLI, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}}",
        "    - {name: WHO, value: '$(POD) on $(NODE)'}",
    ]
    .join("\n");
    agent.write_manifest(
        "downward.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: downward, labels: {{tier: front}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {}\n    command: [sleep, '3600']\n    resources: {{limits: {{memory: 64Mi}}, requests: {{cpu: 250m}}}}\n    env:\n{env}\n    volumeMounts: [{{name: info, mountPath: /info}}, {{name: projected, mountPath: /projected}}]\n  volumes:\n  - {{name: info, downwardAPI: {{items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}, {{path: mem/limit, resourceFieldRef: {{containerName: main, resource: limits.memory, divisor: 1Mi}}}}]}}}}\n  - {{name: projected, projected: {{sources: [{{downwardAPI: {{items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}]}}}}]}}}}\n",
            node.test_image
        ),
    );
    let pod = agent
        .wait_pod("downward", MINUTE, |p| {
            phase(p) == "Running" || !waiting_reason(first_container(p)).is_empty()
        })
        .await;
    assert_eq!(phase(&pod), "Running", "{pod}");
    let name = format!("downward-{}", agent.node_name);
    let read = async |var: &str| {
        let script = format!("printf %s \"${var}\"");
        exec_in(&node, &pod, "main", &script).await
    };
    assert_eq!(read("POD").await, Ok(name.clone()));
    assert_eq!(read("TIER").await, Ok("front".into()));
    assert_eq!(read("NODE").await, Ok(agent.node_name.clone()));
    let pod_ip = pod["status"]["podIP"].as_str().unwrap_or_default();
    assert!(!pod_ip.is_empty(), "{pod}");
    assert_eq!(read("POD_IP").await, Ok(pod_ip.to_owned()));
    assert_eq!(read("MEMORY_MI").await, Ok("64".into()));
    assert_eq!(read("CPU_MILLI").await, Ok("250".into()));
    assert_eq!(
        read("WHO").await,
        Ok(format!("{name} on {}", agent.node_name))
    );
    // The same facts as files, read-only.
    let files = exec_in(
        &node,
        &pod,
        "main",
        "cat /info/labels; echo; cat /info/mem/limit; echo; cat /projected/name",
    )
    .await;
    assert_eq!(files, Ok(format!("tier=\"front\"\n64\n{name}")));
    assert_ne!(
        exec_in(&node, &pod, "main", "touch /info/x").await,
        Ok(String::new()),
        "a downwardAPI volume is read-only"
    );
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_are_shared_mounted_as_asked_and_go_with_the_pod() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "volumes", "");
    agent.start();
    let image = &node.test_image;
    let host_dir = agent.dir.join("host-data");
    agent.write_manifest(
        "volumes.yaml",
        &format!(
            "kind: Pod
metadata: {{name: volumes}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {{runAsUser: 1000, fsGroup: 2000}}
  volumes:
  - {{name: shared, emptyDir: {{}}}}
  - {{name: scratch, emptyDir: {{medium: Memory, sizeLimit: 16Mi}}}}
  - {{name: host, hostPath: {{path: {host}, type: DirectoryOrCreate}}}}
  # 0400: readable by uid 1000 only through the fsGroup.
  - {{name: info, downwardAPI: {{defaultMode: 256, items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}]}}}}
  containers:
  - name: writer
    image: {image}
    command: [sh, -c, 'echo hello > /shared/greeting && echo deep > /sub/file && echo out > /host/file && exec sleep 3600']
    securityContext: {{runAsUser: 0}}
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: shared, mountPath: /sub, subPath: nested/dir}}
    - {{name: scratch, mountPath: /scratch}}
    - {{name: host, mountPath: /host}}
  - name: reader
    image: {image}
    command: [sh, -c, 'echo mine > /mine/file && exec sleep 3600']
    volumeMounts:
    - {{name: shared, mountPath: /shared, readOnly: true}}
    - {{name: shared, mountPath: /mine, subPath: by-reader}}
    - {{name: info, mountPath: /info}}
",
            host = host_dir.display()
        ),
    );
    agent.write_manifest(
        "missing.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: missing}}\nspec:\n  terminationGracePeriodSeconds: 1\n  volumes: [{{name: gone, hostPath: {{path: /nonexistent/wasmlet, type: Directory}}}}]\n  containers:\n  - {{name: main, image: {image}, command: [sleep, '3600'], volumeMounts: [{{name: gone, mountPath: /gone}}]}}\n"
        ),
    );
    let pod = agent
        .wait_pod("volumes", MINUTE, |p| phase(p) == "Running")
        .await;
    // The writer has written once its files are there.
    let mut seen = Err(1);
    for _ in 0..50 {
        seen = exec_in(
            &node,
            &pod,
            "reader",
            "cat /shared/greeting /shared/nested/dir/file /shared/by-reader/file",
        )
        .await;
        if seen.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // (uid 1000 may write to a sub-path the agent made: it has the volume's mode.)
    assert_eq!(
        seen,
        Ok("hello\ndeep\nmine".into()),
        "one emptyDir, two containers, sub-paths"
    );
    assert_ne!(
        exec_in(&node, &pod, "reader", "touch /shared/nope").await,
        Ok(String::new()),
        "a readOnly mount"
    );
    // Files made from the API belong to the fsGroup, group-readable.
    assert_eq!(
        exec_in(&node, &pod, "reader", "cat /info/name").await,
        Ok(pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned()),
        "a 0400 downwardAPI file, read as uid 1000 through the fsGroup"
    );
    // The emptyDir belongs to the fsGroup; the memory one is a sized tmpfs.
    let listing = exec_in(&node, &pod, "writer", "ls -ldn /shared")
        .await
        .expect("ls");
    assert_eq!(listing.split_whitespace().nth(3), Some("2000"), "{listing}");
    let mounts = exec_in(&node, &pod, "writer", "grep ' /scratch ' /proc/mounts")
        .await
        .expect("mounted");
    assert!(
        mounts.starts_with("tmpfs /scratch tmpfs") && mounts.contains("size=16384k"),
        "{mounts}"
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("file"))
            .ok()
            .as_deref(),
        Some("out\n"),
        "the hostPath is the node's directory"
    );

    // A hostPath that is not there: not started, and the event says why.
    let missing = agent.pod("missing").await.expect("listed");
    assert_eq!(phase(&missing), "Pending", "{missing}");
    let failed_mount = agent
        .events()
        .await
        .into_iter()
        .find(|e| e["reason"] == "FailedMount");
    let message = failed_mount
        .map(|e| e["message"].to_string())
        .unwrap_or_default();
    assert!(
        message.contains("hostPath type check failed: /nonexistent/wasmlet is not a directory"),
        "{message}"
    );

    // The pod goes, and its volumes (unmounted) with it.
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pod_dir = agent.root_dir().join("pods").join(&uid);
    assert!(pod_dir.is_dir(), "{}", pod_dir.display());
    agent.remove_manifest("volumes.yaml");
    for _ in 0..100 {
        if !pod_dir.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!pod_dir.exists(), "{} is removed", pod_dir.display());
    let host_mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    assert!(!host_mounts.contains(&uid), "unmounted: {host_mounts}");
    assert!(host_dir.join("file").exists(), "a hostPath stays");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_hosts_and_resolver_are_the_kubelet_s() {
    let node = Node::from_env();
    let config = "clusterDNS: [10.96.0.10]\nclusterDomain: cluster.local\n";
    let mut agent = Daemon::new(&node, "names", config);
    agent.start();
    let image = &node.test_image;
    let pod = |name: &str, spec: &str| {
        format!(
            "kind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n{spec}  containers:\n  - {{name: main, image: {image}, command: [sleep, '3600']}}\n"
        )
    };
    agent.write_manifest(
        "named.yaml",
        &pod(
            "named",
            "  hostname: front\n  subdomain: web\n  hostAliases: [{ip: 10.1.2.3, hostnames: [foo.local, bar.local]}]\n  dnsConfig: {searches: [extra.example], options: [{name: ndots, value: '2'}, {name: edns0}]}\n",
        ),
    );
    agent.write_manifest(
        "fqdn.yaml",
        &pod(
            "fqdn",
            "  hostname: db\n  subdomain: web\n  setHostnameAsFQDN: true\n  dnsPolicy: None\n  dnsConfig: {nameservers: [192.0.2.53]}\n",
        ),
    );
    agent.write_manifest(
        "onhost.yaml",
        &pod(
            "onhost",
            "  hostNetwork: true\n  hostAliases: [{ip: 10.9.9.9, hostnames: [node-alias]}]\n",
        ),
    );
    let long = "a".repeat(40);
    agent.write_manifest(
        "toolong.yaml",
        &pod(
            "toolong",
            &format!("  hostname: {long}\n  subdomain: web\n  setHostnameAsFQDN: true\n"),
        ),
    );
    agent.write_manifest("badname.yaml", &pod("badname", "  hostname: Front_1\n"));

    let running = async |name: &str| {
        let pod = agent
            .wait_pod(name, MINUTE, |p| {
                phase(p) == "Running" || !waiting_reason(first_container(p)).is_empty()
            })
            .await;
        assert_eq!(phase(&pod), "Running", "{pod}");
        pod
    };

    // Its own hostname, its FQDN in its hosts file, the cluster's resolver.
    let named = running("named").await;
    let read = async |pod: &serde_json::Value, script: &str| {
        exec_in(&node, pod, "main", script).await.expect(script)
    };
    assert_eq!(read(&named, "hostname").await, "front");
    let pod_ip = named["status"]["podIP"].as_str().unwrap_or_default();
    let hosts = read(&named, "cat /etc/hosts").await;
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file."),
        "{hosts}"
    );
    assert!(
        hosts.contains(&format!(
            "{pod_ip}\tfront.web.default.svc.cluster.local\tfront\n"
        )),
        "{hosts}"
    );
    assert!(hosts.ends_with("10.1.2.3\tfoo.local\tbar.local"), "{hosts}");
    let resolv = read(&named, "cat /etc/resolv.conf").await;
    let line = |word: &str| {
        resolv
            .lines()
            .filter(|l| l.starts_with(word))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(line("nameserver"), "nameserver 10.96.0.10", "{resolv}");
    let search = line("search");
    assert!(
        search.starts_with("search default.svc.cluster.local svc.cluster.local cluster.local")
            && search.ends_with(" extra.example"),
        "{resolv}"
    );
    assert_eq!(line("options"), "options edns0 ndots:2", "{resolv}");

    // setHostnameAsFQDN, and dnsPolicy None: only what dnsConfig says.
    let fqdn = running("fqdn").await;
    assert_eq!(
        read(&fqdn, "hostname").await,
        "db.web.default.svc.cluster.local"
    );
    assert_eq!(
        read(&fqdn, "cat /etc/resolv.conf").await,
        "nameserver 192.0.2.53"
    );

    // On the node's network: the node's hosts file plus the aliases, and
    // ClusterFirst falls back to the node's resolver.
    let onhost = running("onhost").await;
    let hosts = read(&onhost, "cat /etc/hosts").await;
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file (host network).\n"),
        "{hosts}"
    );
    assert!(hosts.ends_with("10.9.9.9\tnode-alias"), "{hosts}");
    let servers = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("nameserver"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    let node_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert_eq!(
        servers(&read(&onhost, "cat /etc/resolv.conf").await),
        servers(&node_resolv)
    );

    // An FQDN the kernel cannot hold: no sandbox, and the event says why.
    agent
        .wait_event("FailedCreatePodSandBox", "is too long", MINUTE)
        .await;
    let toolong = agent.pod("toolong").await.expect("listed");
    assert_eq!(phase(&toolong), "Pending", "{toolong}");

    // A hostname that is not a DNS label is not a pod.
    assert!(agent.pod("badname").await.is_none());
    let log = agent.log();
    assert!(
        log.lines()
            .any(|l| l.contains("badname.yaml") && l.contains("spec.hostname")),
        "the log names the file and the field:\n{log}"
    );
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exited_container_s_termination_message_is_in_its_status() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "lastwords", "");
    agent.start();
    let image = &node.test_image;
    agent.write_manifest(
        "lastwords.yaml",
        &format!(
            "kind: Pod
metadata: {{name: lastwords}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: file, image: {image}, command: [sh, -c, 'echo -n bye > /dev/termination-log; exit 3']}}
  - name: custom
    image: {image}
    command: [sh, -c, 'echo -n mine > /tmp/said']
    terminationMessagePath: /tmp/said
    securityContext: {{runAsUser: 1000}}
  - name: logs
    image: {image}
    # One stream: stdout and stderr lines may reach the log in either order.
    command: [sh, -c, 'echo first; echo oops; exit 1']
    terminationMessagePolicy: FallbackToLogsOnError
  - name: quiet
    image: {image}
    command: [sh, -c, 'echo not a message; exit 1']
"
        ),
    );
    let pod = agent
        .wait_pod("lastwords", MINUTE, |p| phase(p) == "Failed")
        .await;
    let said = |name: &str| {
        container_named(&pod, name)["state"]["terminated"]["message"]
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(said("file").as_deref(), Some("bye"), "{pod}");
    assert_eq!(said("custom").as_deref(), Some("mine"), "{pod}");
    assert_eq!(said("logs").as_deref(), Some("first\noops\n"), "{pod}");
    assert_eq!(said("quiet"), None, "the log is not read by default: {pod}");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_past_its_active_deadline_is_failed_and_stopped() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "deadline", "");
    agent.start();
    agent.write_manifest(
        "deadline.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: deadline}}\nspec:\n  activeDeadlineSeconds: 3\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: main, image: {}, command: [sleep, '3600']}}\n",
            node.test_image
        ),
    );
    agent
        .wait_pod("deadline", MINUTE, |p| phase(p) == "Running")
        .await;
    let pod = agent
        .wait_pod("deadline", MINUTE, |p| phase(p) == "Failed")
        .await;
    assert_eq!(pod["status"]["reason"], "DeadlineExceeded", "{pod}");
    let main = container_named(&pod, "main");
    assert!(main["state"]["terminated"].is_object(), "{pod}");
    // Nothing of it runs on the node any more, restartPolicy Always or not.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let running = node
        .client()
        .list_containers(&ContainerFilter {
            state: Some(ContainerState::Running),
            labels: [("io.wasmlet.agent".to_owned(), agent.node_name.clone())].into(),
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(running.is_empty(), "{running:?}");
    let pod = agent.pod("deadline").await.expect("listed");
    assert_eq!(phase(&pod), "Failed", "{pod}");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysctls_and_localhost_seccomp_profiles_are_applied_and_checked() {
    let node = Node::from_env();
    let config = "allowedUnsafeSysctls: ['kernel.msg*']\n";
    let mut agent = Daemon::new(&node, "sysctl", config);
    // A Localhost profile in the node's profile root: no mkdir.
    let profiles = agent.root_dir().join("seccomp");
    std::fs::create_dir_all(&profiles).expect("profile root");
    std::fs::write(
        profiles.join("no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .expect("profile");
    agent.start();
    let image = &node.test_image;
    let pod = |name: &str, security: &str| {
        format!(
            "kind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  securityContext: {security}\n  containers:\n  - {{name: main, image: {image}, command: [sleep, '3600']}}\n"
        )
    };
    agent.write_manifest(
        "tuned.yaml",
        &pod(
            "tuned",
            "{sysctls: [{name: net.ipv4.ip_local_port_range, value: '20000 30000'}, {name: kernel.msgmax, value: '12345'}], seccompProfile: {type: Localhost, localhostProfile: no-mkdir.json}}",
        ),
    );
    agent.write_manifest(
        "forbidden.yaml",
        &pod(
            "forbidden",
            "{sysctls: [{name: kernel.sem, value: '250 32000 32 128'}]}",
        ),
    );
    let tuned = agent
        .wait_pod("tuned", MINUTE, |p| {
            phase(p) == "Running" || !waiting_reason(first_container(p)).is_empty()
        })
        .await;
    assert_eq!(phase(&tuned), "Running", "{tuned}");
    let read = async |script: &str| exec_in(&node, &tuned, "main", script).await;
    assert_eq!(
        read("cat /proc/sys/net/ipv4/ip_local_port_range").await,
        Ok("20000\t30000".into())
    );
    assert_eq!(
        read("cat /proc/sys/kernel/msgmax").await,
        Ok("12345".into())
    );
    assert_ne!(
        read("mkdir /tmp/made").await,
        Ok(String::new()),
        "the profile denies mkdir"
    );
    assert_eq!(read("touch /tmp/file && echo ok").await, Ok("ok".into()));

    // Not in the safe set nor allowed by the operator: rejected, as the kubelet does.
    let forbidden = agent
        .wait_pod("forbidden", MINUTE, |p| phase(p) == "Failed")
        .await;
    assert_eq!(
        forbidden["status"]["reason"], "SysctlForbidden",
        "{forbidden}"
    );
    let message = forbidden["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("forbidden sysctl: \"kernel.sem\" not allowlisted"),
        "{message}"
    );
    agent.finish().await;
}
