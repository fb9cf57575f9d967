//! TokenReview and SubjectAccessReview, as the API server answers them:
//! validated (a token, exactly one kind of attributes, a user or a group),
//! never stored, `201 Created`. Tokens name users the test made; access is
//! what the test's rules grant (RBAC-like: a rule names a user or a group,
//! a verb, and a node subresource).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::store::Failure;

#[derive(Debug, Clone)]
struct User {
    name: String,
    uid: String,
    groups: Vec<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    /// A user's name or a group's.
    subject: String,
    verb: String,
    subresource: String,
}

#[derive(Debug, Default)]
pub struct Access {
    users: HashMap<String, User>,
    rules: Vec<Rule>,
    /// Every review asked, for tests to count.
    pub reviews: Vec<Value>,
}

impl Access {
    pub fn add_user(&mut self, token: &str, name: &str, groups: &[&str]) {
        let user = User {
            name: name.into(),
            uid: format!("uid-{name}"),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        };
        self.users.insert(token.into(), user);
    }

    pub fn allow(&mut self, subject: &str, verb: &str, subresource: &str) {
        self.rules.push(Rule {
            subject: subject.into(),
            verb: verb.into(),
            subresource: subresource.into(),
        });
    }

    pub fn token_review(&mut self, mut review: Value) -> Result<Value, Failure> {
        check_kind(&review, "authentication.k8s.io/v1", "TokenReview")?;
        let token = review["spec"]["token"].as_str().unwrap_or_default();
        if token.is_empty() {
            return Err(Failure::new(
                400,
                "BadRequest",
                "token is required for TokenReview in authentication",
            ));
        }
        self.reviews.push(review.clone());
        review["status"] = match self.users.get(token) {
            Some(user) => json!({
                "authenticated": true,
                "user": {
                    "username": user.name,
                    "uid": user.uid,
                    "groups": user.groups.iter().chain(["system:authenticated".to_owned()].iter()).collect::<Vec<_>>(),
                },
            }),
            None => json!({"authenticated": false, "error": "invalid bearer token"}),
        };
        Ok(review)
    }

    pub fn subject_access_review(&mut self, mut review: Value) -> Result<Value, Failure> {
        check_kind(&review, "authorization.k8s.io/v1", "SubjectAccessReview")?;
        let spec = &review["spec"];
        let resource = &spec["resourceAttributes"];
        match (
            resource.is_object(),
            spec["nonResourceAttributes"].is_object(),
        ) {
            (true, true) => {
                return Err(invalid(
                    "spec.nonResourceAttributes: Invalid value: cannot be specified in combination with resourceAttributes",
                ));
            }
            (false, false) => {
                return Err(invalid(
                    "spec.resourceAttributes: Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
            _ => {}
        }
        let user = spec["user"].as_str().unwrap_or_default();
        let groups: Vec<&str> = spec["groups"]
            .as_array()
            .map(|g| g.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if user.is_empty() && groups.is_empty() {
            return Err(invalid(
                "spec.user: Invalid value: at least one of user or group must be specified",
            ));
        }
        self.reviews.push(review.clone());
        let on_nodes = resource["group"].as_str().unwrap_or_default().is_empty()
            && resource["resource"] == "nodes";
        let allowed = on_nodes
            && self.rules.iter().any(|rule| {
                (rule.subject == user || groups.contains(&rule.subject.as_str()))
                    && resource["verb"] == rule.verb.as_str()
                    && resource["subresource"] == rule.subresource.as_str()
            });
        review["status"] = if allowed {
            json!({"allowed": true, "reason": "allowed by the test's rules"})
        } else {
            json!({"allowed": false})
        };
        Ok(review)
    }
}

fn invalid(message: &str) -> Failure {
    Failure::new(422, "Invalid", message)
}

fn check_kind(review: &Value, api_version: &str, kind: &str) -> Result<(), Failure> {
    if review["apiVersion"] != api_version || review["kind"] != kind {
        return Err(Failure::new(
            400,
            "BadRequest",
            format!(
                "expected {api_version} {kind}, got {} {}",
                review["apiVersion"], review["kind"]
            ),
        ));
    }
    Ok(())
}
