#!/usr/bin/env bash
# One command to see node-agent run pods on this machine (Debian 12, root):
#   sudo scripts/demo.sh up     installs prerequisites, builds the AOT binaries, starts a private
#                               containerd (its own CNI network), imports local images, starts
#                               etcd, the control plane (Kubernetes API for kubectl) and the agent
#                               joined to it with a demo static pod (httpd), applies a demo
#                               Deployment and Service, waits until the Service answers through
#                               the agent's service proxy, prints what to try.
#   sudo scripts/demo.sh down   removes the pods through the agent, stops everything and leaves
#                               the machine clean (no containers, nftables table, mounts, links
#                               or processes of the demo).
# Where systemd runs the machine, etcd, the control plane and the agent run as transient units
# (node-agent-demo-*, logs in the journal; the agent as Type=notify with a watchdog); otherwise as
# background processes. Running "up" twice is harmless. Nothing here touches the system
# containerd or etcd.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
state=/var/lib/node-agent-demo
manifests=$state/manifests
agent=$repo/artifacts/publish/node-agent/node-agent
port=10255
cp=$repo/artifacts/publish/control-plane/control-plane
api_port=6443
node=demo-node
etcd_port=2379

under_systemd() { [ -d /run/systemd/system ]; }

# start_bg NAME LOG [systemd properties...] -- COMMAND...: a transient unit node-agent-demo-NAME
# under systemd, a background process with its pid in $state/NAME.pid otherwise.
start_bg() {
  local name=$1 log=$2 props=()
  shift 2
  while [ "$1" != "--" ]; do props+=(-p "$1"); shift; done
  shift
  if under_systemd; then
    systemd-run --quiet --collect --unit "node-agent-demo-$name" "${props[@]}" -- "$@"
  else
    nohup "$@" >"$log" 2>&1 &
    echo $! > "$state/$name.pid"
  fi
}

running() {
  if under_systemd; then
    case "$(systemctl is-active "node-agent-demo-$1" 2>/dev/null)" in active|activating|reloading) return 0 ;; *) return 1 ;; esac
  else [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; fi
}

stop_bg() {
  if under_systemd; then
    systemctl stop "node-agent-demo-$1" 2>/dev/null || true
  elif [ -f "$state/$1.pid" ]; then
    local pid; pid=$(cat "$state/$1.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$state/$1.pid"
}

logs_of() { if under_systemd; then echo "journalctl -u node-agent-demo-$1"; else echo "tail -f $state/$1.log"; fi; }

up() {
  scripts/prereqs.sh
  if [ ! -x "$agent" ] || [ -n "$(find src proto -newer "$agent" -name '*.cs' -o -newer "$agent" -name '*.proto' | head -1)" ]; then
    echo "== building node-agent (native AOT)"
    dotnet publish src/NodeAgent -c Release -r linux-x64 -o artifacts/publish/node-agent >/dev/null
  fi
  if [ ! -x "$cp" ] || [ -n "$(find src proto -newer "$cp" -name '*.cs' -o -newer "$cp" -name '*.proto' | head -1)" ]; then
    echo "== building control-plane (native AOT)"
    dotnet publish src/ControlPlane -c Release -r linux-x64 -o artifacts/publish/control-plane >/dev/null
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
  start_control_plane
  if running agent; then
    echo "== node-agent already running"
  else
    echo "== starting node-agent (node $node, joined to the API server)"
    "$cp" node-kubeconfig --node "$node" --data-dir "$state/control-plane" --server "https://127.0.0.1:$api_port" --out "$state/node.kubeconfig"
    start_bg agent "$state/agent.log" Type=notify WatchdogSec=60 KillMode=process -- \
      "$agent" --container-runtime-endpoint "unix://$state/containerd/containerd.sock" \
      --pod-manifest-path "$manifests" --root-dir "$state/root" --pod-logs-dir "$state/pod-logs" \
      --read-only-port $port --kubeconfig "$state/node.kubeconfig" --hostname-override "$node" \
      --cluster-cidr 10.244.0.0/24
  fi
  echo -n "== waiting for the demo pod to be Ready"
  local ip=""
  for _ in $(seq 1 60); do
    ip=$(curl -sf localhost:$port/pods | grep -o '"podIP":"[0-9.]*"' | head -1 | cut -d'"' -f4 || true)
    if [ -n "$ip" ] && curl -sf "http://$ip:8080/" >/dev/null; then break; fi
    echo -n .; sleep 1; ip=""
  done
  echo
  if [ -z "$ip" ]; then echo "the demo pod did not come up; see: $(logs_of agent)" >&2; exit 1; fi
  echo "== the demo pod answers at http://$ip:8080/: $(curl -s "http://$ip:8080/")"
  echo "== a demo workload through the API: namespace demo, Deployment web (2 replicas) and its Service"
  export KUBECONFIG=$state/control-plane/admin.kubeconfig
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: busybox:1.36
        command: [sh, -c, "trap 'exit 0' TERM; echo hello from $(hostname) > /tmp/index.html; httpd -f -p 8080 -h /tmp & wait"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
YAML
  kubectl rollout status deployment/web -n demo --timeout=120s
  kubectl get pods -n demo -o wide
  kubectl get endpointslices -n demo
  local vip answer=""
  vip=$(kubectl get service web -n demo -o jsonpath='{.spec.clusterIP}')
  echo -n "== waiting for the Service web ($vip:80) to answer through the agent's service proxy"
  for _ in $(seq 1 60); do
    answer=$(curl -sf --max-time 2 "http://$vip/" || true)
    [ -n "$answer" ] && break
    echo -n .; sleep 1
  done
  echo
  if [ -z "$answer" ]; then echo "the demo Service did not answer; see: $(logs_of agent)" >&2; exit 1; fi
  echo "== the demo Service answers at http://$vip/: $answer"
  cat <<EOF_HELP

Try:
  # the pods and their kubelet-style status
  curl -s localhost:$port/pods | python3 -m json.tool
  # the agent's structured log, and container logs in the kubelet's layout
  $(logs_of agent)
  ls $state/pod-logs/*/httpd/
  # edit the manifest: the pod is replaced; add another file: another pod; delete it: torn down
  \$EDITOR $manifests/hello.yaml
  # the Kubernetes API (etcd + control-plane) with the stock kubectl; the agent is node $node
  export KUBECONFIG=$state/control-plane/admin.kubeconfig
  kubectl get nodes -o wide
  # the demo Service, through the agent's nftables rules; the rules themselves
  curl -s http://\$(kubectl get service web -n demo -o jsonpath='{.spec.clusterIP}')/
  nft list table ip node-agent
  # the demo Deployment: scale it, roll a change, watch its EndpointSlice follow the ready pods
  kubectl scale deployment web -n demo --replicas=4; kubectl get endpointslices -n demo -w
  kubectl set env deployment/web -n demo RELEASE=2; kubectl rollout status deployment/web -n demo
  kubectl rollout undo deployment/web -n demo; kubectl rollout history deployment/web -n demo
  # a pod: the scheduler binds it to the node and the agent runs it; its logs and events
  kubectl run ticker -n demo --image=busybox:1.36 -- sh -c 'while true; do date; sleep 2; done'
  kubectl get pods -n demo -o wide; kubectl logs -f ticker -n demo; kubectl describe pod ticker -n demo
  kubectl exec -it ticker -n demo -- sh          # and: kubectl attach ticker -n demo
  kubectl port-forward pod/hello-demo-node 8080:8080 & curl -s localhost:8080/
  kubectl delete pod ticker -n demo     # sh ignores SIGTERM: it is killed when the 30 s grace period ends
  kubectl api-resources
  # deleting the namespace deletes everything in it (garbage collection, namespace controller)
  kubectl delete namespace demo
  # remove everything
  sudo scripts/demo.sh down
EOF_HELP
}

start_control_plane() {
  mkdir -p "$state/control-plane"
  if running etcd; then
    echo "== etcd already running"
  else
    echo "== starting etcd (private, $state/etcd, 127.0.0.1:$etcd_port)"
    start_bg etcd "$state/etcd.log" -- etcd --name demo --data-dir "$state/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
      --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))"
  fi
  if running control-plane; then
    echo "== control-plane already running"
  else
    echo "== starting control-plane (https://127.0.0.1:$api_port)"
    start_bg control-plane "$state/control-plane.log" -- "$cp" --data-dir "$state/control-plane" --etcd-servers "http://127.0.0.1:$etcd_port" \
      --secure-port $api_port --advertise-address 127.0.0.1
  fi
  for _ in $(seq 1 60); do
    KUBECONFIG=$state/control-plane/admin.kubeconfig kubectl get --raw /readyz >/dev/null 2>&1 && break
    sleep 1
  done
  KUBECONFIG=$state/control-plane/admin.kubeconfig kubectl get --raw /readyz >/dev/null \
    || { echo "the control plane did not come up; see: $(logs_of control-plane)" >&2; exit 1; }
  echo "== the Kubernetes API answers: KUBECONFIG=$state/control-plane/admin.kubeconfig kubectl get ns"
}

down() {
  if running agent; then
    echo "== removing the demo pods through the agent (sandboxes and their networks torn down properly)"
    if running control-plane; then
      KUBECONFIG=$state/control-plane/admin.kubeconfig kubectl delete namespace demo --ignore-not-found --wait --timeout=60s >/dev/null 2>&1 || true
    fi
    rm -f "$manifests"/*
    for _ in $(seq 1 60); do
      curl -sf localhost:$port/pods | grep -q '"name":' || break
      sleep 1
    done
  fi
  for svc in agent control-plane etcd; do
    if running $svc; then echo "== stopping $svc"; fi
    stop_bg $svc
  done
  if [ -S "$state/containerd/containerd.sock" ]; then
    # Whatever the agent did not remove (it was stopped early, or died) goes now: a task's shim
    # exits only once the task is deleted, not when its process is killed.
    c() { ctr -a "$state/containerd/containerd.sock" -n k8s.io "$@"; }
    for id in $(c tasks ls -q 2>/dev/null); do
      c tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $(c tasks ls -q 2>/dev/null); do
      c tasks delete --force "$id" >/dev/null 2>&1 || true
    done
    for id in $(c containers ls -q 2>/dev/null); do
      c containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  hack/containerd.sh stop "$state/containerd" || true
  grep -o " $state[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link delete na0 2>/dev/null || true
  # The agent's service rules stay when it stops (as kube-proxy's do); the demo's go here.
  nft delete table ip node-agent 2>/dev/null || true
  nft delete table ip6 node-agent 2>/dev/null || true
  rm -rf "$state"
  echo "== demo removed"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
