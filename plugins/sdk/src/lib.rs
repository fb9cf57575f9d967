//! Write wasmlet plugins in Rust.
//!
//! Enable the feature of your plugin's kind (`admission`, `probe`, `lifecycle`,
//! `pod-source`), implement that world's `Guest` trait and export it:
//!
//! ```ignore
//! use wasmlet_plugin_sdk::admission::{self, Decision, Guest, NodeInfo, Pod, Error};
//!
//! struct MyPolicy;
//!
//! impl Guest for MyPolicy {
//!     fn validate_settings() -> Result<(), Error> { Ok(()) }
//!     fn admit(pod: Pod, _node: NodeInfo, _active: Vec<Pod>) -> Result<Decision, Error> {
//!         Ok(admission::admit())
//!     }
//! }
//!
//! wasmlet_plugin_sdk::admission::export_admission!(MyPolicy);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`: the `.wasm` is a
//! component, ready for a plugin directory next to its manifest.

/// Generates the bindings of one world into the module this is invoked in;
/// with `http`, its `wasi:http` import is the `wasip2` crate's (see [`http`]).
macro_rules! world {
    ($world:literal, $export:literal, $module:literal, http) => {
        world!(
            $world,
            $export,
            $module,
            with: {
                "wasi:http/types@0.2.12": wasip2::http::types,
                "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
                "wasi:io/error@0.2.12": wasip2::io::error,
                "wasi:io/poll@0.2.12": wasip2::io::poll,
                "wasi:io/streams@0.2.12": wasip2::io::streams,
                "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
            },
        );
    };
    ($world:literal, $export:literal, $module:literal $(, $($with:tt)+)?) => {
        wit_bindgen::generate!({
            path: "../../wit",
            world: $world,
            pub_export_macro: true,
            export_macro_name: $export,
            default_bindings_module: $module,
            generate_all,
            $($($with)+)?
        });
    };
}

#[cfg(feature = "http")]
pub mod http;

#[cfg(feature = "admission")]
pub mod admission {
    world!(
        "wasmlet:plugin/admission@0.1.0",
        "export_admission",
        "wasmlet_plugin_sdk::admission"
    );

    pub use exports::wasmlet::plugin::admission_handler::{Decision, Guest};
    pub use wasmlet::plugin::types::*;

    /// Settings, logging and node facts.
    pub mod host {
        pub use super::wasmlet::plugin::host::*;
        crate::host_helpers!();
    }

    /// The pod may start.
    pub fn admit() -> Decision {
        Decision {
            admit: true,
            reason: String::new(),
            message: String::new(),
        }
    }

    /// The pod may not start: `reason` is CamelCase, `message` is for people.
    pub fn reject(reason: impl Into<String>, message: impl Into<String>) -> Decision {
        Decision {
            admit: false,
            reason: reason.into(),
            message: message.into(),
        }
    }

    crate::pod_helpers!();

    /// Builders for fixtures, so a plugin's pure logic can be unit-tested
    /// natively (`cargo test --target x86_64-unknown-linux-gnu`); the
    /// component as a whole is tested with `wasmlet plugin test`.
    pub mod testing {
        use super::*;

        /// A pod in `default` with no containers, labels or settings.
        pub fn pod(name: &str) -> Pod {
            Pod {
                name: name.into(),
                namespace: "default".into(),
                uid: format!("uid-{name}"),
                labels: Vec::new(),
                annotations: Vec::new(),
                source: "file".into(),
                node_name: "node".into(),
                node_selector: Vec::new(),
                host_network: false,
                host_pid: false,
                host_ipc: false,
                containers: Vec::new(),
                tolerations: Vec::new(),
                priority: None,
                priority_class_name: None,
                restart_policy: "Always".into(),
                json: "{}".into(),
            }
        }

        impl Pod {
            pub fn in_namespace(mut self, namespace: &str) -> Self {
                self.namespace = namespace.into();
                self
            }

            pub fn with_label(mut self, key: &str, value: &str) -> Self {
                self.labels.push(KeyValue {
                    key: key.into(),
                    value: value.into(),
                });
                self
            }

            pub fn with_container(mut self, name: &str, image: &str) -> Self {
                self.containers.push(Container {
                    name: name.into(),
                    kind: ContainerKind::App,
                    image: image.into(),
                    image_pull_policy: "IfNotPresent".into(),
                    command: Vec::new(),
                    args: Vec::new(),
                    ports: Vec::new(),
                    resources: ResourceRequirements {
                        requests: Vec::new(),
                        limits: Vec::new(),
                    },
                    security_context: None,
                });
                self
            }
        }

        /// A node with no labels, taints or resources.
        pub fn node(name: &str) -> NodeInfo {
            NodeInfo {
                name: name.into(),
                labels: Vec::new(),
                taints: Vec::new(),
                capacity: Vec::new(),
                allocatable: Vec::new(),
            }
        }
    }
}

#[cfg(feature = "probe")]
pub mod probe {
    world!(
        "wasmlet:plugin/probe@0.1.0",
        "export_probe",
        "wasmlet_plugin_sdk::probe",
        http
    );

    pub use exports::wasmlet::plugin::probe_handler::{Guest, Outcome, ProbeResult};
    pub use wasmlet::plugin::exec;
    pub use wasmlet::plugin::types::*;

    pub mod host {
        pub use super::wasmlet::plugin::host::*;
        crate::host_helpers!();
    }

    crate::target_helpers!();

    /// Host-made TCP (and TLS) connections, as `std::io::Read + Write`.
    pub mod net {
        pub use super::wasmlet::plugin::net::*;
        crate::net_helpers!();
    }
}

#[cfg(feature = "lifecycle")]
pub mod lifecycle {
    world!(
        "wasmlet:plugin/lifecycle@0.1.0",
        "export_lifecycle",
        "wasmlet_plugin_sdk::lifecycle",
        http
    );

    pub use exports::wasmlet::plugin::lifecycle_handler::Guest;
    pub use wasmlet::plugin::exec;
    pub use wasmlet::plugin::types::*;

    pub mod host {
        pub use super::wasmlet::plugin::host::*;
        crate::host_helpers!();
    }

    crate::target_helpers!();

    /// Host-made TCP (and TLS) connections, as `std::io::Read + Write`.
    pub mod net {
        pub use super::wasmlet::plugin::net::*;
        crate::net_helpers!();
    }
}

#[cfg(feature = "pod-source")]
pub mod pod_source {
    world!(
        "wasmlet:plugin/pod-source@0.1.0",
        "export_pod_source",
        "wasmlet_plugin_sdk::pod_source",
        http
    );

    pub use exports::wasmlet::plugin::pod_source_handler::{Guest, Problem, Snapshot, SourcePod};
    pub use wasmlet::plugin::changes;
    /// Lists and watches of the Kubernetes API, as granted (`kube-api`).
    pub use wasmlet::plugin::kube_api;
    pub use wasmlet::plugin::types::*;

    pub mod host {
        pub use super::wasmlet::plugin::host::*;
        crate::host_helpers!();
    }

    /// Host-made TCP (and TLS) connections, as `std::io::Read + Write`.
    pub mod net {
        pub use super::wasmlet::plugin::net::*;
        crate::net_helpers!();
    }
}

/// Typed settings and logging shortcuts, in each world's `host` module.
#[doc(hidden)]
#[macro_export]
macro_rules! host_helpers {
    () => {
        /// The plugin's settings, parsed into `T`; a mismatch is
        /// `Error::InvalidSettings` naming what serde could not read.
        pub fn typed_settings<T: serde::de::DeserializeOwned>() -> Result<T, super::Error> {
            serde_json::from_str(&settings())
                .map_err(|e| super::Error::InvalidSettings(e.to_string()))
        }

        pub fn info(message: impl AsRef<str>) {
            log(super::LogLevel::Info, message.as_ref());
        }

        pub fn warn(message: impl AsRef<str>) {
            log(super::LogLevel::Warn, message.as_ref());
        }
    };
}

/// Where a probe or hook goes, in the worlds whose calls are about a container.
#[doc(hidden)]
#[macro_export]
macro_rules! target_helpers {
    () => {
        impl ContainerTarget {
            /// The `(host, port)` a handler reaches: `host` if set, else the
            /// pod's IP; `port` by number or by the name of one of the
            /// container's ports.
            pub fn resolve(&self, host: Option<&str>, port: &Port) -> Result<(String, u16), Error> {
                let host = host
                    .filter(|h| !h.is_empty())
                    .or(self.pod_ip.as_deref())
                    .ok_or_else(|| Error::InvalidInput("the pod has no IP yet".into()))?;
                let port = match port {
                    Port::Number(n) => *n,
                    Port::Name(name) => self
                        .ports
                        .iter()
                        .find(|p| p.name.as_deref() == Some(name.as_str()))
                        .map(|p| p.container_port)
                        .ok_or_else(|| {
                            Error::InvalidInput(format!("the container has no port named {name:?}"))
                        })?,
                };
                Ok((host.to_owned(), port))
            }
        }

        impl HttpGetAction {
            /// The headers as `(name, value)` pairs, in order.
            pub fn header_pairs(&self) -> Vec<(String, String)> {
                self.headers
                    .iter()
                    .map(|kv| (kv.key.clone(), kv.value.clone()))
                    .collect()
            }

            /// The kubelet's request for this action (its
            /// `NewRequestForHTTPGetAction`): GET `path` from `host`, else the
            /// pod's IP, at `port`; the action's headers in order, then
            /// `User-Agent: user_agent` and `Accept: */*` unless it sets them
            /// (an empty `Accept` sends none). A `Host` header names the server.
            pub fn request(
                &self,
                target: &ContainerTarget,
                user_agent: &str,
            ) -> Result<$crate::http::Request, Error> {
                let scheme =
                    $crate::http::Scheme::of_action(&self.scheme).map_err(Error::InvalidInput)?;
                let (host, port) = target.resolve(self.host.as_deref(), &self.port)?;
                let mut request = $crate::http::Request::get(scheme, &host, port, &self.path);
                request.headers = self.header_pairs();
                if request.header("user-agent").is_none() {
                    request
                        .headers
                        .push(("User-Agent".into(), user_agent.into()));
                }
                match request.header("accept") {
                    None => request.headers.push(("Accept".into(), "*/*".into())),
                    Some("") => request
                        .headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("accept")),
                    Some(_) => {}
                }
                Ok(request)
            }
        }
    };
}

/// A `net` connection as a byte stream, in each world that imports `net`.
#[doc(hidden)]
#[macro_export]
macro_rules! net_helpers {
    () => {
        /// A connection the host made, read and written like a `TcpStream`.
        /// Every read or write is one host call: read in large chunks.
        #[derive(Debug)]
        pub struct Stream(Connection);

        impl Stream {
            /// Connects to `address` (`ip:port`).
            pub fn connect(address: &str) -> std::io::Result<Self> {
                connect(address, None).map(Self).map_err(io_error)
            }

            /// Connects to `address` and speaks TLS over it.
            pub fn connect_tls(address: &str, tls: Tls) -> std::io::Result<Self> {
                connect(address, Some(&tls)).map(Self).map_err(io_error)
            }
        }

        impl std::io::Read for Stream {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let max = u32::try_from(buf.len()).unwrap_or(u32::MAX);
                let data = self.0.receive(max).map_err(io_error)?;
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                Ok(n)
            }
        }

        impl std::io::Write for Stream {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.send(buf).map_err(io_error)?;
                Ok(buf.len())
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        fn io_error(error: super::Error) -> std::io::Error {
            use super::Error;
            match error {
                Error::Denied(m) => std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("denied: {m}"),
                ),
                Error::InvalidInput(m) => std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
                Error::InvalidSettings(m) | Error::Failed(m) => std::io::Error::other(m),
            }
        }
    };
}

/// Pod accessors, in each world that sees pods.
#[doc(hidden)]
#[macro_export]
macro_rules! pod_helpers {
    () => {
        impl Pod {
            /// The value of label `key`, if the pod has it.
            pub fn label(&self, key: &str) -> Option<&str> {
                self.labels
                    .iter()
                    .find(|kv| kv.key == key)
                    .map(|kv| kv.value.as_str())
            }

            /// The whole pod as JSON, for fields the typed view leaves out.
            pub fn json(&self) -> Result<serde_json::Value, Error> {
                serde_json::from_str(&self.json)
                    .map_err(|e| Error::InvalidInput(format!("pod JSON: {e}")))
            }
        }

        impl NodeInfo {
            pub fn label(&self, key: &str) -> Option<&str> {
                self.labels
                    .iter()
                    .find(|kv| kv.key == key)
                    .map(|kv| kv.value.as_str())
            }

            /// Allocatable amount of `resource` in thousandths (cpu: millicores).
            pub fn allocatable_milli(&self, resource: &str) -> Option<i64> {
                self.allocatable
                    .iter()
                    .find(|q| q.name == resource)
                    .map(|q| q.milli)
            }
        }
    };
}
