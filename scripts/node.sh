#!/usr/bin/env bash
# The real node runtime for wasmlet's demo and tests: a private containerd (own
# root, state, socket and CNI network) and a local OCI registry on 127.0.0.1, both
# built only from Debian's packages. Never touches a system-wide containerd.
#
#   scripts/node.sh up                  install what is missing, start, load images
#   scripts/node.sh down                remove every sandbox, stop everything, leave no mounts/links
#   scripts/node.sh stop-containerd     stop containerd only; containers keep running (tests use it)
#   scripts/node.sh start-containerd    start it again
#   scripts/node.sh status              exit 0 if containerd and the registries are up
#   scripts/node.sh purge               down, then delete all state
#   scripts/node.sh env                 print the environment the tests read
#
# Idempotent: `up` on a running node only re-checks it; `down` on a stopped one is a no-op.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

: "${WASMLET_NODE_HOME:=/var/lib/wasmlet}"   # containerd root, registry storage, images
: "${WASMLET_NODE_RUN:=/run/wasmlet}"        # containerd state, socket, pid files, logs
: "${WASMLET_REGISTRY:=127.0.0.1:5000}"
# A second registry that answers only with a login (image pull secrets' tests).
: "${WASMLET_PRIVATE_REGISTRY:=127.0.0.1:5001}"
: "${WASMLET_POD_SUBNET:=10.217.0.0/16}"
: "${WASMLET_BRIDGE:=wasmlet0}"

socket=$WASMLET_NODE_RUN/containerd/containerd.sock
config_dir=$WASMLET_NODE_HOME/etc
cni_conf_dir=$WASMLET_NODE_HOME/cni/net.d
test_image=$WASMLET_REGISTRY/wasmlet/busybox:1.35
pause_image=$WASMLET_REGISTRY/wasmlet/pause:1
# Only in the registry, never preloaded: for real pulls.
pull_image=$WASMLET_REGISTRY/wasmlet/pulltest:1
# Only in the private registry, never preloaded: pulled with a login.
private_image=$WASMLET_PRIVATE_REGISTRY/wasmlet/private:1
private_user=wasmlet
private_password=wasmlet-pull
# bcrypt (cost 4: the registry checks it on every request) of the password above.
private_htpasswd='wasmlet:$2b$04$nhUpYQq.w/KOM4LG.UiYLe4MvjpZf7FhAbWsMLInojTebbD7E42Ly'

log() { printf 'node: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

ctr_() { ctr --address "$socket" --namespace k8s.io "$@"; }

# ---------------------------------------------------------------- install

install_packages() {
  local wanted=(containerd runc containernetworking-plugins busybox-static docker-registry
                curl iproute2 iptables) missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || die "need root to install: ${missing[*]}"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian starts a system containerd on install where systemd runs; that one
  # stays untouched: ours has its own socket and state.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- config

write_configs() {
  mkdir -p "$config_dir" "$cni_conf_dir" "$WASMLET_NODE_RUN/containerd" "$WASMLET_NODE_HOME/registry" \
    "$WASMLET_NODE_HOME/registry-private"
  cat > "$config_dir/containerd.toml" <<TOML
version = 2
root = "$WASMLET_NODE_HOME/containerd"
state = "$WASMLET_NODE_RUN/containerd"

[grpc]
  address = "$socket"

[ttrpc]
  address = "$socket.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$WASMLET_NODE_HOME/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # Mandatory on these machines: the VM forbids a negative oom_score_adj, and
  # without this every RunPodSandbox fails inside runc.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$cni_conf_dir"

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$WASMLET_REGISTRY"]
    endpoint = ["http://$WASMLET_REGISTRY"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$WASMLET_PRIVATE_REGISTRY"]
    endpoint = ["http://$WASMLET_PRIVATE_REGISTRY"]
TOML
  cat > "$cni_conf_dir/10-wasmlet.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "wasmlet",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$WASMLET_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$WASMLET_POD_SUBNET" }]],
        "dataDir": "$WASMLET_NODE_HOME/cni/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
  cat > "$config_dir/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WASMLET_NODE_HOME/registry
  delete:
    enabled: true
http:
  addr: $WASMLET_REGISTRY
YAML
  printf '%s\n' "$private_htpasswd" > "$config_dir/htpasswd"
  cat > "$config_dir/registry-private.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WASMLET_NODE_HOME/registry-private
http:
  addr: $WASMLET_PRIVATE_REGISTRY
auth:
  htpasswd:
    realm: wasmlet-private
    path: $config_dir/htpasswd
YAML
}

# ---------------------------------------------------------------- processes

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "$what did not come up in ${secs}s"
}

registry_up() { curl -sf "http://$WASMLET_REGISTRY/v2/" >/dev/null 2>&1; }
private_registry_up() {
  curl -sf -u "$private_user:$private_password" "http://$WASMLET_PRIVATE_REGISTRY/v2/" >/dev/null 2>&1
}
containerd_up() { [ -S "$socket" ] && ctr --address "$socket" --connect-timeout 1s version >/dev/null 2>&1; }

start_registry() {
  if ! registry_up; then
    log "starting registry on $WASMLET_REGISTRY"
    setsid docker-registry serve "$config_dir/registry.yml" \
      >>"$WASMLET_NODE_RUN/registry.log" 2>&1 </dev/null &
    echo $! > "$WASMLET_NODE_RUN/registry.pid"
    wait_for registry 20 registry_up
  fi
  if ! private_registry_up; then
    log "starting the private registry on $WASMLET_PRIVATE_REGISTRY"
    setsid docker-registry serve "$config_dir/registry-private.yml" \
      >>"$WASMLET_NODE_RUN/registry-private.log" 2>&1 </dev/null &
    echo $! > "$WASMLET_NODE_RUN/registry-private.pid"
    wait_for "private registry" 20 private_registry_up
  fi
}

start_containerd() {
  # A running containerd started from another config (an older checkout's)
  # is restarted; its containers keep running.
  local stamp=$WASMLET_NODE_RUN/containerd.config.sha
  if containerd_up; then
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(sha "$config_dir/containerd.toml")" ] && return
    log "containerd's config changed: restarting it"
    stop_pid "$WASMLET_NODE_RUN/containerd.pid" containerd
  fi
  log "starting containerd on $socket"
  rm -f "$socket" "$socket.ttrpc"
  setsid containerd --config "$config_dir/containerd.toml" \
    >>"$WASMLET_NODE_RUN/containerd.log" 2>&1 </dev/null &
  echo $! > "$WASMLET_NODE_RUN/containerd.pid"
  sha "$config_dir/containerd.toml" > "$stamp"
  wait_for containerd 30 containerd_up
}

stop_pid() { # pidfile, name
  local pidfile=$1 name=$2
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  local pid; pid=$(cat "$pidfile")
  log "stopping $name ($pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- images

# An OCI image from one busybox layer: blobs in $out/blobs, manifest digest on stdout.
build_image() { # out, ref, cmd-json
  local out=$1 ref=$2 cmd=$3 arch
  arch=$(dpkg --print-architecture)
  local blobs=$out/blobs/sha256
  mkdir -p "$blobs"
  local layer_gz=$WASMLET_NODE_HOME/images/busybox-layer.tar.gz
  local diff_id; diff_id=$(cat "$WASMLET_NODE_HOME/images/busybox-layer.diffid")
  local layer_digest; layer_digest=$(sha "$layer_gz")
  cp "$layer_gz" "$blobs/$layer_digest"

  local config=$out/config.json
  printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$arch" "$cmd" "$diff_id" > "$config"
  local config_digest; config_digest=$(sha "$config")
  mv "$config" "$blobs/$config_digest"

  local manifest=$out/manifest.json
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
    "$config_digest" "$(stat -c %s "$blobs/$config_digest")" "$layer_digest" "$(stat -c %s "$layer_gz")" > "$manifest"
  local manifest_digest; manifest_digest=$(sha "$manifest")
  cp "$manifest" "$blobs/$manifest_digest"

  printf '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$(stat -c %s "$manifest")" "$arch" "$ref" "${ref##*:}" > "$out/index.json"
}

build_layer() {
  local dir=$WASMLET_NODE_HOME/images
  local stamp; stamp=$(sha /bin/busybox)
  [ -f "$dir/busybox-layer.stamp" ] && [ "$(cat "$dir/busybox-layer.stamp")" = "$stamp" ] && return
  log "building the busybox layer"
  local root; root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/var/www" "$root/proc" "$root/sys" "$root/dev"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  mkdir -p "$dir"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$dir/busybox-layer.tar" .
  sha "$dir/busybox-layer.tar" > "$dir/busybox-layer.diffid"
  gzip -n -f "$dir/busybox-layer.tar"
  rm -rf "$root"
  echo "$stamp" > "$dir/busybox-layer.stamp"
}

push_image() { # layout-dir, repo, tag, [registry, [user:password]]
  local layout=$1 repo=$2 tag=$3 registry=${4:-$WASMLET_REGISTRY} login=${5:-}
  local url=http://$registry/v2/$2 blob
  local curl_=(curl -sf)
  [ -n "$login" ] && curl_+=(-u "$login")
  for blob in "$layout"/blobs/sha256/*; do
    local digest=sha256:${blob##*/}
    [ "$blob" -ef "$layout/blobs/sha256/$(sha "$layout/manifest.json")" ] && continue
    "${curl_[@]}" -o /dev/null -I "$url/blobs/$digest" && continue
    local location
    location=$("${curl_[@]}" -X POST -D - -o /dev/null "$url/blobs/uploads/" \
      | awk 'tolower($1) == "location:" { print $2 }' | tr -d '\r')
    [ -n "$location" ] || die "registry refused an upload to $repo"
    case $location in http*) ;; *) location=http://$registry$location ;; esac
    case $location in *\?*) location="$location&digest=$digest" ;; *) location="$location?digest=$digest" ;; esac
    "${curl_[@]}" -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$blob" "$location" >/dev/null \
      || die "pushing $digest to $repo failed"
  done
  "${curl_[@]}" -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$layout/manifest.json" "$url/manifests/$tag" >/dev/null \
    || die "pushing the manifest of $repo:$tag failed"
}

load_images() {
  build_layer
  # The pull-only image must never be local when tests start (ctr drops just this ref).
  ctr_ images rm "$pull_image" "$private_image" >/dev/null 2>&1 || true
  local ref name cmd
  for spec in "$test_image|busybox|[\"sh\"]" "$pause_image|pause|[\"sleep\",\"2147483647\"]" \
              "$pull_image|pulltest|[\"true\"]"; do
    IFS='|' read -r ref name cmd <<<"$spec"
    local layout=$WASMLET_NODE_HOME/images/$name
    rm -rf "$layout"
    build_image "$layout" "$ref" "$cmd"
    local path=${ref#*/}
    push_image "$layout" "${path%:*}" "${ref##*:}"
    if [ "$name" != pulltest ]; then
      tar -C "$layout" -cf "$layout.tar" oci-layout index.json blobs
      ctr_ images import "$layout.tar" >/dev/null
    fi
  done
  local layout=$WASMLET_NODE_HOME/images/private path=${private_image#*/}
  rm -rf "$layout"
  build_image "$layout" "$private_image" '["true"]'
  push_image "$layout" "${path%:*}" "${private_image##*:}" "$WASMLET_PRIVATE_REGISTRY" \
    "$private_user:$private_password"
  log "images ready: $test_image, $pause_image (preloaded); $pull_image (registry only);" \
    "$private_image (private registry only)"
}

# ---------------------------------------------------------------- teardown

wasmlet_bin() {
  for b in "${WASMLET_BIN:-}" "$repo/target/debug/wasmlet" "$repo/target/release/wasmlet"; do
    [ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return; }
  done
}

remove_pods() {
  containerd_up || return 0
  local bin; bin=$(wasmlet_bin)
  if [ -n "$bin" ]; then
    "$bin" --runtime-endpoint "$socket" runtime-reset >&2 || log "runtime-reset reported failures"
  fi
  # Whatever is left (no binary yet, or a sandbox that refused): kill its tasks.
  local task
  for task in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
  done
}

down() {
  remove_pods
  stop_pid "$WASMLET_NODE_RUN/containerd.pid" containerd
  # Shims outlive containerd by design; ours name our socket.
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $socket" 2>/dev/null || true
  local m
  for m in $(awk -v a="$WASMLET_NODE_HOME/" -v b="$WASMLET_NODE_RUN/" \
               'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  ip link del "$WASMLET_BRIDGE" 2>/dev/null || true
  stop_pid "$WASMLET_NODE_RUN/registry.pid" registry
  stop_pid "$WASMLET_NODE_RUN/registry-private.pid" "private registry"
  verify_clean
}

# Fails if the node left anything behind. host-local keeps one file per pod IP
# until the sandbox's network (and so its netns) is torn down, so a leaked IP is
# a leaked sandbox network.
verify_clean() {
  local leftovers=()
  pgrep -f "containerd-shim-runc-v2 .*-address $socket" >/dev/null && leftovers+=("shim processes")
  pgrep -f "containerd --config $config_dir/" >/dev/null && leftovers+=("containerd")
  awk -v a="$WASMLET_NODE_HOME/" -v b="$WASMLET_NODE_RUN/" \
    'index($2, a) == 1 || index($2, b) == 1 { found = 1 } END { exit !found }' /proc/self/mounts \
    && leftovers+=("mounts")
  ip link show "$WASMLET_BRIDGE" >/dev/null 2>&1 && leftovers+=("bridge $WASMLET_BRIDGE")
  local ips
  ips=$(find "$WASMLET_NODE_HOME/cni/ipam" -type f -name '[0-9]*.[0-9]*.[0-9]*.[0-9]*' 2>/dev/null | wc -l)
  [ "$ips" -eq 0 ] || leftovers+=("$ips pod IPs still allocated")
  if [ ${#leftovers[@]} -gt 0 ]; then
    die "teardown left: ${leftovers[*]}"
  fi
  log "down: no sandboxes, tasks, mounts, pod IPs or links left"
}

env_vars() {
  cat <<ENV
export WASMLET_RUNTIME_ENDPOINT=$socket
export WASMLET_TEST_IMAGE=$test_image
export WASMLET_PULL_IMAGE=$pull_image
export WASMLET_PRIVATE_IMAGE=$private_image
export WASMLET_PRIVATE_LOGIN=$private_user:$private_password
export WASMLET_MISSING_IMAGE=$WASMLET_REGISTRY/wasmlet/absent:0
export WASMLET_NODE_SCRIPT=$here/node.sh
ENV
}

case ${1:-} in
  up)
    install_packages
    write_configs
    start_registry
    start_containerd
    load_images
    ;;
  down) down ;;
  stop-containerd) stop_pid "$WASMLET_NODE_RUN/containerd.pid" containerd ;;
  start-containerd) start_containerd ;;
  purge)
    down || log "purging anyway"
    rm -rf "$WASMLET_NODE_HOME" "$WASMLET_NODE_RUN"
    ;;
  status) containerd_up && registry_up && private_registry_up ;;
  env) env_vars ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
