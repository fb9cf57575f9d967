//! A stand-in Kubernetes API server for the cluster-mode tests, since no
//! kube-apiserver can be installed here. It enforces what wasmlet relies on
//! instead of agreeing with whatever it is sent: bearer-token
//! authentication, a resourceVersion per write, list and watch from a
//! resourceVersion (bookmarks, 410 Gone once compacted), field selectors,
//! the status subresource with merge and strategic-merge patches, UID and
//! resourceVersion preconditions (409), graceful pod deletion, TokenReview
//! and SubjectAccessReview against the test's users and rules. Tests inject
//! faults: failed requests, slow answers, dropped watches, a restart that
//! loses the watch log, and being down.

mod patch;
mod reviews;
mod store;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use store::{Change, Key, Store};
pub use store::{Failure, Kind, PatchType};

/// One request as the stand-in saw it, for tests to assert on.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

#[derive(Debug, Default)]
struct Faults {
    /// The next `n` requests fail with this code.
    fail: Option<(usize, u16)>,
    delay: Duration,
}

#[derive(Debug)]
struct Shared {
    token: String,
    store: Mutex<Store>,
    changes: broadcast::Sender<Change>,
    /// Bumped to end every open watch.
    watch_generation: watch::Sender<u64>,
    faults: Mutex<Faults>,
    seen: Mutex<Vec<Seen>>,
    bookmark_every: Mutex<Duration>,
    /// The TokenRequests answered, with their tokens.
    tokens: Mutex<Vec<Value>>,
    /// Users, their tokens, and what they may do to nodes.
    access: Mutex<reviews::Access>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The stand-in, serving on 127.0.0.1 until dropped.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    serving: Mutex<Option<JoinSet<()>>>,
}

impl ApiServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stand-in API server");
        let addr = listener.local_addr().expect("its address");
        let seed = random_u64();
        let shared = Arc::new(Shared {
            token: format!("wasmlet-test-{seed:x}"),
            store: Mutex::new(Store::seeded(seed)),
            changes: broadcast::channel(16_384).0,
            watch_generation: watch::channel(0).0,
            faults: Mutex::default(),
            seen: Mutex::default(),
            bookmark_every: Mutex::new(Duration::from_secs(2)),
            tokens: Mutex::default(),
            access: Mutex::default(),
        });
        let server = Self {
            addr,
            shared,
            serving: Mutex::new(None),
        };
        server.serve(listener);
        server
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let mut tasks = JoinSet::new();
        let shared = self.shared.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        *lock(&self.serving) = Some(tasks);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bearer token every request must carry.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// A kubeconfig for this server, written to `path`.
    pub fn write_kubeconfig(&self, path: &Path) {
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: {}\nusers:\n- name: node\n  user:\n    token: {}\ncontexts:\n- name: node\n  context:\n    cluster: stand-in\n    user: node\ncurrent-context: node\n",
            self.url(),
            self.token()
        );
        std::fs::write(path, config).expect("write the kubeconfig");
    }

    /// Stops answering: the port refuses connections and every open
    /// connection and watch is cut.
    pub fn stop(&self) {
        if let Some(mut tasks) = lock(&self.serving).take() {
            tasks.abort_all();
        }
        self.drop_watches();
    }

    /// Serves again on the same address.
    pub async fn resume(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("bind the stand-in's address again");
        self.serve(listener);
    }

    /// Ends every open watch (clients must watch again).
    pub fn drop_watches(&self) {
        self.shared.watch_generation.send_modify(|g| *g += 1);
    }

    /// A restart that loses the watch cache: open watches end and a watch
    /// from any earlier resourceVersion is 410 Gone.
    pub fn compact(&self) {
        lock(&self.shared.store).compact();
        self.drop_watches();
    }

    /// The next `n` requests fail with `code`.
    pub fn fail_next(&self, n: usize, code: u16) {
        lock(&self.shared.faults).fail = Some((n, code));
    }

    /// Every answer waits this long first.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.shared.faults).delay = delay;
    }

    pub fn set_bookmark_interval(&self, every: Duration) {
        *lock(&self.shared.bookmark_every) = every;
    }

    /// Requests seen so far.
    /// The TokenRequests answered (with `status.token`), oldest first.
    pub fn tokens(&self) -> Vec<Value> {
        lock(&self.shared.tokens).clone()
    }

    /// A user whose bearer token is `token`, in `groups` (TokenReview).
    pub fn add_user(&self, token: &str, name: &str, groups: &[&str]) {
        lock(&self.shared.access).add_user(token, name, groups);
    }

    /// Lets `subject` (a user's or a group's name) `verb` the nodes'
    /// `subresource` (SubjectAccessReview).
    pub fn allow(&self, subject: &str, verb: &str, subresource: &str) {
        lock(&self.shared.access).allow(subject, verb, subresource);
    }

    /// The TokenReviews and SubjectAccessReviews asked, oldest first.
    pub fn reviews(&self) -> Vec<Value> {
        lock(&self.shared.access).reviews.clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// The stored object, as a client would GET it.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let kind = store::kind_named(kind).expect("a kind the stand-in serves");
        let key = key(kind, namespace, name);
        lock(&self.shared.store).get(&key).cloned()
    }

    /// Objects of `kind`, in every namespace.
    pub fn list(&self, kind: &str) -> Vec<Value> {
        let kind = store::kind_named(kind).expect("a kind the stand-in serves");
        let store = lock(&self.shared.store);
        store
            .list(kind, None)
            .into_iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Creates `object` as another client would (its kind and namespace
    /// from the object).
    pub fn create(&self, object: Value) -> Result<Value, Failure> {
        let kind = store::kind_named(object["kind"].as_str().unwrap_or(""))
            .expect("a kind the stand-in serves");
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let mut store = lock(&self.shared.store);
        let (object, change) = store.create(kind, &namespace, object)?;
        let _ = self.shared.changes.send(change);
        Ok(object)
    }

    /// Patches an object (or its status) as another client would.
    pub fn patch(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        how: PatchType,
        patch: &Value,
        status: bool,
    ) -> Result<Value, Failure> {
        let kind = store::kind_named(kind).expect("a kind the stand-in serves");
        let mut store = lock(&self.shared.store);
        let (object, change) = store.patch(&key(kind, namespace, name), how, patch, status)?;
        let _ = self.shared.changes.send(change);
        Ok(object)
    }

    /// Deletes as another client would (`options` as a DeleteOptions body).
    pub fn delete(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        options: &Value,
    ) -> Result<Value, Failure> {
        let kind = store::kind_named(kind).expect("a kind the stand-in serves");
        let mut store = lock(&self.shared.store);
        let (object, change) = store.delete(&key(kind, namespace, name), options)?;
        let _ = self.shared.changes.send(change);
        Ok(object)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Random enough for tokens and UIDs of one test run (std's hasher keys
/// are random per process and per map).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

fn key(kind: Kind, namespace: &str, name: &str) -> Key {
    Key {
        kind,
        namespace: if kind.namespaced {
            namespace.to_owned()
        } else {
            String::new()
        },
        name: name.to_owned(),
    }
}

type Answer = Response<ApiBody>;

/// A whole JSON answer, or a watch's stream of lines.
#[derive(Debug)]
pub enum ApiBody {
    Whole(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }
}

fn json_answer(code: u16, value: &Value) -> Answer {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(ApiBody::Whole(Some(Bytes::from(value.to_string()))))
        .unwrap_or_else(|_| Response::new(ApiBody::Whole(None)))
}

fn failure(f: &Failure) -> Answer {
    json_answer(f.code, &f.status())
}

/// What a request names: the kind, namespace, object and subresource.
#[derive(Debug)]
struct Target {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
    /// A service account's `token` subresource (TokenRequest).
    token: bool,
}

fn target(path: &str) -> Result<Target, Failure> {
    let not_found = || {
        Failure::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    };
    let rest = path.trim_start_matches('/');
    let (prefix, rest) = if let Some(rest) = rest.strip_prefix("api/v1/") {
        ("api/v1", rest)
    } else if let Some(rest) = rest.strip_prefix("apis/coordination.k8s.io/v1/") {
        ("apis/coordination.k8s.io/v1", rest)
    } else {
        return Err(not_found());
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let (namespace, parts) = match parts.as_slice() {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => {
            (Some((*ns).to_owned()), rest.to_vec())
        }
        _ => (None, parts),
    };
    let (plural, name, sub) = match parts.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, sub] => (*plural, Some((*name).to_owned()), Some(*sub)),
        _ => return Err(not_found()),
    };
    let kind = store::kind(prefix, plural).ok_or_else(not_found)?;
    if kind.namespaced != namespace.is_some() && name.is_some() {
        return Err(not_found());
    }
    let (status, token) = match sub {
        None => (false, false),
        Some("status") if kind.status => (true, false),
        Some("token") if kind.kind == "ServiceAccount" => (false, true),
        Some(_) => return Err(not_found()),
    };
    Ok(Target {
        kind,
        namespace,
        name,
        status,
        token,
    })
}

fn query(q: &str) -> HashMap<String, String> {
    url_pairs(q).collect()
}

fn url_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (unescape(k), unescape(v))
    })
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A field or label selector: terms that must all hold.
#[derive(Debug, Default)]
struct Selector {
    terms: Vec<(String, bool, String)>,
}

/// The field labels the real API accepts, per kind.
fn field_labels(kind: Kind) -> &'static [&'static str] {
    match kind.kind {
        "Pod" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["metadata.name", "metadata.namespace", "type"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

fn selector(text: &str, fields: Option<Kind>) -> Result<Selector, Failure> {
    let mut terms = Vec::new();
    for term in text.split(',').filter(|t| !t.is_empty()) {
        let (key, equal, value) = if let Some((k, v)) = term.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = term.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = term.split_once('=') {
            (k, true, v)
        } else {
            return Err(Failure::new(
                400,
                "BadRequest",
                format!(
                    "the stand-in reads only `key=value` and `key!=value` selectors, not {term:?}"
                ),
            ));
        };
        if let Some(kind) = fields
            && !field_labels(kind).contains(&key)
        {
            return Err(Failure::new(
                400,
                "BadRequest",
                format!("field label not supported: {key}"),
            ));
        }
        terms.push((key.to_owned(), equal, value.to_owned()));
    }
    Ok(Selector { terms })
}

impl Selector {
    fn fields_match(&self, object: &Value) -> bool {
        self.terms.iter().all(|(path, equal, want)| {
            let mut v = object;
            for part in path.split('.') {
                v = &v[part];
            }
            let have = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (have == *want) == *equal
        })
    }

    fn labels_match(&self, object: &Value) -> bool {
        self.terms.iter().all(|(key, equal, want)| {
            let have = object["metadata"]["labels"][key].as_str();
            (have == Some(want.as_str())) == *equal
        })
    }
}

struct Filter {
    kind: Kind,
    namespace: Option<String>,
    fields: Selector,
    labels: Selector,
}

impl Filter {
    fn matches(&self, key: &Key, object: Option<&Value>) -> bool {
        key.kind == self.kind
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
            && object.is_some_and(|o| self.fields.fields_match(o) && self.labels.labels_match(o))
    }
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Answer {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return failure(&Failure::new(
                    400,
                    "BadRequest",
                    format!("the body is not JSON: {e}"),
                ));
            }
        }
    };
    lock(&shared.seen).push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        content_type: content_type.clone(),
        body: body.clone(),
    });
    let delay = {
        let mut faults = lock(&shared.faults);
        if let Some((n, code)) = faults.fail.as_mut() {
            let code = *code;
            *n -= 1;
            if *n == 0 {
                faults.fail = None;
            }
            return failure(&Failure::new(code, "InternalError", "injected by the test"));
        }
        faults.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let authorized = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", shared.token));
    if !authorized {
        return failure(&Failure::new(401, "Unauthorized", "Unauthorized"));
    }
    let review = match path.as_str() {
        "/apis/authentication.k8s.io/v1/tokenreviews" => Some(true),
        "/apis/authorization.k8s.io/v1/subjectaccessreviews" => Some(false),
        _ => None,
    };
    if let Some(token_review) = review {
        if parts.method != Method::POST {
            return failure(&Failure::new(
                405,
                "MethodNotAllowed",
                "reviews are only created",
            ));
        }
        let mut access = lock(&shared.access);
        let answer = if token_review {
            access.token_review(body)
        } else {
            access.subject_access_review(body)
        };
        return match answer {
            Ok(review) => json_answer(201, &review),
            Err(f) => failure(&f),
        };
    }
    let target = match target(&path) {
        Ok(t) => t,
        Err(f) => return failure(&f),
    };
    let q = query(&raw_query);
    if target.token {
        return match (&parts.method, &target.name) {
            (&Method::POST, Some(name)) => match token_request(shared, &target, name, body) {
                Ok(answer) => json_answer(201, &answer),
                Err(f) => failure(&f),
            },
            _ => failure(&Failure::new(
                405,
                "MethodNotAllowed",
                "the method is not allowed",
            )),
        };
    }
    let result = match (&parts.method, &target.name) {
        (&Method::GET, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            return watch(shared, &target, &q);
        }
        (&Method::GET, None) => list(shared, &target, &q),
        (&Method::POST, None) => {
            let namespace = target.namespace.clone().unwrap_or_default();
            let mut store = lock(&shared.store);
            store
                .create(target.kind, &namespace, body)
                .map(|(object, change)| {
                    let _ = shared.changes.send(change);
                    (201, object)
                })
        }
        (method, Some(name)) => {
            let key = key(target.kind, target.namespace.as_deref().unwrap_or(""), name);
            let mut store = lock(&shared.store);
            let write = match *method {
                Method::GET => {
                    return match store.get(&key) {
                        Some(object) => json_answer(200, object),
                        _ => failure(&Failure::new(
                            404,
                            "NotFound",
                            format!("{} \"{name}\" not found", target.kind.plural),
                        )),
                    };
                }
                Method::PUT => store.replace(&key, body, target.status),
                Method::PATCH => match content_type.split(';').next().unwrap_or("") {
                    "application/merge-patch+json" => {
                        store.patch(&key, PatchType::Merge, &body, target.status)
                    }
                    "application/strategic-merge-patch+json" => {
                        store.patch(&key, PatchType::Strategic, &body, target.status)
                    }
                    other => Err(Failure::new(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the stand-in applies merge and strategic-merge patches, not {other:?}"
                        ),
                    )),
                },
                Method::DELETE => store.delete(&key, &body),
                _ => Err(Failure::new(
                    405,
                    "MethodNotAllowed",
                    "the method is not allowed",
                )),
            };
            write.map(|(object, change)| {
                let _ = shared.changes.send(change);
                (200, object)
            })
        }
        _ => Err(Failure::new(
            405,
            "MethodNotAllowed",
            "the method is not allowed",
        )),
    };
    match result {
        Ok((code, object)) => json_answer(code, &object),
        Err(f) => failure(&f),
    }
}

/// A TokenRequest, checked as the API server checks it: the service account
/// exists, the token lives at least 10 minutes, and a pod it is bound to
/// exists with that UID. The token is random; its request is kept.
fn token_request(
    shared: &Arc<Shared>,
    target: &Target,
    name: &str,
    mut request: Value,
) -> Result<Value, Failure> {
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let store = lock(&shared.store);
    if store.get(&key(target.kind, namespace, name)).is_none() {
        return Err(Failure::new(
            404,
            "NotFound",
            format!("serviceaccounts \"{name}\" not found"),
        ));
    }
    let spec = &request["spec"];
    let seconds = spec["expirationSeconds"].as_i64().unwrap_or(3600);
    if seconds < 600 {
        return Err(Failure::new(
            422,
            "Invalid",
            "spec.expirationSeconds: may not specify a duration less than 10 minutes",
        ));
    }
    let bound = &spec["boundObjectRef"];
    if bound["kind"] == "Pod" {
        let pod = bound["name"].as_str().unwrap_or_default();
        let held = store.get(&key(
            store::kind_named("Pod").expect("pods"),
            namespace,
            pod,
        ));
        if held.is_none_or(|p| p["metadata"]["uid"] != bound["uid"]) {
            return Err(Failure::new(
                409,
                "Conflict",
                format!(
                    "the bound pod {namespace}/{pod} does not exist with UID {}",
                    bound["uid"]
                ),
            ));
        }
    }
    drop(store);
    request["status"] = json!({
        "token": format!("stand-in-token-{:016x}", random_u64()),
        "expirationTimestamp": store::in_seconds(seconds),
    });
    request["metadata"]["namespace"] = json!(namespace);
    request["metadata"]["name"] = json!(name);
    lock(&shared.tokens).push(request.clone());
    Ok(request)
}

fn filter(target: &Target, q: &HashMap<String, String>) -> Result<Filter, Failure> {
    Ok(Filter {
        kind: target.kind,
        namespace: target.namespace.clone(),
        fields: selector(
            q.get("fieldSelector").map_or("", String::as_str),
            Some(target.kind),
        )?,
        labels: selector(q.get("labelSelector").map_or("", String::as_str), None)?,
    })
}

/// A list: every matching object at the current resourceVersion, in pages
/// of `limit` with a `continue` token.
fn list(
    shared: &Shared,
    target: &Target,
    q: &HashMap<String, String>,
) -> Result<(u16, Value), Failure> {
    let filter = filter(target, q)?;
    let store = lock(&shared.store);
    let now = store.resource_version();
    if let Some(rv) = q.get("resourceVersion").filter(|v| !v.is_empty())
        && rv.parse::<u64>().map_err(|_| {
            Failure::new(400, "BadRequest", format!("invalid resourceVersion {rv:?}"))
        })? > now
    {
        return Err(Failure::new(
            504,
            "Timeout",
            format!("Too large resource version: {rv}, current: {now}"),
        ));
    }
    let (after, at) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, name) = token
                .split_once('/')
                .ok_or_else(|| Failure::new(400, "BadRequest", "invalid continue token"))?;
            let rv: u64 = rv
                .parse()
                .map_err(|_| Failure::new(400, "BadRequest", "invalid continue token"))?;
            if rv < store.compacted() {
                return Err(Failure::new(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result.",
                ));
            }
            (Some(name.to_owned()), rv)
        }
        None => (None, now),
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut items = Vec::new();
    let mut more = None;
    for (key, object) in store.list(target.kind, target.namespace.as_deref()) {
        let id = format!("{}~{}", key.namespace, key.name);
        if after.as_ref().is_some_and(|a| id <= *a) || !filter.matches(key, Some(object)) {
            continue;
        }
        if limit.is_some_and(|l| items.len() == l) {
            more = Some(format!(
                "{at}/{}",
                items
                    .last()
                    .map_or(String::new(), |(id, _): &(String, Value)| id.clone())
            ));
            break;
        }
        let mut item = object.clone();
        // Items of a typed list carry no kind or apiVersion.
        if let Some(m) = item.as_object_mut() {
            m.remove("kind");
            m.remove("apiVersion");
        }
        items.push((id, item));
    }
    let mut metadata = json!({"resourceVersion": at.to_string()});
    if let Some(token) = more {
        metadata["continue"] = json!(token);
    }
    Ok((
        200,
        json!({
            "kind": format!("{}List", target.kind.kind),
            "apiVersion": target.kind.api_version,
            "metadata": metadata,
            "items": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        }),
    ))
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// How a change looks through a watch's filter, if it is seen at all.
fn watch_event(filter: &Filter, change: &Change) -> Option<Bytes> {
    let was = filter.matches(&change.key, change.before.as_ref());
    let is = filter.matches(&change.key, change.after.as_ref());
    if change.before.as_ref() == change.after.as_ref() {
        return None;
    }
    let (kind, object) = match (was, is) {
        (true, true) => ("MODIFIED", change.after.as_ref()?),
        (false, true) => ("ADDED", change.after.as_ref()?),
        // Deleted, or no longer selected: gone from this watch's view.
        (true, false) => ("DELETED", change.after.as_ref().or(change.before.as_ref())?),
        (false, false) => return None,
    };
    let mut object = object.clone();
    object["metadata"]["resourceVersion"] = json!(change.rv.to_string());
    Some(event_line(kind, &object))
}

/// A watch: changes after the given resourceVersion (all objects as ADDED
/// without one), then live ones, with bookmarks if asked for, until
/// `timeoutSeconds`, a dropped watch, or the client going away.
fn watch(shared: &Arc<Shared>, target: &Target, q: &HashMap<String, String>) -> Answer {
    let filter = match filter(target, q) {
        Ok(f) => f,
        Err(f) => return failure(&f),
    };
    let (tx, rx) = mpsc::channel(1024);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let from = q
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .cloned();
    let (initial, mut live, mut last_rv) = {
        let store = lock(&shared.store);
        let live = shared.changes.subscribe();
        let now = store.resource_version();
        let initial: Result<Vec<Bytes>, Bytes> = match from.as_deref().map(str::parse::<u64>) {
            None => Ok(store
                .list(target.kind, target.namespace.as_deref())
                .into_iter()
                .filter(|(k, o)| filter.matches(k, Some(o)))
                .map(|(_, o)| event_line("ADDED", o))
                .collect()),
            Some(Ok(rv)) => match store.changes_since(rv) {
                Some(changes) => Ok(changes
                    .iter()
                    .filter_map(|c| watch_event(&filter, c))
                    .collect()),
                None => Err(event_line(
                    "ERROR",
                    &Failure::new(
                        410,
                        "Expired",
                        format!("too old resource version: {rv} ({})", store.compacted()),
                    )
                    .status(),
                )),
            },
            Some(Err(_)) => {
                return failure(&Failure::new(400, "BadRequest", "invalid resourceVersion"));
            }
        };
        (initial, live, now)
    };
    let kind = target.kind;
    let mut generation = shared.watch_generation.subscribe();
    let every = *lock(&shared.bookmark_every);
    tokio::spawn(async move {
        let lines = match initial {
            Ok(lines) => lines,
            Err(gone) => {
                let _ = tx.send(gone).await;
                return;
            }
        };
        for line in lines {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                _ = generation.changed() => return,
                change = live.recv() => match change {
                    Ok(change) => {
                        last_rv = last_rv.max(change.rv);
                        if let Some(line) = watch_event(&filter, &change)
                            && tx.send(line).await.is_err()
                        {
                            return;
                        }
                    }
                    // Too slow a client: the watch ends, as the API ends it.
                    Err(_) => return,
                },
                _ = ticks.tick(), if bookmarks => {
                    // Every change up to here has reached this watch.
                    let rv = last_rv;
                    let mark = json!({"kind": kind.kind, "apiVersion": kind.api_version, "metadata": {"resourceVersion": rv.to_string()}});
                    if tx.send(event_line("BOOKMARK", &mark)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(ApiBody::Stream(rx))
        .unwrap_or_else(|_| Response::new(ApiBody::Whole(None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_on(node: &str) -> Value {
        json!({"metadata": {"name": "a", "namespace": "default"}, "spec": {"nodeName": node}})
    }

    #[test]
    fn a_pod_leaving_a_field_selector_is_deleted_from_the_watch() {
        let kind = store::kind_named("Pod").expect("pods");
        let filter = Filter {
            kind,
            namespace: None,
            fields: selector("spec.nodeName=n1", Some(kind)).expect("a selector"),
            labels: Selector::default(),
        };
        let change = |before: Option<Value>, after: Option<Value>| Change {
            rv: 7,
            key: key(kind, "default", "a"),
            before,
            after,
        };
        let seen = |c: &Change| {
            watch_event(&filter, c).map(|line| {
                serde_json::from_slice::<Value>(&line).expect("a JSON line")["type"].clone()
            })
        };
        assert_eq!(
            seen(&change(None, Some(pod_on("n1")))),
            Some(json!("ADDED"))
        );
        assert_eq!(
            seen(&change(Some(pod_on("n2")), Some(pod_on("n1")))),
            Some(json!("ADDED"))
        );
        assert_eq!(
            seen(&change(Some(pod_on("n1")), Some(pod_on("n2")))),
            Some(json!("DELETED"))
        );
        assert_eq!(seen(&change(Some(pod_on("n2")), None)), None);
        assert!(
            selector("spec.nodeNmae=n1", Some(kind)).is_err(),
            "an unknown field label"
        );
    }
}
