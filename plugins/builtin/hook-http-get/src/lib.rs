//! httpGet lifecycle hooks: a GET to the pod; a status of 400 or more, or no
//! answer, is the hook's failure.

use wasmlet_plugin_sdk::lifecycle::{ContainerTarget, Error, Guest, Handler, net};

fn run(target: ContainerTarget, handler: Handler) -> Result<(), Error> {
    let Handler::HttpGet(action) = handler else {
        return Err(Error::InvalidInput(
            "hook-http-get runs httpGet hooks only".into(),
        ));
    };
    let tls = http_client::wants_tls(&action.scheme).map_err(Error::InvalidInput)?;
    let (host, port) = target.resolve(action.host.as_deref(), &action.port)?;
    let headers = action.header_pairs();
    match http_client::http_check(
        |a| net::Stream::connect_http(a, tls),
        &host,
        port,
        &action.path,
        &headers,
    ) {
        Ok(seen) if seen.status < 400 => Ok(()),
        Ok(seen) => Err(Error::Failed(format!(
            "HTTP lifecycle hook ({}) returned status {}",
            action.path, seen.status
        ))),
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
