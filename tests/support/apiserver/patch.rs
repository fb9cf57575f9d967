//! The two patch types the kubelet sends, as the API server applies them:
//! JSON merge patch (RFC 7386) and strategic merge patch with the merge keys
//! of the fields wasmlet writes. A list without a merge key is atomic and
//! replaced whole, as in the real API (`containerStatuses`, `taints`, ...).

use serde_json::{Map, Value};

/// Lists merged by a key, by their path from the object's root. Taken from
/// the `patchMergeKey` tags of k8s.io/api (Pod, Node, ObjectMeta).
const MERGE_KEYS: &[(&str, &str)] = &[
    ("status.conditions", "type"),
    ("status.podIPs", "ip"),
    ("status.hostIPs", "ip"),
    ("status.addresses", "type"),
    ("metadata.ownerReferences", "uid"),
    ("spec.containers", "name"),
    ("spec.initContainers", "name"),
    ("spec.volumes", "name"),
];

/// Lists of primitives merged as sets (`patchStrategy:"merge"`).
const MERGED_SETS: &[&str] = &["metadata.finalizers"];

/// RFC 7386: objects merge, `null` deletes, everything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// A strategic merge patch, or why it is not one.
pub fn strategic(target: &mut Value, patch: &Value) -> Result<(), String> {
    strategic_at(target, patch, "")
}

fn strategic_at(target: &mut Value, patch: &Value, path: &str) -> Result<(), String> {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        replaced.remove("$patch");
        *target = Value::Object(replaced);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        return Ok(());
    };
    for (key, value) in patch {
        if key == "$patch" || key.starts_with("$retainKeys") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            let at = join(path, field);
            let merge_key = merge_key(&at)
                .ok_or_else(|| format!("$setElementOrder on {at}, which has no merge key"))?;
            if let (Some(Value::Array(items)), Value::Array(order)) = (target.get_mut(field), value)
            {
                reorder(items, order, merge_key);
            }
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(gone)) = (target.get_mut(field), value)
            {
                items.retain(|i| !gone.contains(i));
            }
            continue;
        }
        if key.starts_with('$') {
            return Err(format!("unknown patch directive {key}"));
        }
        let at = join(path, key);
        if value.is_null() {
            target.remove(key);
            continue;
        }
        let slot = target.entry(key.clone()).or_insert(Value::Null);
        match (slot, value) {
            (Value::Array(items), Value::Array(patch)) if merge_key(&at).is_some() => {
                let merge_key = merge_key(&at).unwrap_or_default();
                merge_list(items, patch, merge_key, &at)?;
            }
            (Value::Array(items), Value::Array(patch)) if MERGED_SETS.contains(&at.as_str()) => {
                for item in patch {
                    if !items.contains(item) {
                        items.push(item.clone());
                    }
                }
            }
            (slot, Value::Array(patch)) if merge_key(&at).is_some() => {
                // A merged list that was absent: the patch's items, minus directives.
                let mut items = Vec::new();
                merge_list(&mut items, patch, merge_key(&at).unwrap_or_default(), &at)?;
                *slot = Value::Array(items);
            }
            (slot, value @ Value::Object(_)) => strategic_at(slot, value, &at)?,
            (slot, value) => *slot = value.clone(),
        }
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn merge_key(path: &str) -> Option<&'static str> {
    MERGE_KEYS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, key)| *key)
}

fn merge_list(
    items: &mut Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    at: &str,
) -> Result<(), String> {
    for entry in patch {
        let key = entry
            .get(merge_key)
            .ok_or_else(|| format!("{at}: an item without its merge key {merge_key:?}"))?;
        let position = items.iter().position(|i| i.get(merge_key) == Some(key));
        let delete = entry.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                items.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_at(&mut items[i], entry, at)?,
            (None, false) => {
                let mut item = Value::Null;
                strategic_at(&mut item, entry, at)?;
                items.push(item);
            }
        }
    }
    Ok(())
}

/// Items named in `order` first, in that order; the others after, as they were.
fn reorder(items: &mut [Value], order: &[Value], merge_key: &str) {
    let rank = |item: &Value| {
        order
            .iter()
            .position(|o| o.get(merge_key) == item.get(merge_key))
            .unwrap_or(usize::MAX)
    };
    items.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_merge_by_type_and_container_statuses_are_replaced() {
        let mut pod = json!({"status": {
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}],
            "containerStatuses": [{"name": "a"}, {"name": "b"}],
        }});
        strategic(
            &mut pod,
            &json!({"status": {
                "$setElementOrder/conditions": [{"type": "Initialized"}, {"type": "Ready"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "b", "ready": true}],
            }}),
        )
        .expect("a strategic merge patch");
        assert_eq!(
            pod["status"]["conditions"],
            json!([{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}])
        );
        assert_eq!(
            pod["status"]["containerStatuses"],
            json!([{"name": "b", "ready": true}])
        );
    }

    #[test]
    fn a_delete_directive_removes_one_item_and_null_removes_a_field() {
        let mut node =
            json!({"status": {"conditions": [{"type": "A"}, {"type": "B"}], "phase": "x"}});
        strategic(
            &mut node,
            &json!({"status": {"conditions": [{"type": "A", "$patch": "delete"}], "phase": null}}),
        )
        .expect("a strategic merge patch");
        assert_eq!(node, json!({"status": {"conditions": [{"type": "B"}]}}));
    }

    #[test]
    fn a_merge_patch_replaces_lists() {
        let mut pod = json!({"status": {"conditions": [{"type": "A"}, {"type": "B"}]}});
        merge(
            &mut pod,
            &json!({"status": {"conditions": [{"type": "C"}]}}),
        );
        assert_eq!(pod, json!({"status": {"conditions": [{"type": "C"}]}}));
    }
}
