//! `$(VAR)` references, as Kubernetes expands them in a container's env,
//! command and args (its forked `expansion` package): `$(NAME)` becomes the
//! variable's value when it is defined and stays as written when not, `$$`
//! is one `$`, and any other `$` is itself.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, EnvVarSource};

/// `input` with every defined `$(NAME)` replaced by `lookup(NAME)`.
pub fn expand<'v>(input: &str, lookup: impl Fn(&str) -> Option<&'v str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if after.is_empty() {
            // A trailing `$` is itself.
            out.push('$');
            rest = after;
            break;
        }
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(open) = after.strip_prefix('(') {
            match open.find(')') {
                Some(close) => {
                    let name = &open[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &open[close + 1..];
                }
                None => {
                    // An unclosed reference is kept as written.
                    out.push_str("$(");
                    rest = open;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A container's environment, command and args as the kubelet hands them to
/// the runtime: each env value expanded against the variables declared
/// before it, then command and args against the whole environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expanded {
    /// In declaration order; a later duplicate name wins in `lookup`.
    pub env: Vec<(String, String)>,
    pub command: Vec<String>,
    pub args: Vec<String>,
}

/// Expands `container`'s env, command and args, after the variables of its
/// `envFrom` (`from`, taken as they are), a `valueFrom` variable taking what
/// `value_from` says (as it is: a resolved value is not expanded, as in the
/// kubelet's `makeEnvironmentVariables`; None leaves the variable out).
pub fn container<E>(
    container: &Container,
    from: Vec<(String, String)>,
    mut value_from: impl FnMut(&EnvVarSource) -> Result<Option<String>, E>,
) -> Result<Expanded, E> {
    let mut defined: HashMap<String, String> = from.iter().cloned().collect();
    let mut env = from;
    for var in container.env.iter().flatten() {
        let raw = var.value.as_deref().unwrap_or_default();
        let value = match &var.value_from {
            Some(source) if raw.is_empty() => match value_from(source)? {
                Some(value) => value,
                None => continue,
            },
            _ => expand(raw, |name| defined.get(name).map(String::as_str)),
        };
        defined.insert(var.name.clone(), value.clone());
        env.push((var.name.clone(), value));
    }
    let lookup = |name: &str| defined.get(name).map(String::as_str);
    let all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter().flatten().map(|s| expand(s, lookup)).collect()
    };
    Ok(Expanded {
        command: all(&container.command),
        args: all(&container.args),
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::EnvVar;

    #[test]
    fn expands_as_kubernetes_does() {
        let defined = HashMap::from([("A", "1"), ("EMPTY", "")]);
        let v = |name: &str| defined.get(name).copied();
        assert_eq!(expand("$(A)", v), "1");
        assert_eq!(expand("x$(A)y$(A)", v), "x1y1");
        assert_eq!(expand("$(EMPTY)", v), "");
        assert_eq!(expand("$(UNKNOWN)", v), "$(UNKNOWN)", "undefined stays");
        assert_eq!(expand("$$(A)", v), "$(A)", "escaped");
        assert_eq!(expand("$$$(A)", v), "$1");
        assert_eq!(expand("$$", v), "$");
        assert_eq!(expand("a$", v), "a$");
        assert_eq!(expand("$A", v), "$A");
        assert_eq!(expand("$(A", v), "$(A", "unclosed");
        assert_eq!(expand("$(seq 3)", v), "$(seq 3)", "a shell substitution");
        assert_eq!(expand("ünï$(A)cödé", v), "ünï1cödé");
    }

    #[test]
    fn env_sees_only_what_was_declared_before_and_commands_see_all() {
        let var = |name: &str, value: &str| EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        };
        let c = Container {
            name: "app".into(),
            env: Some(vec![
                var("GREETING", "hello $(NAME)"),
                var("NAME", "world"),
                var("FULL", "$(GREETING), $(NAME)"),
            ]),
            command: Some(vec!["echo".into(), "$(FULL)".into()]),
            args: Some(vec!["$$(NAME)".into()]),
            ..Default::default()
        };
        let e = container(&c, Vec::new(), |_| Err("no valueFrom here")).expect("expanded");
        assert_eq!(
            e.env,
            [
                ("GREETING".to_owned(), "hello $(NAME)".to_owned()),
                ("NAME".to_owned(), "world".to_owned()),
                ("FULL".to_owned(), "hello $(NAME), world".to_owned()),
            ]
        );
        assert_eq!(e.command, ["echo", "hello $(NAME), world"]);
        assert_eq!(e.args, ["$(NAME)"]);
    }

    #[test]
    fn a_value_from_is_taken_as_it_is_and_seen_by_later_references() {
        let c = Container {
            name: "app".into(),
            env: Some(vec![
                EnvVar {
                    name: "POD".into(),
                    value_from: Some(EnvVarSource::default()),
                    ..Default::default()
                },
                EnvVar {
                    name: "WHO".into(),
                    value: Some("pod $(POD)".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let e =
            container(&c, Vec::new(), |_| Ok::<_, ()>(Some("$(WHO)".into()))).expect("expanded");
        assert_eq!(e.env[0].1, "$(WHO)", "not expanded");
        assert_eq!(e.env[1].1, "pod $(WHO)");
        assert_eq!(container(&c, Vec::new(), |_| Err("broken")), Err("broken"));
        // Left out (an optional reference to nothing): never defined.
        let e = container(&c, Vec::new(), |_| Ok::<_, ()>(None)).expect("expanded");
        assert_eq!(e.env, [("WHO".to_owned(), "pod $(POD)".to_owned())]);
    }

    #[test]
    fn env_from_comes_first_unexpanded_and_env_sees_and_overrides_it() {
        let c = Container {
            name: "app".into(),
            env: Some(vec![
                EnvVar {
                    name: "URL".into(),
                    value: Some("http://$(HOST)".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "HOST".into(),
                    value: Some("override".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let from = vec![("HOST".to_owned(), "db$(X)".to_owned())];
        let e = container(&c, from, |_| Err::<Option<String>, ()>(())).expect("expanded");
        assert_eq!(
            e.env,
            [
                ("HOST".to_owned(), "db$(X)".to_owned()),
                ("URL".to_owned(), "http://db$(X)".to_owned()),
                ("HOST".to_owned(), "override".to_owned()),
            ]
        );
    }
}
