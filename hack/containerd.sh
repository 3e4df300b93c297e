#!/usr/bin/env bash
# Starts or stops a private containerd (own root, state and socket) configured for CRI pods on
# these hosts (see shared ENVIRONMENT notes): restrict_oom_score_adj (root may lack
# CAP_SYS_RESOURCE), a local sandbox image, and a bridge + host-local + portmap CNI network.
#   hack/containerd.sh start DIR [SUBNET] [BRIDGE] [SUBNET6]   -> socket at DIR/containerd.sock
# With SUBNET6 (an IPv6 /64 or smaller) pods are dual-stack: an address from each subnet, IPv4 first.
#   hack/containerd.sh stop DIR
set -euo pipefail

PAUSE_IMAGE=${PAUSE_IMAGE:-registry.k8s.io/pause:3.9}

start() {
  local dir=$1 subnet=${2:-10.244.0.0/24} bridge=${3:-na0} subnet6=${4:-}
  local prefix=${subnet%/*}; local gw="${prefix%.*}.1"
  local ranges="[{\"subnet\": \"$subnet\", \"gateway\": \"$gw\"}]" routes='{"dst": "0.0.0.0/0"}'
  if [ -n "$subnet6" ]; then
    ranges="$ranges, [{\"subnet\": \"$subnet6\"}]"; routes="$routes, {\"dst\": \"::/0\"}"
    # The bridge routes between pods and the host for IPv6 too.
    sysctl -qw net.ipv6.conf.all.forwarding=1
  fi
  mkdir -p "$dir/cni" "$dir/root" "$dir/state" "$dir/cni-ipam"
  cat > "$dir/cni/10-node-agent.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "node-agent",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [$ranges],
              "routes": [$routes], "dataDir": "$dir/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
  cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$dir/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
TOML
  containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  echo $! > "$dir/containerd.pid"
  for _ in $(seq 1 100); do
    [ -S "$dir/containerd.sock" ] && ctr -a "$dir/containerd.sock" version >/dev/null 2>&1 && { echo "$dir/containerd.sock"; return 0; }
    sleep 0.1
  done
  echo "containerd did not start; log:" >&2; tail -20 "$dir/containerd.log" >&2; return 1
}

stop() {
  local dir=$1
  [ -f "$dir/containerd.pid" ] || return 0
  local pid; pid=$(cat "$dir/containerd.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/containerd.pid"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop "$2" ;;
  *) echo "usage: $0 start DIR [SUBNET] [BRIDGE] [SUBNET6] | stop DIR" >&2; exit 2 ;;
esac
