//! Images, as Kubernetes defaults them.

/// Kubernetes' default pull policy: `Always` for `:latest` or untagged images,
/// else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    let tag = if name.contains('@') {
        Some("digest")
    } else {
        name.rsplit_once(':').map(|(_, t)| t)
    };
    match tag {
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(
            default_pull_policy("127.0.0.1:5000/wasmlet/busybox"),
            "Always"
        );
        assert_eq!(
            default_pull_policy("127.0.0.1:5000/wasmlet/busybox:1.35"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }
}
