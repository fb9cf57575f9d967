//! `wasmlet exec` and `wasmlet port-forward`, as kubectl's, through the
//! agent's kubelet port: a WebSocket speaking the runtimes' channel protocol
//! (`v4.channel.k8s.io`: each binary message starts with its channel).

use std::process::ExitCode;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::kubelet_client::{KubeletClient, KubeletFlags};

/// Exec's channels.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
/// The outcome, as a `metav1.Status`.
const ERROR: u8 = 3;
/// The terminal's size, as `{"Width":…,"Height":…}`.
const RESIZE: u8 = 4;

/// The local terminal in raw mode while a remote terminal runs (keys pass
/// through as typed, the remote echoes), restored when dropped.
struct RawTerminal(rustix::termios::Termios);

impl RawTerminal {
    /// None unless standard input is a terminal.
    fn enter() -> Option<Self> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(Self(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.0,
        );
    }
}

/// The resize message for the local terminal's size, if there is one.
fn terminal_size() -> Option<Vec<u8>> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    let mut frame = vec![RESIZE];
    frame.extend(format!("{{\"Width\":{},\"Height\":{}}}", size.ws_col, size.ws_row).bytes());
    Some(frame)
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    pub pod: String,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub stream: StreamArgs,
}

/// What `exec` and `attach` share.
#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// The container [default: the pod's `kubectl.kubernetes.io/default-container`, else its first].
    #[arg(short, long)]
    pub container: Option<String>,
    /// Pass standard input to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Run the command in a terminal (its output is one stream; with
    /// --stdin only, as kubectl's).
    #[arg(short, long)]
    pub tty: bool,
    #[command(flatten)]
    pub kubelet: KubeletFlags,
}

/// The command's exit code from the stream's closing status: 0 on
/// `Success`, the `ExitCode` cause of a `NonZeroExitCode`; an error else.
fn exit_code(status: &Value) -> anyhow::Result<u8> {
    if status["status"] == "Success" {
        return Ok(0);
    }
    if status["reason"] == "NonZeroExitCode" {
        let code = status["details"]["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str()?.parse::<i64>().ok())
            .unwrap_or(1);
        return Ok(u8::try_from(code.clamp(1, 255)).unwrap_or(1));
    }
    anyhow::bail!(
        "{}",
        status["message"].as_str().unwrap_or("the stream failed")
    )
}

pub async fn exec(args: ExecArgs, default_ca: std::path::PathBuf) -> anyhow::Result<ExitCode> {
    stream("exec", &args.pod, &args.command, &args.stream, default_ca).await
}

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    pub pod: String,
    #[command(flatten)]
    pub stream: StreamArgs,
}

pub async fn attach(args: AttachArgs, default_ca: std::path::PathBuf) -> anyhow::Result<ExitCode> {
    stream("attach", &args.pod, &[], &args.stream, default_ca).await
}

/// `exec` or `attach`: the container's streams, here, until it ends.
async fn stream(
    kind: &str,
    pod: &str,
    command: &[String],
    args: &StreamArgs,
    default_ca: std::path::PathBuf,
) -> anyhow::Result<ExitCode> {
    let client = KubeletClient::new(&args.kubelet, default_ca)?;
    let container = client
        .container_of(&args.namespace, pod, args.container.clone())
        .await?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for word in command {
        query.append_pair("command", word);
    }
    query.append_pair("stdout", "1");
    // As kubectl: a terminal only with standard input (else its output
    // would race the command's end).
    let tty = args.tty && args.stdin;
    if !tty {
        query.append_pair("stderr", "1");
    }
    if args.stdin {
        query.append_pair("stdin", "1");
    }
    if tty {
        query.append_pair("tty", "1");
    }
    let path = format!(
        "/{kind}/{}/{pod}/{container}?{}",
        args.namespace,
        query.finish()
    );
    let socket = client.websocket(&path).await?;
    let (mut sink, mut source) = socket.split();
    let _raw = tty.then(RawTerminal::enter).flatten();
    if tty && let Some(frame) = terminal_size() {
        sink.send(Message::Binary(frame.into())).await?;
    }
    let mut stdin = args.stdin.then(stdin_chunks);
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    loop {
        tokio::select! {
            message = source.next() => {
                let Some(message) = message else {
                    // Closed without a status: the runtime's older servers do
                    // so on success.
                    return Ok(ExitCode::SUCCESS);
                };
                let data = match message.context("the stream")? {
                    Message::Binary(data) => data,
                    Message::Close(_) => return Ok(ExitCode::SUCCESS),
                    _ => continue,
                };
                let Some((&channel, payload)) = data.split_first() else { continue };
                match channel {
                    STDOUT => {
                        stdout.write_all(payload).await?;
                        stdout.flush().await?;
                    }
                    STDERR => {
                        stderr.write_all(payload).await?;
                        stderr.flush().await?;
                    }
                    ERROR if !payload.is_empty() => {
                        let status: Value = serde_json::from_slice(payload)
                            .context("the stream's status")?;
                        return exit_code(&status).map(ExitCode::from);
                    }
                    _ => {}
                }
            }
            chunk = async { stdin.as_mut()?.recv().await }, if stdin.is_some() => {
                let Some(chunk) = chunk else {
                    // The channel protocol has no way to say end-of-input.
                    stdin = None;
                    continue;
                };
                let mut frame = Vec::with_capacity(chunk.len() + 1);
                frame.push(STDIN);
                frame.extend_from_slice(&chunk);
                sink.send(Message::Binary(frame.into())).await?;
            }
        }
    }
}

/// Standard input in chunks, read on a thread of its own: a read blocked on
/// a terminal or an open pipe would otherwise hold up the async runtime's
/// shutdown when the command has ended. The process's exit ends the thread.
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0u8; 16 << 10];
        while let Ok(n) = stdin.read(&mut buffer) {
            if n == 0 || tx.blocking_send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

#[derive(Debug, clap::Args)]
pub struct PortForwardArgs {
    pub pod: String,
    /// `LOCAL:REMOTE`, or `PORT` for the same number on both ends.
    #[arg(required = true)]
    pub ports: Vec<String>,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: std::net::IpAddr,
    #[command(flatten)]
    pub kubelet: KubeletFlags,
}

fn port_pair(text: &str) -> anyhow::Result<(u16, u16)> {
    let parse = |p: &str| {
        p.parse::<u16>()
            .with_context(|| format!("{text:?}: {p:?} is not a port"))
    };
    match text.split_once(':') {
        Some((local, remote)) => Ok((parse(local)?, parse(remote)?)),
        None => {
            let port = parse(text)?;
            Ok((port, port))
        }
    }
}

/// Listens on each local port until interrupted; each connection is a
/// stream of its own to the pod's port.
pub async fn port_forward(
    args: PortForwardArgs,
    default_ca: std::path::PathBuf,
) -> anyhow::Result<ExitCode> {
    let client = std::sync::Arc::new(KubeletClient::new(&args.kubelet, default_ca)?);
    let mut listeners = tokio::task::JoinSet::new();
    for text in &args.ports {
        let (local, remote) = port_pair(text)?;
        let listener = tokio::net::TcpListener::bind((args.address, local))
            .await
            .with_context(|| format!("listening on {}:{local}", args.address))?;
        println!("Forwarding from {} -> {remote}", listener.local_addr()?);
        let path = format!("/portForward/{}/{}?port={remote}", args.namespace, args.pod);
        let client = client.clone();
        listeners.spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((tcp, _)) = listener.accept().await else {
                    // E.g. out of file descriptors: not a busy loop.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                };
                let (client, path) = (client.clone(), path.clone());
                connections.spawn(async move {
                    if let Err(e) = forward(&client, &path, tcp).await {
                        eprintln!("wasmlet: port {remote}: {e:#}");
                    }
                });
            }
        });
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(ExitCode::SUCCESS),
        _ = listeners.join_next() => Ok(ExitCode::FAILURE),
    }
}

/// One local connection relayed to the pod's port: channel 0 carries the
/// data, channel 1 the errors; each starts with the port number (2 bytes).
async fn forward(
    client: &KubeletClient,
    path: &str,
    tcp: tokio::net::TcpStream,
) -> anyhow::Result<()> {
    const DATA: u8 = 0;
    const ERRORS: u8 = 1;
    let socket = client.websocket(path).await?;
    let (mut sink, mut source) = socket.split();
    let (mut from_local, mut to_local) = tcp.into_split();
    // The port-number prefix of each channel is still to come.
    let mut prefix = [2usize, 2usize];
    let mut buffer = vec![0u8; 16 << 10];
    let mut local_open = true;
    loop {
        tokio::select! {
            message = source.next() => {
                let data = match message {
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                };
                let Some((&channel, mut payload)) = data.split_first() else { continue };
                if let Some(left) = prefix.get_mut(usize::from(channel)) {
                    let skip = (*left).min(payload.len());
                    payload = &payload[skip..];
                    *left -= skip;
                }
                match channel {
                    DATA => to_local.write_all(payload).await?,
                    ERRORS if !payload.is_empty() => {
                        anyhow::bail!("{}", String::from_utf8_lossy(payload));
                    }
                    _ => {}
                }
            }
            read = from_local.read(&mut buffer), if local_open => {
                let n = read?;
                if n == 0 {
                    local_open = false;
                    continue;
                }
                let mut frame = Vec::with_capacity(n + 1);
                frame.push(DATA);
                frame.extend_from_slice(&buffer[..n]);
                sink.send(Message::Binary(frame.into())).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_come_from_the_closing_status() {
        let success = serde_json::json!({"status": "Success"});
        assert_eq!(exit_code(&success).ok(), Some(0));
        let failed = serde_json::json!({
            "status": "Failure",
            "reason": "NonZeroExitCode",
            "message": "command terminated with non-zero exit code",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
        });
        assert_eq!(exit_code(&failed).ok(), Some(3));
        let broken = serde_json::json!({"status": "Failure", "message": "no such file"});
        assert_eq!(
            exit_code(&broken).map_err(|e| e.to_string()),
            Err("no such file".into())
        );
        assert_eq!(port_pair("8080").ok(), Some((8080, 8080)));
        assert_eq!(port_pair("0:80").ok(), Some((0, 80)));
        assert!(port_pair("x:80").is_err());
    }
}
