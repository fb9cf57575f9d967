//! Misbehaves on purpose, as its settings say. The host's sandbox tests load it
//! to prove each guarantee: deadlines, memory caps, file and network confinement,
//! trap containment.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;
use wasmlet_plugin_sdk::admission::{self, Decision, Error, Guest, NodeInfo, Pod, host};

#[derive(Deserialize)]
struct Settings {
    /// ok | loop | alloc | panic | fs | connect | connect-caught | bigcall (a
    /// pod label `mode` overrides it)
    mode: String,
    /// fs: the granted directory to try to escape from.
    #[serde(default)]
    dir: String,
    /// connect: where to connect.
    #[serde(default)]
    addr: String,
}

fn read(path: &str) -> String {
    let mut text = String::new();
    match std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => format!("ok:{}", text.trim()),
        Err(e) => format!("err:{e}"),
    }
}

/// Tries to read inside and outside the granted directory, and to write into it;
/// reports every outcome.
fn probe_files(dir: &str) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    out.insert("inside", read(&format!("{dir}/inside.txt")));
    out.insert("dotdot", read(&format!("{dir}/../outside.txt")));
    out.insert("absolute", read("/etc/hostname"));
    out.insert("symlink", read(&format!("{dir}/link-out")));
    let write = std::fs::write(format!("{dir}/written.txt"), b"pwned");
    out.insert(
        "write",
        write.map_or_else(|e| format!("err:{e}"), |()| "ok".into()),
    );
    out
}

struct Hostile;

impl Guest for Hostile {
    fn validate_settings() -> Result<(), Error> {
        host::typed_settings::<Settings>().map(drop)
    }

    fn admit(pod: Pod, _node: NodeInfo, _active: Vec<Pod>) -> Result<Decision, Error> {
        let settings: Settings = host::typed_settings()?;
        // A pod label can override the mode: one loaded plugin can misbehave on
        // one call and behave on the next.
        let mode = pod.label("mode").unwrap_or(&settings.mode);
        match mode {
            "ok" => Ok(admission::admit()),
            "loop" => {
                let mut spins: u64 = 0;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0xA5; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile plugin panics on purpose"),
            // One host call carrying 4 MiB.
            "bigcall" => {
                host::info("x".repeat(4 << 20));
                Ok(admission::admit())
            }
            "fs" => {
                let report = probe_files(&settings.dir);
                let message =
                    serde_json::to_string(&report).map_err(|e| Error::Failed(e.to_string()))?;
                Ok(admission::reject("FileReport", message))
            }
            "connect" => match std::net::TcpStream::connect(settings.addr.as_str()) {
                Ok(_) => Ok(admission::reject(
                    "Connected",
                    format!("connected to {}", settings.addr),
                )),
                Err(e) => Err(Error::Failed(format!("connect {}: {e}", settings.addr))),
            },
            // Tries, swallows the refusal and admits.
            "connect-caught" => {
                let tried = std::net::TcpStream::connect(settings.addr.as_str());
                Ok(Decision {
                    message: format!("connect: {}", tried.is_ok()),
                    ..admission::admit()
                })
            }
            other => Err(Error::InvalidSettings(format!("mode: unknown {other:?}"))),
        }
    }
}

wasmlet_plugin_sdk::admission::export_admission!(Hostile);
