//! Reading a container's log as the kubelet's `ReadLogs` does: the CRI log
//! format (`<RFC3339Nano> <stdout|stderr> <P|F> <content>`, a `P` line being
//! a fragment of a longer one) turned back into the container's output,
//! from the last `tailLines`, from `sinceTime`, up to `limitBytes`, with its
//! timestamps if asked, and followed while the container runs (across a
//! rotation, which renames the file and has the runtime open a new one).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// What part of the log, and how (the kubelet's `PodLogOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    /// The last this many lines of the file.
    pub tail_lines: Option<usize>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
    /// Lines written at or after this time.
    pub since: Option<SystemTime>,
    /// Each line prefixed with its time (RFC 3339, as the runtime wrote it).
    pub timestamps: bool,
}

/// How often a followed log is looked at for more.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Output is sent in chunks of about this size.
const CHUNK: usize = 32 << 10;

/// One line of the CRI log format.
#[derive(Debug, PartialEq, Eq)]
struct Line<'a> {
    timestamp: &'a [u8],
    content: &'a [u8],
    /// A fragment: no newline after it.
    partial: bool,
}

fn parse(line: &[u8]) -> Option<Line<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let timestamp = fields.next()?;
    let stream = fields.next()?;
    let tag = fields.next()?;
    let content = fields.next().unwrap_or_default();
    if stream != b"stdout" && stream != b"stderr" {
        return None;
    }
    // Tags are `:`-separated; the first is P(artial) or F(ull).
    let partial = match tag.split(|b| *b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Line {
        timestamp,
        content,
        partial,
    })
}

fn time_of(timestamp: &[u8]) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(std::str::from_utf8(timestamp).ok()?).ok()
}

/// Turns CRI log lines into output, within the options' bounds.
struct Writer {
    options: LogOptions,
    written: u64,
    buffer: Vec<u8>,
    out: mpsc::Sender<Vec<u8>>,
}

impl Writer {
    /// False once the limit is reached or the reader is gone: stop.
    async fn line(&mut self, raw: &[u8]) -> bool {
        let Some(line) = parse(raw) else {
            // As the kubelet: a line that is not the CRI format is skipped.
            return true;
        };
        if let Some(since) = self.options.since
            && time_of(line.timestamp).is_some_and(|t| t < since)
        {
            return true;
        }
        let mut text = Vec::with_capacity(line.content.len() + 40);
        if self.options.timestamps {
            text.extend_from_slice(line.timestamp);
            text.push(b' ');
        }
        text.extend_from_slice(line.content);
        if !line.partial {
            text.push(b'\n');
        }
        let mut keep_going = true;
        if let Some(limit) = self.options.limit_bytes {
            let room = usize::try_from(limit.saturating_sub(self.written)).unwrap_or(usize::MAX);
            if text.len() >= room {
                text.truncate(room);
                keep_going = false;
            }
        }
        self.written += text.len() as u64;
        self.buffer.extend_from_slice(&text);
        if self.buffer.len() >= CHUNK || !keep_going {
            keep_going &= self.flush().await;
        }
        keep_going
    }

    async fn flush(&mut self) -> bool {
        if self.buffer.is_empty() {
            return true;
        }
        let chunk = std::mem::take(&mut self.buffer);
        self.out.send(chunk).await.is_ok()
    }
}

/// Sends the log at `path` to `out`, as `options` ask; with `follow`, until
/// `running` says the container stopped (and what it wrote last is sent) or
/// the receiver is dropped.
pub async fn read(
    path: PathBuf,
    options: LogOptions,
    out: mpsc::Sender<Vec<u8>>,
    running: impl Fn() -> bool + Send,
) -> io::Result<()> {
    let mut file = tokio::fs::File::open(&path).await?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).await?;
    let mut position = data.len() as u64;
    let follow = options.follow;
    let tail = options.tail_lines;
    let mut writer = Writer {
        options,
        written: 0,
        buffer: Vec::new(),
        out,
    };
    // Complete lines only; a line still being written waits for its newline.
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut pending = data.split_off(complete);
    let mut lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    lines.pop(); // after the last newline
    let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
    for line in &lines[skip..] {
        if !writer.line(line).await {
            return Ok(());
        }
    }
    if !writer.flush().await || !follow {
        return Ok(());
    }
    let mut inode = file.metadata().await?.ino();
    loop {
        // Read whatever the runtime wrote since; once the container stopped,
        // what is left is read and the stream ends.
        let stopped = !running();
        let mut more = Vec::new();
        file.read_to_end(&mut more).await?;
        position += more.len() as u64;
        if more.is_empty() {
            // Rotated (a new file at the path) or truncated: start it over.
            match tokio::fs::metadata(&path).await {
                Ok(now) if now.ino() != inode || now.len() < position => {
                    file = tokio::fs::File::open(&path).await?;
                    inode = now.ino();
                    position = 0;
                    pending.clear();
                    continue;
                }
                _ => {}
            }
        }
        pending.extend_from_slice(&more);
        if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
            let rest = pending.split_off(end + 1);
            for line in pending.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if !writer.line(line).await {
                    return Ok(());
                }
            }
            pending = rest;
            if !writer.flush().await {
                return Ok(());
            }
        }
        if stopped {
            return Ok(());
        }
        if writer.out.is_closed() {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

#[cfg(test)]
mod tests;
