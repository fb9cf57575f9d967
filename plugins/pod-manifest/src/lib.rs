//! Pod manifests as the kubelet reads them for static pods: decoded from YAML
//! (several documents) or JSON, a Pod or a PodList, into the real Kubernetes
//! types; defaulted (name suffix, namespace, UID, node name); and validated,
//! with every error naming the field. Also the built-in sources' [`settings`].

pub mod settings;

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Container, Pod, Toleration};
use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmlet_rules::FieldError;
use wasmlet_rules::quantity::milli;
use wasmlet_rules::{default_pull_policy, identity};

/// What is wrong with a manifest, saying where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {size} bytes; at most {MAX_MANIFEST_BYTES} are read")]
    TooLarge { size: usize },
    /// Not JSON or YAML, or nested too deep: the parser's message.
    #[error("invalid {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    /// A field's value, with the path to it.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// In the `n`th (from 1) document of the file, or pod of the manifest.
    #[error("{place} {n}: {error}")]
    In {
        place: &'static str,
        n: usize,
        error: Box<ManifestError>,
    },
}

impl ManifestError {
    /// This error, in the `index`th (from 0) `place`; the first needs no saying.
    fn in_place(self, place: &'static str, index: usize) -> Self {
        if index == 0 {
            return self;
        }
        Self::In {
            place,
            n: index + 1,
            error: Box::new(self),
        }
    }
}

/// Where a manifest came from; part of the UID, as in the kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    File(&'a str),
    Url(&'a str),
}

impl Origin<'_> {
    /// The `kubernetes.io/config.source` annotation.
    pub fn source(self) -> &'static str {
        match self {
            Origin::File(_) => "file",
            Origin::Url(_) => "http",
        }
    }
}

/// The largest manifest read, as the http source's cap.
pub const MAX_MANIFEST_BYTES: usize = 10 * 1024 * 1024;
/// The deepest nesting of mappings and lists accepted. A Pod needs about a
/// dozen levels (a PodList two more); decoding and dropping are recursive,
/// and a plugin's stack is small.
pub const MAX_DEPTH: usize = 32;

/// Decodes every pod in `text`: YAML documents or JSON, each a Pod or a PodList.
/// Size and nesting are bounded before anything recursive runs.
pub fn decode(text: &str) -> Result<Vec<Pod>, ManifestError> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge { size: text.len() });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let documents: Vec<Value> = if text.trim_start().starts_with('{') {
        json_depth_within(text, MAX_DEPTH)?;
        vec![
            serde_json::from_str(text).map_err(|e| ManifestError::Syntax {
                format: "JSON",
                message: e.to_string(),
            })?,
        ]
    } else {
        let mut budget = serde_saphyr::Budget::default();
        budget.max_depth = MAX_DEPTH;
        budget.flow_nesting_limit = MAX_DEPTH;
        budget.max_nodes = 100_000;
        budget.max_documents = 1_000;
        budget.max_aliases = 1_000;
        let mut options = serde_saphyr::Options::default();
        options.budget = Some(budget);
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            ManifestError::Syntax {
                format: "YAML",
                message: e.to_string(),
            }
        })?
    };
    let mut pods = Vec::new();
    for (n, document) in documents.into_iter().enumerate() {
        let at = |e: FieldError| ManifestError::Field(e).in_place("document", n);
        match document.get("kind").and_then(Value::as_str) {
            Some("Pod") => pods.push(pod_from(document, "").map_err(at)?),
            Some("PodList") => {
                let Some(Value::Array(items)) = document.get("items").cloned() else {
                    return Err(at(FieldError::new(
                        "items",
                        "a PodList needs a list of pods",
                    )));
                };
                for (i, item) in items.into_iter().enumerate() {
                    pods.push(pod_from(item, &format!("items[{i}].")).map_err(at)?);
                }
            }
            Some(other) => {
                return Err(at(FieldError::new(
                    "kind",
                    format!("expected Pod or PodList, got {other}"),
                )));
            }
            None if document.is_null() => {} // an empty document, e.g. a trailing `---`
            None => {
                return Err(at(FieldError::new(
                    "kind",
                    "Required value (Pod or PodList)",
                )));
            }
        }
    }
    Ok(pods)
}

/// Fails if JSON `text` nests objects and arrays deeper than `max`; one
/// pass over the bytes, no recursion.
fn json_depth_within(text: &str, max: usize) -> Result<(), ManifestError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (at, byte) in text.bytes().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(ManifestError::Syntax {
                        format: "JSON",
                        message: format!("nested deeper than {max} levels at byte {at}"),
                    });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn pod_from(value: Value, prefix: &str) -> Result<Pod, FieldError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| FieldError::new(format!("{prefix}{}", e.path()), e.inner().to_string()))
}

/// The kubelet's static pod defaulting: a UID from the content and the
/// origin, the name suffixed with the node's, namespace `default`, the node
/// name, the config annotations, and a toleration of every NoExecute taint.
/// Also the API server's defaults the agent relies on (restart policy, grace
/// period, pull policy, port protocol).
pub fn apply_defaults(pod: &mut Pod, node_name: &str, origin: Origin<'_>) {
    let meta = &mut pod.metadata;
    if meta.uid.as_deref().is_none_or(str::is_empty) {
        let mut hasher = Sha256::new();
        match origin {
            Origin::File(path) => {
                hasher.update(format!("host:{node_name}\nfile:{path}\n"));
            }
            Origin::Url(url) => hasher.update(format!("url:{url}\n")),
        }
        // serde_json writes maps in key order, so equal pods hash equally.
        hasher.update(serde_json::to_vec(&*pod).unwrap_or_default());
        let digest = hasher.finalize();
        let mut uid = String::with_capacity(32);
        for byte in &digest[..16] {
            let _ = write!(uid, "{byte:02x}");
        }
        pod.metadata.uid = Some(uid);
    }
    let meta = &mut pod.metadata;
    if let Some(name) = &meta.name {
        meta.name = Some(format!("{name}-{}", node_name.to_lowercase()));
    }
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some("default".into());
    }
    let annotations = meta.annotations.get_or_insert_default();
    let uid = meta.uid.clone().unwrap_or_default();
    annotations.insert(wasmlet_rules::pod::CONFIG_HASH.into(), uid);
    annotations.insert("kubernetes.io/config.source".into(), origin.source().into());

    let spec = pod.spec.get_or_insert_default();
    spec.node_name = Some(node_name.into());
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    let tolerations = spec.tolerations.get_or_insert_default();
    tolerations.push(Toleration {
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        ..Toleration::default()
    });
    let init = spec.init_containers.iter_mut().flatten();
    for container in spec.containers.iter_mut().chain(init) {
        default_container(container);
    }
}

fn default_container(container: &mut Container) {
    let image = container.image.as_deref().unwrap_or_default();
    container
        .image_pull_policy
        .get_or_insert_with(|| default_pull_policy(image).into());
    container
        .termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    container
        .termination_message_policy
        .get_or_insert_with(|| "File".into());
    for port in container.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".into());
    }
    // The API's defaulting (SetDefaults_Pod): a limit without a request is
    // the request too, for admission and the downward API alike.
    if let Some(resources) = container.resources.as_mut()
        && let Some(limits) = &resources.limits
    {
        let requests = resources.requests.get_or_insert_default();
        for (name, limit) in limits {
            requests
                .entry(name.clone())
                .or_insert_with(|| limit.clone());
        }
    }
}

/// Validates what the agent needs of a pod (a subset of the API server's
/// ValidatePod); the error names the field.
pub fn validate(pod: &Pod) -> Result<(), FieldError> {
    let Some(spec) = &pod.spec else {
        return Err(FieldError::new("spec", "Required value"));
    };
    identity::validate_pod(pod)?;
    if spec.containers.is_empty() {
        return Err(FieldError::new("spec.containers", "Required value"));
    }
    if let Some(policy) = &spec.restart_policy
        && !matches!(policy.as_str(), "Always" | "OnFailure" | "Never")
    {
        return Err(FieldError::new(
            "spec.restartPolicy",
            format!(
                "Unsupported value {policy:?}: supported values: \"Always\", \"OnFailure\", \"Never\""
            ),
        ));
    }
    if let Some(grace) = spec.termination_grace_period_seconds
        && grace < 0
    {
        return Err(FieldError::new(
            "spec.terminationGracePeriodSeconds",
            "must be >= 0",
        ));
    }
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| ("initContainers", c));
    let app = spec.containers.iter().map(|c| ("containers", c));
    let mut index = std::collections::BTreeMap::<&str, usize>::new();
    for (list, container) in init.chain(app) {
        let i = index.entry(list).or_default();
        let field = format!("spec.{list}[{i}]");
        *i += 1;
        if container
            .image
            .as_deref()
            .is_none_or(|i| i.trim().is_empty())
        {
            return Err(FieldError::new(format!("{field}.image"), "Required value"));
        }
        if let Some(policy) = &container.image_pull_policy
            && !matches!(policy.as_str(), "Always" | "IfNotPresent" | "Never")
        {
            return Err(FieldError::new(
                format!("{field}.imagePullPolicy"),
                format!(
                    "Unsupported value {policy:?}: supported values: \"Always\", \"IfNotPresent\", \"Never\""
                ),
            ));
        }
        for (p, port) in container.ports.iter().flatten().enumerate() {
            if !(1..=65535).contains(&port.container_port) {
                return Err(FieldError::new(
                    format!("{field}.ports[{p}].containerPort"),
                    format!(
                        "Invalid value {}: must be between 1 and 65535",
                        port.container_port
                    ),
                ));
            }
            if let Some(host) = port.host_port
                && !(0..=65535).contains(&host)
            {
                return Err(FieldError::new(
                    format!("{field}.ports[{p}].hostPort"),
                    format!("Invalid value {host}: must be between 1 and 65535"),
                ));
            }
            if let Some(protocol) = &port.protocol
                && !matches!(protocol.as_str(), "TCP" | "UDP" | "SCTP")
            {
                return Err(FieldError::new(
                    format!("{field}.ports[{p}].protocol"),
                    format!("Unsupported value {protocol:?}"),
                ));
            }
        }
        validate_resources(container, &field)?;
    }
    Ok(())
}

/// Quantities parse, are not negative, and no request exceeds its limit.
fn validate_resources(container: &Container, field: &str) -> Result<(), FieldError> {
    let Some(resources) = &container.resources else {
        return Ok(());
    };
    let mut parsed = [
        std::collections::BTreeMap::new(),
        std::collections::BTreeMap::new(),
    ];
    // Limits first, as the API validates them: a request defaulted from a
    // bad limit is reported as the limit it came from.
    for (i, (kind, map)) in [
        ("limits", &resources.limits),
        ("requests", &resources.requests),
    ]
    .into_iter()
    .enumerate()
    {
        for (name, q) in map.iter().flatten() {
            let at = format!("{field}.resources.{kind}[{name}]");
            let milli =
                milli(&q.0).map_err(|e| FieldError::new(&at, format!("Invalid value: {e}")))?;
            if milli < 0 {
                return Err(FieldError::new(
                    at,
                    format!(
                        "Invalid value {:?}: must be greater than or equal to 0",
                        q.0
                    ),
                ));
            }
            parsed[i].insert(name.as_str(), (milli, q.0.as_str()));
        }
    }
    let [limits, requests] = parsed;
    for (name, (request, text)) in &requests {
        if let Some((limit, limit_text)) = limits.get(name)
            && request > limit
        {
            return Err(FieldError::new(
                format!("{field}.resources.requests"),
                format!(
                    "Invalid value {text:?}: must be less than or equal to {name} limit of {limit_text}"
                ),
            ));
        }
    }
    Ok(())
}

/// Decodes, defaults and validates every pod of one manifest.
pub fn read_manifest(
    text: &str,
    node_name: &str,
    origin: Origin<'_>,
) -> Result<Vec<Pod>, ManifestError> {
    let mut pods = decode(text)?;
    for (n, pod) in pods.iter_mut().enumerate() {
        apply_defaults(pod, node_name, origin);
        validate(pod).map_err(|e| ManifestError::Field(e).in_place("pod", n))?;
    }
    Ok(pods)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: busybox:1.35\n";

    fn read(text: &str) -> Result<Vec<Pod>, String> {
        read_manifest(text, "Node-1", Origin::File("/etc/manifests/web.yaml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn errors_are_typed_and_say_which_document_and_field() {
        let second_bad = format!("{WEB}---\nkind: Service\n");
        let e = read_manifest(&second_bad, "n", Origin::File("/m/x.yaml")).expect_err("bad");
        let ManifestError::In { place, n, error } = &e else {
            panic!("{e:?}");
        };
        assert_eq!((*place, *n), ("document", 2));
        assert!(
            matches!(&**error, ManifestError::Field(f) if f.field == "kind"),
            "{error:?}"
        );
        assert_eq!(
            e.to_string(),
            "document 2: kind: expected Pod or PodList, got Service"
        );
        let no_image = WEB.replace("    image: busybox:1.35\n", "");
        assert_eq!(
            read_manifest(&no_image, "n", Origin::File("/m/x.yaml")),
            Err(ManifestError::Field(FieldError::new(
                "spec.containers[0].image",
                "Required value"
            )))
        );
    }

    #[test]
    fn defaults_like_the_kubelet() -> Result<(), String> {
        let pods = read(WEB)?;
        let pod = &pods[0];
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let spec = pod.spec.as_ref().ok_or("spec")?;
        assert_eq!(spec.node_name.as_deref(), Some("Node-1"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("IfNotPresent")
        );
        let uid = pod.metadata.uid.clone().ok_or("uid")?;
        assert_eq!(uid.len(), 32);
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.get("kubernetes.io/config.hash"), Some(&uid));
        assert_eq!(
            annotations
                .get("kubernetes.io/config.source")
                .map(String::as_str),
            Some("file")
        );

        let limited =
            format!("{WEB}    resources: {{limits: {{cpu: 500m}}, requests: {{memory: 1Mi}}}}\n");
        let pods = read(&limited)?;
        let resources = pods[0].spec.as_ref().ok_or("spec")?.containers[0]
            .resources
            .clone()
            .ok_or("resources")?;
        let requests = resources.requests.unwrap_or_default();
        assert_eq!(
            requests.get("cpu").map(|q| q.0.as_str()),
            Some("500m"),
            "a limit is the request"
        );
        assert_eq!(requests.get("memory").map(|q| q.0.as_str()), Some("1Mi"));
        Ok(())
    }

    #[test]
    fn uid_follows_content_and_origin() -> Result<(), String> {
        let uid = |text: &str, path: &str| -> Result<Option<String>, String> {
            Ok(
                read_manifest(text, "n", Origin::File(path)).map_err(|e| e.to_string())?[0]
                    .metadata
                    .uid
                    .clone(),
            )
        };
        let a = uid(WEB, "/m/a.yaml")?;
        assert_eq!(a, uid(WEB, "/m/a.yaml")?, "stable for the same input");
        assert_ne!(a, uid(WEB, "/m/b.yaml")?, "the path is part of it");
        assert_ne!(
            a,
            uid(&WEB.replace("1.35", "1.36"), "/m/a.yaml")?,
            "the content is part of it"
        );
        Ok(())
    }

    #[test]
    fn reads_json_pod_lists_and_several_documents() -> Result<(), String> {
        let list = r#"{"kind":"PodList","items":[{"kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i:1"}]}},{"metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"i"}]}}]}"#;
        let pods = read(list)?;
        assert_eq!(pods.len(), 2);
        assert_eq!(
            pods[1].spec.as_ref().ok_or("spec")?.containers[0]
                .image_pull_policy
                .as_deref(),
            Some("Always")
        );
        let two = format!(
            "{WEB}---\n{}\n---\n",
            WEB.replace("name: web\nspec", "name: api\nspec")
        );
        let names: Vec<_> = read(&two)?
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        assert_eq!(names, ["web-node-1", "api-node-1"]);
        Ok(())
    }

    /// `kind: Pod` with a label value nested `depth` block mappings deep.
    fn nested_yaml(depth: usize) -> String {
        let mut text = String::from("kind: Pod\nmetadata:\n  name: deep\n  labels:\n");
        for level in 0..depth {
            text.push_str(&" ".repeat(4 + level));
            text.push_str("a:\n");
        }
        text
    }

    fn nested_flow_yaml(depth: usize) -> String {
        format!(
            "kind: Pod\nspec: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    }

    fn nested_json(depth: usize) -> String {
        format!(
            "{{\"kind\":\"Pod\",\"x\":{}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    }

    #[test]
    fn nesting_within_the_limit_still_decodes_and_a_bom_is_dropped() -> Result<(), String> {
        let pods = read(&format!("\u{feff}{WEB}"))?;
        assert_eq!(pods.len(), 1);
        // Braces inside strings are not nesting.
        let json = r#"{"kind":"Pod","metadata":{"name":"a","annotations":{"x":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"}},"spec":{"containers":[{"name":"c","image":"i"}]}}"#;
        assert_eq!(read(json)?.len(), 1);
        let huge = format!("{WEB}#{}\n", "x".repeat(MAX_MANIFEST_BYTES));
        assert!(read(&huge).is_err_and(|e| e.contains("at most")));
        Ok(())
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                WEB.replace("    image: busybox:1.35\n", ""),
                "spec.containers[0].image: Required value",
            ),
            (
                WEB.replace("  name: web\nspec", "  name: Web_1\nspec"),
                "metadata.name: Invalid value",
            ),
            (
                format!("{WEB}  - name: web\n    image: x\n"),
                "spec.containers[1].name: Duplicate value \"web\"",
            ),
            (
                WEB.replace("kind: Pod", "kind: Deployment"),
                "kind: expected Pod or PodList, got Deployment",
            ),
            (
                WEB.replace("image: busybox:1.35", "image: [1, 2]"),
                "spec.containers[0].image: invalid type",
            ),
            (
                format!("{WEB}  restartPolicy: Sometimes\n"),
                "spec.restartPolicy: Unsupported value",
            ),
            (
                format!("{WEB}    ports:\n    - containerPort: 70000\n"),
                "spec.containers[0].ports[0].containerPort",
            ),
            ("kind: Pod\nmetadata: {name: [\n".into(), "invalid YAML"),
            (nested_yaml(40), "invalid YAML"),
            (
                format!("{WEB}    resources:\n      requests: {{cpu: \"-1\"}}\n"),
                "spec.containers[0].resources.requests[cpu]: Invalid value \"-1\": must be greater than or equal to 0",
            ),
            (
                format!("{WEB}    resources:\n      limits: {{memory: \"1e99999\"}}\n"),
                "spec.containers[0].resources.limits[memory]: Invalid value",
            ),
            (
                format!(
                    "{WEB}    resources:\n      requests: {{cpu: 2}}\n      limits: {{cpu: 1}}\n"
                ),
                "must be less than or equal to cpu limit of 1",
            ),
            (nested_flow_yaml(10_000), "invalid YAML"),
            (nested_json(10_000), "nested deeper than 32 levels"),
        ];
        for (text, expected) in cases {
            match read(&text) {
                Ok(_) => panic!("accepted:\n{text}"),
                Err(e) => assert!(e.contains(expected), "{e:?} should contain {expected:?}"),
            }
        }
    }
}
