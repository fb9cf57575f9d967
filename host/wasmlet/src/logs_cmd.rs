//! `wasmlet logs`: a container's log from the agent's kubelet port, as
//! `kubectl logs` prints it.

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::kubelet_client::{KubeletClient, KubeletFlags};

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The pod's name (a static pod's ends with `-<node name>`).
    pub pod: String,
    /// The container [default: the pod's `kubectl.kubernetes.io/default-container`, else its first].
    pub container: Option<String>,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    #[arg(short = 'c', long = "container", conflicts_with = "container")]
    pub container_flag: Option<String>,
    /// Keep printing what the container writes, until it stops.
    #[arg(short, long)]
    pub follow: bool,
    /// The last this many lines (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Only what was written this recently (`10s`, `5m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// Only what was written from this time on (RFC 3339).
    #[arg(long, conflicts_with = "since")]
    pub since_time: Option<String>,
    /// Each line with the time it was written.
    #[arg(long)]
    pub timestamps: bool,
    /// The previous instance's log (before the last restart).
    #[arg(short, long)]
    pub previous: bool,
    /// At most this many bytes.
    #[arg(long)]
    pub limit_bytes: Option<u64>,
    #[command(flatten)]
    pub kubelet: KubeletFlags,
}

impl LogsArgs {
    fn query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if self.follow {
            query.append_pair("follow", "true");
        }
        if self.tail >= 0 {
            query.append_pair("tailLines", &self.tail.to_string());
        }
        if let Some(since) = self.since {
            query.append_pair("sinceSeconds", &since.as_secs().max(1).to_string());
        }
        if let Some(time) = &self.since_time {
            query.append_pair("sinceTime", time);
        }
        if self.timestamps {
            query.append_pair("timestamps", "true");
        }
        if self.previous {
            query.append_pair("previous", "true");
        }
        if let Some(limit) = self.limit_bytes {
            query.append_pair("limitBytes", &limit.to_string());
        }
        query.finish()
    }
}

pub async fn run(args: LogsArgs, default_ca: PathBuf) -> anyhow::Result<()> {
    let client = KubeletClient::new(&args.kubelet, default_ca)?;
    let named = args
        .container
        .clone()
        .or_else(|| args.container_flag.clone());
    let container = client
        .container_of(&args.namespace, &args.pod, named)
        .await?;
    let path = format!(
        "/containerLogs/{}/{}/{container}?{}",
        args.namespace,
        args.pod,
        args.query()
    );
    let answer = client.get(&path).await?;
    let mut body = answer.response.into_body();
    let mut stdout = tokio::io::stdout();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            stdout.write_all(&data).await?;
            stdout.flush().await?;
        }
    }
    Ok(())
}
