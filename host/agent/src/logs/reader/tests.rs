//! The CRI log format read back, on files in a temporary directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

const LOG: &str = "\
2026-12-07T10:00:00.000000001Z stdout F one
2026-12-07T10:00:01.000000000Z stderr F two
not a log line
2026-12-07T10:00:02.000000000Z stdout P thr
2026-12-07T10:00:02.100000000Z stdout F ee
2026-12-07T10:00:03.000000000Z stdout F four
";

fn temp_log(name: &str, text: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("wasmlet-log-reader-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("0.log");
    std::fs::write(&path, text).expect("log");
    path
}

async fn read_all(path: PathBuf, options: LogOptions) -> String {
    let (tx, mut rx) = mpsc::channel(16);
    let reading = tokio::spawn(read(path, options, tx, || false));
    let mut out = Vec::new();
    while let Some(chunk) = rx.recv().await {
        out.extend(chunk);
    }
    reading.await.expect("joined").expect("read");
    String::from_utf8(out).expect("utf-8")
}

#[tokio::test]
async fn the_output_is_the_container_s_with_fragments_joined() {
    let path = temp_log("plain", LOG);
    assert_eq!(
        read_all(path.clone(), LogOptions::default()).await,
        "one\ntwo\nthree\nfour\n"
    );
    let tail = LogOptions {
        tail_lines: Some(2),
        ..Default::default()
    };
    assert_eq!(read_all(path.clone(), tail).await, "ee\nfour\n");
    let since = LogOptions {
        since: humantime::parse_rfc3339("2026-12-07T10:00:01Z").ok(),
        timestamps: true,
        ..Default::default()
    };
    assert_eq!(
        read_all(path.clone(), since).await,
        "2026-12-07T10:00:01.000000000Z two\n\
         2026-12-07T10:00:02.000000000Z thr2026-12-07T10:00:02.100000000Z ee\n\
         2026-12-07T10:00:03.000000000Z four\n"
    );
    let limited = LogOptions {
        limit_bytes: Some(6),
        ..Default::default()
    };
    assert_eq!(read_all(path, limited).await, "one\ntw");
}

#[tokio::test]
async fn follow_reads_what_is_written_across_a_rotation_until_the_container_stops() {
    let path = temp_log("follow", "2026-12-07T10:00:00Z stdout F first\n");
    let running = Arc::new(AtomicBool::new(true));
    let (tx, mut rx) = mpsc::channel(16);
    let options = LogOptions {
        follow: true,
        ..Default::default()
    };
    let still = running.clone();
    let reading = tokio::spawn(read(path.clone(), options, tx, move || {
        still.load(Ordering::SeqCst)
    }));
    assert_eq!(rx.recv().await, Some(b"first\n".to_vec()));
    // Half a line waits for its newline.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    io::Write::write_all(&mut file, b"2026-12-07T10:00:01Z stdout F sec").expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    io::Write::write_all(&mut file, b"ond\n").expect("write");
    assert_eq!(rx.recv().await, Some(b"second\n".to_vec()));
    // Rotated: renamed, and the runtime writes a new file.
    std::fs::rename(&path, path.with_extension("log.20261207-100002")).expect("rotate");
    std::fs::write(&path, "2026-12-07T10:00:02Z stderr F third\n").expect("new file");
    assert_eq!(rx.recv().await, Some(b"third\n".to_vec()));
    // Stopped: what it wrote last is sent, then the stream ends.
    std::fs::write(
        &path,
        "2026-12-07T10:00:02Z stderr F third\n2026-12-07T10:00:03Z stdout F last\n",
    )
    .expect("last words");
    running.store(false, Ordering::SeqCst);
    let mut rest = Vec::new();
    while let Some(chunk) = rx.recv().await {
        rest.extend(chunk);
    }
    assert_eq!(String::from_utf8_lossy(&rest), "last\n");
    reading.await.expect("joined").expect("read");
}
