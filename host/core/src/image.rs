//! Images on the node.

/// An image the runtime holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    /// The runtime's id (for OCI runtimes, the config digest).
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size_bytes: u64,
    /// The image's default user, as a UID or a name.
    pub uid: Option<i64>,
    pub username: String,
    /// The runtime asks that garbage collection leave it alone (e.g. the pause image).
    pub pinned: bool,
}

/// Registry credentials for a pull, as the kubelet passes them from image pull secrets.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    /// base64 of `username:password`, an alternative to the two fields above.
    pub auth: String,
    pub server_address: String,
    pub identity_token: String,
    pub registry_token: String,
}

// Never print secrets, not even in debug logs.
impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("server_address", &self.server_address)
            .finish_non_exhaustive()
    }
}

/// Usage of a filesystem the runtime keeps images (or writable layers) on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilesystemUsage {
    pub mountpoint: String,
    pub used_bytes: Option<u64>,
    pub inodes_used: Option<u64>,
}
