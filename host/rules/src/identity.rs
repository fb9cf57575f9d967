//! Kubernetes' rules for the names that identify a pod, one definition for
//! the host and for the plugins that decode manifests. The agent builds
//! runtime names and paths (pod log directories) from these parts, so a part
//! that passes here cannot leave its directory.

use k8s_openapi::api::core::v1::Pod;

use crate::field::FieldError;
use crate::pod::PodExt;

/// The longest UID accepted: a UUID is 36 characters, a static pod's 32.
pub const MAX_UID_LEN: usize = 128;

const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// An RFC 1123 label (namespaces, container names): at most 63 characters.
pub fn dns_label(value: &str) -> Result<(), &'static str> {
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if value.len() > 63 {
        Err("must be no more than 63 characters")
    } else if !ok_chars || value.starts_with('-') || value.ends_with('-') || value.is_empty() {
        Err(LABEL_RULE)
    } else {
        Ok(())
    }
}

/// An RFC 1123 subdomain (pod names): dot-separated labels, at most 253 characters.
pub fn dns_subdomain(value: &str) -> Result<(), &'static str> {
    if value.len() > 253 {
        return Err("must be no more than 253 characters");
    }
    value
        .split('.')
        .try_for_each(|part| dns_label(part).map_err(|_| SUBDOMAIN_RULE))
}

/// A pod UID: letters, digits, `-`, `_` and `.` (never alone as `.` or `..`),
/// at most [`MAX_UID_LEN`] characters.
pub fn pod_uid(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("Required value");
    }
    if value.len() > MAX_UID_LEN {
        return Err("must be no more than 128 characters");
    }
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok_chars || value.bytes().all(|b| b == b'.') {
        return Err("must consist of letters, digits, '-', '_' or '.'");
    }
    Ok(())
}

/// What identifies `pod`, checked as the agent needs it before it keeps the
/// pod: name, namespace, UID and every container name, unique within the pod,
/// and its names on the network ([`crate::network::validate`]). Errors name
/// the field.
pub fn validate_pod(pod: &Pod) -> Result<(), FieldError> {
    let inits = pod.init_containers().iter().enumerate();
    let apps = pod.app_containers().iter().enumerate();
    validate_pod_identity(
        pod.name_str(),
        pod.namespace_or_default(),
        pod.uid_str(),
        inits
            .map(|(i, c)| ("initContainers", i, c.name.as_str()))
            .chain(apps.map(|(i, c)| ("containers", i, c.name.as_str()))),
    )?;
    let Some(spec) = &pod.spec else {
        return Ok(());
    };
    if let Some(seconds) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&seconds)
    {
        return Err(FieldError::new(
            "spec.activeDeadlineSeconds",
            format!("Invalid value: {seconds}: must be between 1 and 2147483647, inclusive"),
        ));
    }
    crate::network::validate(spec)
}

/// As [`validate_pod`], from the parts.
pub fn validate_pod_identity<'a>(
    name: &str,
    namespace: &str,
    uid: &str,
    containers: impl IntoIterator<Item = (&'static str, usize, &'a str)>,
) -> Result<(), FieldError> {
    let invalid = |field: &str, value: &str, e: &str| {
        FieldError::new(field, format!("Invalid value {}: {e}", shown(value)))
    };
    if name.is_empty() {
        return Err(FieldError::new("metadata.name", "Required value"));
    }
    dns_subdomain(name).map_err(|e| invalid("metadata.name", name, e))?;
    dns_label(namespace).map_err(|e| invalid("metadata.namespace", namespace, e))?;
    pod_uid(uid).map_err(|e| invalid("metadata.uid", uid, e))?;
    let mut seen = std::collections::BTreeSet::new();
    for (list, i, container) in containers {
        let field = format!("spec.{list}[{i}].name");
        if container.is_empty() {
            return Err(FieldError::new(field, "Required value"));
        }
        dns_label(container).map_err(|e| invalid(&field, container, e))?;
        if !seen.insert(container) {
            return Err(FieldError::new(
                field,
                format!("Duplicate value {container:?}"),
            ));
        }
    }
    Ok(())
}

/// A value quoted for an error, cut short: it may be anything a source sent.
fn shown(value: &str) -> String {
    const MAX: usize = 64;
    if value.len() <= MAX {
        return format!("{value:?}");
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}…", &value[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uids_that_could_escape_a_path_are_refused() {
        for uid in ["..", ".", "a/b", "a\0b", "x\n", &"u".repeat(129), ""] {
            assert!(pod_uid(uid).is_err(), "{uid:?}");
        }
        for uid in ["0f8e1c3a-9b5d-4e2f-8a7b-6c5d4e3f2a1b", "abc123", "a.b_c-d"] {
            assert_eq!(pod_uid(uid), Ok(()), "{uid}");
        }
        for name in ["../etc", "a/b", "Web", "-a", "a..b", ""] {
            assert!(dns_subdomain(name).is_err(), "{name:?}");
        }
        assert_eq!(dns_subdomain("web-1.node-a"), Ok(()));
        assert!(dns_label("a.b").is_err());
    }

    #[test]
    fn identity_errors_name_the_field() {
        let ok = [("containers", 0, "app"), ("initContainers", 0, "init")];
        assert_eq!(validate_pod_identity("web", "default", "u1", ok), Ok(()));
        let cases = [
            ("", "default", "u1", "metadata.name: Required value"),
            ("web/x", "default", "u1", "metadata.name: Invalid value"),
            ("web", "Prod", "u1", "metadata.namespace: Invalid value"),
            ("web", "default", "../u", "metadata.uid: Invalid value"),
        ];
        for (name, namespace, uid, want) in cases {
            let e = validate_pod_identity(name, namespace, uid, ok).expect_err(want);
            assert!(e.to_string().starts_with(want), "{e}");
        }
        let twice = [("initContainers", 0, "app"), ("containers", 0, "app")];
        let e = validate_pod_identity("web", "default", "u1", twice).expect_err("dup");
        assert_eq!(
            e,
            FieldError::new("spec.containers[0].name", "Duplicate value \"app\"")
        );
        let long = "x".repeat(10_000);
        let e = validate_pod_identity(&long, "default", "u1", ok).expect_err("long");
        assert!(
            e.to_string().len() < 200,
            "the value is cut short in the message: {e}"
        );
    }
}
