//! `/containerLogs/{namespace}/{pod}/{container}`: a container's log as the
//! kubelet serves it, with `follow`, `tailLines`, `limitBytes`,
//! `sinceSeconds` or `sinceTime`, `timestamps` and `previous`.

use std::time::{Duration, SystemTime};

use hyper::StatusCode;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use wasmlet_agent::AgentView;
use wasmlet_agent::logs::lookup;
use wasmlet_agent::logs::reader::{self, LogOptions};

use super::{Body, Reply, reply};

/// The query's options, checked as the API checks PodLogOptions; the error
/// names the parameter.
fn options(query: &str) -> Result<(LogOptions, bool), String> {
    let mut options = LogOptions::default();
    let mut previous = false;
    let mut since_seconds = None;
    let mut since_time = None;
    let flag = |name: &str, value: &str| match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{name}: {value:?} is not a boolean")),
    };
    let number = |name: &str, value: &str, least: i64| match value.parse::<i64>() {
        Ok(n) if n >= least => Ok(n),
        _ => Err(format!(
            "{name}: {value:?} must be an integer of at least {least}"
        )),
    };
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "follow" => options.follow = flag(&name, &value)?,
            "timestamps" => options.timestamps = flag(&name, &value)?,
            "previous" => previous = flag(&name, &value)?,
            "tailLines" => {
                options.tail_lines = Some(number(&name, &value, 0)?.try_into().unwrap_or(0));
            }
            "limitBytes" => {
                options.limit_bytes = Some(number(&name, &value, 1)?.try_into().unwrap_or(1));
            }
            "sinceSeconds" => since_seconds = Some(number(&name, &value, 1)?),
            "sinceTime" => {
                since_time = Some(
                    humantime::parse_rfc3339_weak(&value)
                        .map_err(|e| format!("sinceTime: {value:?}: {e}"))?,
                );
            }
            // Other parameters (e.g. `container`, `pretty`) change nothing here.
            _ => {}
        }
    }
    options.since = match (since_seconds, since_time) {
        (Some(_), Some(_)) => {
            return Err("sinceSeconds and sinceTime: at most one may be given".into());
        }
        (Some(seconds), None) => {
            SystemTime::now().checked_sub(Duration::from_secs(seconds.unsigned_abs()))
        }
        (None, time) => time,
    };
    Ok((options, previous))
}

/// Answers a request for `rest` (`{namespace}/{pod}/{container}`).
pub fn serve(view: &AgentView, rest: &str, query: &str) -> Reply {
    let parts: Vec<&str> = rest.split('/').collect();
    let [namespace, pod, container] = parts.as_slice() else {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "expected /containerLogs/{namespace}/{pod}/{container}\n",
        );
    };
    let (options, previous) = match options(query) {
        Ok(found) => found,
        Err(e) => return reply(StatusCode::BAD_REQUEST, "text/plain", format!("{e}\n")),
    };
    let log = match lookup::find(
        &view.statuses,
        &view.cache,
        namespace,
        pod,
        container,
        previous,
    ) {
        Ok(log) => log,
        Err(e) => {
            let status = if e.is_not_found() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_REQUEST
            };
            return reply(status, "text/plain", format!("{e}\n"));
        }
    };
    let (tx, rx) = mpsc::channel(4);
    let cache = view.cache.clone();
    let path = log.path.clone();
    let what = format!("{namespace}/{pod}/{container}");
    // The reader lives as long as the response: dropped with it (the
    // client went away), it is aborted.
    let reader = AbortOnDropHandle::new(tokio::spawn(async move {
        let running = move || lookup::is_running(&cache, &log);
        if let Err(error) = reader::read(path, options, tx, running).await {
            tracing::warn!(%error, container = %what, "reading a container's log");
        }
    }));
    let mut response = hyper::Response::new(Body::Stream {
        chunks: rx,
        _source: reader,
    });
    if let Ok(value) = "text/plain".parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_and_checked_by_name() {
        let (read, previous) =
            options_of("follow=true&tailLines=10&timestamps=1&previous=true&limitBytes=5");
        assert!(read.follow && read.timestamps && previous);
        assert_eq!(read.tail_lines, Some(10));
        assert_eq!(read.limit_bytes, Some(5));
        let (read, _) = options_of("sinceTime=2026-12-07T10%3A00%3A00Z");
        assert_eq!(
            read.since,
            humantime::parse_rfc3339("2026-12-07T10:00:00Z").ok()
        );
        for (bad, name) in [
            ("tailLines=-1", "tailLines"),
            ("limitBytes=0", "limitBytes"),
            ("follow=yes", "follow"),
            (
                "sinceSeconds=5&sinceTime=2026-12-07T10:00:00Z",
                "sinceSeconds",
            ),
        ] {
            let e = options(bad).expect_err(bad);
            assert!(e.starts_with(name), "{bad}: {e}");
        }
    }

    fn options_of(query: &str) -> (LogOptions, bool) {
        options(query).expect("valid")
    }
}
