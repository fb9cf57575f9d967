//! The `kube-api` watch a guest holds, in a file of its own so that the
//! generated bindings can name it without importing the import's host side.

use crate::capability::ApiWatch;

/// An open watch, as the guest's `watch-stream` resource.
pub struct HostWatch(pub(crate) Box<dyn ApiWatch>);
