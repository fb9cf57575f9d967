//! httpGet lifecycle hooks: a GET to the pod, following redirects on the same
//! host. As the kubelet's, only a transport error (no connection, no answer)
//! fails the hook; any status is an answer.

use wasmlet_plugin_sdk::http::{self, BodyLimit};
use wasmlet_plugin_sdk::lifecycle::{ContainerTarget, Error, Guest, Handler};

/// The kubelet's is `kube-lifecycle/<major>.<minor>`.
const USER_AGENT: &str = "kube-lifecycle/wasmlet";

fn run(target: ContainerTarget, handler: Handler) -> Result<(), Error> {
    let Handler::HttpGet(action) = handler else {
        return Err(Error::InvalidInput(
            "hook-http-get runs httpGet hooks only".into(),
        ));
    };
    let request = action.request(&target, USER_AGENT)?;
    // The body is not looked at.
    match http::get_following(request, BodyLimit::Truncate(0)) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::Failed(format!(
            "HTTP lifecycle hook ({}) failed: {e}",
            action.path
        ))),
    }
}

struct HttpGetHook;

impl Guest for HttpGetHook {
    fn post_start(target: ContainerTarget, handler: Handler) -> Result<(), Error> {
        run(target, handler)
    }

    fn pre_stop(target: ContainerTarget, handler: Handler) -> Result<(), Error> {
        run(target, handler)
    }
}

wasmlet_plugin_sdk::lifecycle::export_lifecycle!(HttpGetHook);
