#!/usr/bin/env bash
# One command to see node-agent run pods on this machine (Debian 12, root):
#   sudo scripts/demo.sh up     installs prerequisites, builds the AOT agent, starts a private
#                               containerd, imports local images, starts the agent with a demo
#                               static pod (httpd), waits until it serves, prints what to try.
#   sudo scripts/demo.sh down   removes the pod, stops everything and leaves the machine clean.
# Running "up" twice is harmless. Nothing here touches the system containerd.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
state=/var/lib/node-agent-demo
manifests=$state/manifests
agent=$repo/artifacts/publish/node-agent/node-agent
port=10255

up() {
  scripts/prereqs.sh
  if [ ! -x "$agent" ] || [ -n "$(find src proto -newer "$agent" -name '*.cs' -o -newer "$agent" -name '*.proto' | head -1)" ]; then
    echo "== building node-agent (native AOT)"
    dotnet publish src/NodeAgent -c Release -r linux-x64 -o artifacts/publish/node-agent >/dev/null
  fi
  mkdir -p "$state" "$manifests"
  if ! [ -S "$state/containerd/containerd.sock" ] || ! ctr -a "$state/containerd/containerd.sock" version >/dev/null 2>&1; then
    echo "== starting containerd (private, $state/containerd)"
    hack/containerd.sh start "$state/containerd" 10.244.0.0/24 na0 >/dev/null
    hack/images.sh build "$state/images"
    hack/images.sh import "$state/images" "$state/containerd/containerd.sock"
  fi
  cat > "$manifests/hello.yaml" <<'POD'
apiVersion: v1
kind: Pod
metadata:
  name: hello
  labels: {app: hello}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: httpd
    image: busybox:1.36
    command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 2}
    livenessProbe: {tcpSocket: {port: http}, periodSeconds: 10}
    resources: {requests: {cpu: 50m, memory: 16Mi}, limits: {memory: 64Mi}}
POD
  if [ -f "$state/agent.pid" ] && kill -0 "$(cat "$state/agent.pid")" 2>/dev/null; then
    echo "== node-agent already running (pid $(cat "$state/agent.pid"))"
  else
    echo "== starting node-agent"
    nohup "$agent" --container-runtime-endpoint "unix://$state/containerd/containerd.sock" \
      --pod-manifest-path "$manifests" --root-dir "$state/root" --pod-logs-dir "$state/pod-logs" \
      --read-only-port $port >"$state/agent.log" 2>&1 &
    echo $! > "$state/agent.pid"
  fi
  echo -n "== waiting for the demo pod to be Ready"
  local ip=""
  for _ in $(seq 1 60); do
    ip=$(curl -sf localhost:$port/pods | grep -o '"podIP":"[0-9.]*"' | head -1 | cut -d'"' -f4 || true)
    if [ -n "$ip" ] && curl -sf "http://$ip:8080/" >/dev/null; then break; fi
    echo -n .; sleep 1; ip=""
  done
  echo
  if [ -z "$ip" ]; then echo "the demo pod did not come up; see $state/agent.log" >&2; tail -20 "$state/agent.log" >&2; exit 1; fi
  echo "== the demo pod answers at http://$ip:8080/: $(curl -s "http://$ip:8080/")"
  cat <<EOF_HELP

Try:
  # the pods and their kubelet-style status
  curl -s localhost:$port/pods | python3 -m json.tool
  # the agent's structured log, and container logs in the kubelet's layout
  tail -f $state/agent.log
  ls $state/pod-logs/*/httpd/
  # edit the manifest: the pod is replaced; add another file: another pod; delete it: torn down
  \$EDITOR $manifests/hello.yaml
  # remove everything
  sudo scripts/demo.sh down
EOF_HELP
}

down() {
  if [ -f "$state/agent.pid" ] && kill -0 "$(cat "$state/agent.pid")" 2>/dev/null; then
    echo "== removing demo pods"
    rm -f "$manifests"/*
    for _ in $(seq 1 60); do
      [ "$(curl -sf localhost:$port/pods | grep -c '"uid"' || true)" = "0" ] && break
      sleep 1
    done
    kill "$(cat "$state/agent.pid")" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$state/agent.pid"
  if [ -S "$state/containerd/containerd.sock" ]; then
    # Anything the agent could not remove goes now.
    for sb in $(ctr -a "$state/containerd/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$state/containerd/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$sb" >/dev/null 2>&1 || true
    done
  fi
  hack/containerd.sh stop "$state/containerd" || true
  grep -o " $state[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link delete na0 2>/dev/null || true
  rm -rf "$state"
  echo "== demo removed"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
