#!/usr/bin/python3
"""Long-running parts of the lab stand-ins.

  kslab_daemon.py apiserver   HTTPS API on :6443 (+ plain listeners 10257 10259 2379 2380)
  kslab_daemon.py kubelet     listener on :10250, healthz on 127.0.0.1:10248, node heartbeat to the API

Started detached by `kubeadm init` / `kubeadm join` (own session, PID file under
/var/lib/kubestrap-lab/pids/), stopped by `kubeadm reset` by that PID.
"""
import http.server
import json
import os
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, "/usr/share/kubestrap-lab")
import kslab_common as C  # noqa: E402

API_STATE = C.STATE + "/apiserver.json"
API_CONF = C.STATE + "/apiserver-daemon.json"
KUBELET_CONF = C.STATE + "/kubelet-daemon.json"
HEARTBEAT_EVERY = 10.0
NODE_GRACE = 40.0


def log(msg):
    sys.stderr.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
    sys.stderr.flush()


def listen_plain(addr, port, http_ok=False):
    def run():
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
            s.listen(16)
        except OSError as e:
            log("listener %s:%d: %s" % (addr, port, e))
            return
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                continue
            try:
                if http_ok:
                    c.settimeout(2)
                    try:
                        c.recv(4096)
                    except OSError:
                        pass
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                              b"Connection: close\r\n\r\nok")
            except OSError:
                pass
            finally:
                c.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# ----------------------------------------------------------------------------------------------
# API state

class State:
    def __init__(self, path):
        self.path = path
        self.lock = threading.RLock()
        self.d = C.load_json(path, None) or {"cluster": {}, "tokens": {}, "nodes": {}, "objects": {}}
        for k in ("cluster", "tokens", "nodes", "objects"):
            self.d.setdefault(k, {})
        self.me = None       # this control plane's etcd member name (set by run_apiserver)
        self.dirty = None    # threading.Event the replicator waits on

    def save(self, replicate=True):
        """Persist (caller holds the lock). A local write bumps the revision and wakes the replicator, which
        pushes the snapshot to the other control planes outside the lock (see "HA control planes" in README)."""
        if replicate:
            self.d["rev"] = int(self.d.get("rev") or 0) + 1
            self.d["revBy"] = self.me or ""
            if self.dirty is not None:
                self.dirty.set()
        C.save_json(self.path, self.d)

    # stacked etcd -----------------------------------------------------------
    def members(self):
        return (self.d.get("etcd") or {}).get("members") or []

    def snapshot(self):
        with self.lock:
            return json.dumps(self.d)

    def merge(self, other):
        """A peer's snapshot (caller holds the lock): newer (rev, writer) replaces ours; node heartbeats, kept
        in memory only, are merged either way (the newest beat wins). -> True if we took theirs."""
        mine = (int(self.d.get("rev") or 0), self.d.get("revBy") or "")
        theirs = (int(other.get("rev") or 0), other.get("revBy") or "")
        beats = {n: r.get("lastHeartbeat") or 0 for n, r in self.d["nodes"].items()}
        took = theirs > mine
        if took:
            self.d = other
            for k in ("cluster", "tokens", "nodes", "objects"):
                self.d.setdefault(k, {})
        for n, r in (other.get("nodes") or {}).items():
            if n in self.d["nodes"]:
                self.d["nodes"][n]["lastHeartbeat"] = max(beats.get(n, 0), r.get("lastHeartbeat") or 0,
                                                          self.d["nodes"][n].get("lastHeartbeat") or 0)
        if took:
            self.save(replicate=False)
        return took

    def valid_token(self, tok):
        m = C.TOKEN_RE.match(tok or "")
        if not m:
            return False
        t = self.d["tokens"].get(m.group(1))
        if not t or t.get("secret") != m.group(2):
            return False
        exp = t.get("expires")
        if exp is not None and exp < time.time():
            return False
        return "authentication" in (t.get("usages") or ["authentication"])

    def live_tokens(self):
        now = time.time()
        return {i: t for i, t in self.d["tokens"].items() if t.get("expires") is None or t["expires"] >= now}


def status_obj(code, reason, message, details=None):
    d = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
         "reason": reason, "code": code}
    if details:
        d["details"] = details
    return d


def cni_state(objects, pod_subnet):
    """-> (network_ok, reason, images the CNI pods need)."""
    flannel_ds = None
    calico = None
    for key, o in objects.items():
        kind = o.get("kind")
        name = (o.get("metadata") or {}).get("name", "")
        if kind == "DaemonSet" and "flannel" in name:
            flannel_ds = o
        if (kind == "DaemonSet" and name == "calico-node") or (kind == "Installation" and "tigera" in
                                                                 o.get("apiVersion", "")):
            calico = o
    def ds_images(ds):
        spec = (((ds or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
        imgs = []
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            if c.get("image"):
                imgs.append(c["image"])
        return imgs
    if flannel_ds is not None:
        net = None
        for key, o in objects.items():
            if o.get("kind") == "ConfigMap" and "flannel" in (o.get("metadata") or {}).get("name", ""):
                raw = (o.get("data") or {}).get("net-conf.json")
                try:
                    net = json.loads(raw).get("Network") if raw else None
                except (ValueError, AttributeError):
                    net = "<invalid net-conf.json>"
        if not pod_subnet:
            return False, "flannel: pod cidr not assigned (no podSubnet)", ds_images(flannel_ds)
        if net != pod_subnet:
            return False, "flannel Network %s != podSubnet %s" % (net, pod_subnet), ds_images(flannel_ds)
        return True, "", ds_images(flannel_ds)
    if calico is not None:
        return True, "", ds_images(calico) if calico.get("kind") == "DaemonSet" else []
    return False, "cni plugin not initialized", []


FLANNEL_CNI_DEFAULT = """{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
"""


def cni_files(st, node):
    """{filename: content} the CNI's pod would write into /etc/cni/net.d on this node (once it runs)."""
    ok, why, imgs = cni_state(st.d["objects"], st.d["cluster"].get("podSubnet"))
    if not ok or node.get("neverReady"):
        return {}
    have = node.get("images")
    if have is not None:
        have = set(C.normalize_ref(x) for x in have)
        if any(C.normalize_ref(i) not in have for i in imgs):
            return {}
    for o in st.d["objects"].values():
        name = (o.get("metadata") or {}).get("name", "")
        if o.get("kind") == "ConfigMap" and "flannel" in name:
            return {"10-flannel.conflist": (o.get("data") or {}).get("cni-conf.json") or FLANNEL_CNI_DEFAULT}
    return {"10-calico.conflist": '{"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": '
                                  '[{"type": "calico"}, {"type": "portmap", "capabilities": {"portMappings": true}}]}\n'}


def short_image(ref):
    return C.normalize_ref(ref)


def node_ready(st, node):
    """-> (status 'True'|'False'|'Unknown', reason, message)."""
    now = time.time()
    hb = node.get("lastHeartbeat") or 0
    if now - hb > NODE_GRACE:
        return "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."
    if node.get("runtimeProblem") and node["runtimeProblem"].startswith("container runtime is down"):
        return "False", "KubeletNotReady", ("[container runtime is down, PLEG is not healthy: pleg was last seen "
                                            "active 3m0s ago; threshold is 3m0s]")
    if node.get("neverReady") or node.get("runtimeProblem"):
        return "False", "KubeletNotReady", ("container runtime network not ready: NetworkReady=false "
                                            "reason:NetworkPluginNotReady message:Network plugin returns error: "
                                            "cni plugin not initialized")
    ok, why, imgs = cni_state(st.d["objects"], st.d["cluster"].get("podSubnet"))
    if not ok:
        return "False", "KubeletNotReady", ("container runtime network not ready: NetworkReady=false "
                                            "reason:NetworkPluginNotReady message:Network plugin returns error: "
                                            "cni plugin not initialized")
    have = node.get("images")
    if have is not None:
        have = set(C.normalize_ref(x) for x in have)
        missing = [i for i in imgs if short_image(i) not in have]
        if missing:
            return "False", "KubeletNotReady", ("container runtime network not ready: NetworkReady=false "
                                                "reason:NetworkPluginNotReady message:Network plugin returns error: "
                                                "cni plugin not initialized")
    return "True", "KubeletReady", "kubelet is posting ready status"


def node_object(st, node):
    note_cordon(node)  # every path that changes spec.unschedulable renders the node right after
    status, reason, msg = node_ready(st, node)
    hb = C.now_rfc3339(node.get("lastHeartbeat") or node.get("created"))
    conds = []
    for t, r, m in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available")):
        conds.append({"type": t, "status": "Unknown" if status == "Unknown" else "False",
                      "lastHeartbeatTime": hb, "lastTransitionTime": C.now_rfc3339(node.get("created")),
                      "reason": "NodeStatusUnknown" if status == "Unknown" else r,
                      "message": "Kubelet stopped posting node status." if status == "Unknown" else m})
    conds.append({"type": "Ready", "status": status, "lastHeartbeatTime": hb,
                  "lastTransitionTime": C.now_rfc3339(node.get("created")), "reason": reason, "message": msg})
    spec = {"podCIDR": node.get("podCIDR")} if node.get("podCIDR") else {}
    if node.get("podCIDR"):
        spec["podCIDRs"] = [node["podCIDR"]]
    taints = list(node.get("taints") or [])
    if node.get("unschedulable"):
        spec["unschedulable"] = True
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    if status != "True":
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
    if taints:
        spec["taints"] = taints
    addrs = [{"type": "InternalIP", "address": node.get("ip")}, {"type": "Hostname", "address": node["name"]}]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node["name"], "uid": node.get("uid"), "resourceVersion": str(node.get("rv", 1)),
                     "creationTimestamp": C.now_rfc3339(node.get("created")),
                     "labels": node.get("labels") or {}, "annotations": node.get("annotations") or {}},
        "spec": spec,
        "status": {
            "addresses": addrs,
            "conditions": conds,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64", "bootID": node.get("bootID", ""),
                         "containerRuntimeVersion": node.get("runtimeVersion", "containerd://1.6.20"),
                         "kernelVersion": node.get("kernel", ""), "kubeProxyVersion": "",
                         "kubeletVersion": node.get("kubeletVersion", ""), "machineID": node.get("machineID", ""),
                         "operatingSystem": "linux", "osImage": node.get("osImage", ""),
                         "systemUUID": node.get("machineID", "")},
            "capacity": {"cpu": str(os.cpu_count() or 2), "memory": "%dKi" % node.get("memKi", 0), "pods": "110"},
            "images": [{"names": [i], "sizeBytes": 0} for i in (node.get("images") or [])],
            "allocatable": {"cpu": str(os.cpu_count() or 2), "memory": "%dKi" % node.get("memKi", 0), "pods": "110"},
        },
    }


def _suffix(seed, n=5):
    import hashlib
    alpha = "bcdfghjklmnpqrstvwxz2456789"
    h = hashlib.sha256(seed.encode()).digest()
    return "".join(alpha[b % len(alpha)] for b in h[:n])


def _pod(name, ns, node, status, images, created, owner=None, ip=None, labels=None, restarts=0):
    ready = status == "Running"
    cs = [{"name": i.rsplit("/", 1)[-1].split(":")[0], "image": i, "ready": ready, "restartCount": restarts,
           "started": ready,
           "state": {"running": {"startedAt": C.now_rfc3339(created)}} if ready else
           {"waiting": {"reason": status}}} for i in images]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": C.now_rfc3339(created),
                         "labels": labels or {}, "ownerReferences": [owner] if owner else []},
            "spec": {"nodeName": node, "containers": [{"name": c["name"], "image": c["image"]} for c in cs]},
            "status": {"phase": "Running" if ready else "Pending", "podIP": ip, "hostIP": ip,
                       "containerStatuses": cs, "kslabStatus": status}}


def synth_pods(st):
    """Pods a kubeadm cluster would have: static control-plane pods, kube-proxy, CoreDNS and every applied
    DaemonSet's pods, with a status derived from the same facts as node readiness."""
    cl = st.d["cluster"]
    ver = cl.get("kubernetesVersion", "v1.31.2")
    repo = cl.get("imageRepository", "registry.k8s.io")
    comp = C.components(ver)
    now = time.time()
    out = []
    net_ok, why, cni_imgs = cni_state(st.d["objects"], cl.get("podSubnet"))
    any_ready = False
    nodes = sorted(st.d["nodes"].values(), key=lambda n: n.get("created", 0))
    for n in nodes:
        name = n["name"]
        alive = now - (n.get("lastHeartbeat") or 0) <= NODE_GRACE
        have = set(C.normalize_ref(x) for x in (n.get("images") or [])) if n.get("images") is not None else None
        def state_for(imgs, needs_net=False, crash=False):
            if not alive:
                return "Unknown"
            rp = n.get("runtimeProblem") or ""
            if rp.startswith("failed to get sandbox image"):
                return "ContainerCreating"
            if rp.startswith("cgroup driver mismatch"):
                return "CrashLoopBackOff"
            if have is not None and any(C.normalize_ref(i) not in have for i in imgs):
                return "ErrImagePull"
            if crash:
                return "CrashLoopBackOff"
            if needs_net and (not net_ok or n.get("neverReady")):
                return "ContainerCreating"
            return "Running"
        created = n.get("created", now)
        if (n.get("labels") or {}).get("node-role.kubernetes.io/control-plane") is not None:
            for comp_name, img in (("etcd", "%s/etcd:%s" % (repo, comp["etcd"])),
                                   ("kube-apiserver", "%s/kube-apiserver:%s" % (repo, n.get("controlPlaneVersion") or ver)),
                                   ("kube-controller-manager", "%s/kube-controller-manager:%s" % (
                                       repo, n.get("controlPlaneVersion") or ver)),
                                   ("kube-scheduler", "%s/kube-scheduler:%s" % (repo, n.get("controlPlaneVersion") or ver))):
                out.append(_pod("%s-%s" % (comp_name, name), "kube-system", name, state_for([img]), [img], created,
                                {"kind": "Node", "name": name}, n.get("ip"), {"component": comp_name}))
        img = "%s/kube-proxy:%s" % (repo, cl.get("addonsVersion") or ver)
        out.append(_pod("kube-proxy-" + _suffix(name + "kube-proxy"), "kube-system", name, state_for([img]), [img],
                        created, {"kind": "DaemonSet", "name": "kube-proxy"}, n.get("ip"), {"k8s-app": "kube-proxy"}))
        for key, o in sorted(st.d["objects"].items()):
            if o.get("kind") != "DaemonSet":
                continue
            md = o.get("metadata") or {}
            spec = ((o.get("spec") or {}).get("template") or {}).get("spec") or {}
            imgs = [c.get("image") for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
                    if c.get("image")]
            is_cni = "flannel" in md.get("name", "") or md.get("name") == "calico-node"
            crash = is_cni and not net_ok and "flannel" in md.get("name", "")
            stt = state_for(imgs, crash=crash)
            if is_cni and n.get("neverReady") and stt == "Running":
                stt = "CrashLoopBackOff"
            out.append(_pod("%s-%s" % (md.get("name"), _suffix(name + md.get("name", ""))), md.get("namespace",
                            "default"), name, stt, imgs, created, {"kind": "DaemonSet", "name": md.get("name")},
                            n.get("ip"), (spec.get("metadata") or {}).get("labels"), 3 if stt == "CrashLoopBackOff"
                            else 0))
        if node_ready(st, n)[0] == "True":
            any_ready = True
    out.extend(deployment_pods(st, nodes))
    if nodes:
        comp = C.components(cl.get("addonsVersion") or ver)
        img = "%s/coredns/coredns:%s" % (repo, comp["coredns"]) if repo == "registry.k8s.io" else \
            "%s/coredns:%s" % (repo, comp["coredns"])
        rs = _suffix("coredns-rs", 10).lower()
        cp = nodes[0]
        sched = [n for n in nodes if node_ready(st, n)[0] == "True" and not n.get("unschedulable")]
        for i in range(2):
            where, gen = place(st, "kube-system/coredns-%d" % i, sched, i=0)
            stt = "Running" if where else "Pending"
            cp = st.d["nodes"].get(where) or cp
            out.append(_pod("coredns-%s-%s" % (rs, _suffix("coredns%d%s" % (i, gen or ""))), "kube-system",
                            where, stt, [img], cp.get("created", now),
                            {"kind": "ReplicaSet", "name": "coredns-" + rs}, None, {"k8s-app": "kube-dns"}))
            out[-1]["kslabPlacement"] = "kube-system/coredns-%d" % i
    return out


# ----------------------------------------------------------------------------------------------
# rolling upgrades: node events log, kubelet (re)starts, the upgrade record, workload pods

EVENTS_LOG = C.P("/var/log/kubestrap-lab/cluster-events.log")
_events_lock = threading.Lock()


def record_event(event, node, version=None):
    """Append `SEQ TIME EVENT NODE [VERSION]` to the control plane's cluster-events.log (SEQ counts lines)."""
    with _events_lock:
        try:
            C.mkdirp(os.path.dirname(EVENTS_LOG))
            try:
                with open(EVENTS_LOG) as f:
                    seq = sum(1 for _ in f) + 1
            except OSError:
                seq = 1
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".%03dZ" % (int(time.time() * 1000) % 1000)
            line = " ".join(x for x in (str(seq), ts, event, node, version) if x)
            with open(EVENTS_LOG, "a") as f:
                f.write(line + "\n")
        except OSError as e:
            log("events log: %s" % e)


def note_cordon(node):
    """Log `cordon`/`uncordon` once per real change of spec.unschedulable."""
    cur = bool(node.get("unschedulable"))
    if cur != bool(node.get("cordonLogged")):
        node["cordonLogged"] = cur
        record_event("cordon" if cur else "uncordon", node["name"])


def note_kubelet_start(st, node, b):
    """A heartbeat carrying a new kubeletStartedAt = the kubelet (re)started: log it. -> dirty?"""
    started = b.get("kubeletStartedAt")
    if not started or started == node.get("kubeletStartedAt"):
        return False
    ev = "kubelet-restart" if node.get("kubeletStartedAt") else "kubelet-start"
    node["kubeletStartedAt"] = started
    record_event(ev, node["name"], b.get("kubeletVersion") or node.get("kubeletVersion"))
    return True


def flush_on_term(st):
    import signal

    def term(signum, frame):
        try:
            with st.lock:
                st.save(replicate=False)  # heartbeats only: not a new revision
        finally:
            os._exit(0)
    signal.signal(signal.SIGTERM, term)


def upgrade_request(h, who, name):
    """POST /apis/kslab/v1/upgrade {"kind": "apply"|"node", "node": N, "kubernetesVersion": V, "controlPlane": bool,
    "dryRun": bool}: what `kubeadm upgrade` writes to the cluster (kubeadm-config, the node's static pods' version,
    the addons once every control plane is upgraded). -> {"unupgraded": [control planes not at V]}"""
    import yaml
    st = h.server.st
    b = h.body() or {}
    nname, ver, kind = b.get("node"), b.get("kubernetesVersion"), b.get("kind")
    if not (who == "admin" or (who == "node" and name == nname)):
        return h.forbidden(name, "update", "configmaps", "kubeadm-config", "kube-system")
    cl = st.d["cluster"]
    old = cl.get("kubernetesVersion")
    node = st.d["nodes"].get(nname)
    is_cp = lambda n: "node-role.kubernetes.io/control-plane" in (n.get("labels") or {})  # noqa: E731
    if not b.get("dryRun"):
        if kind == "apply" and ver:
            for n in st.d["nodes"].values():  # the others still run the old static pods
                if is_cp(n) and not n.get("controlPlaneVersion"):
                    n["controlPlaneVersion"] = old
            cl["kubernetesVersion"] = ver
            try:
                doc = yaml.safe_load(cl.get("kubeadmConfig") or "") or {}
                doc["kubernetesVersion"] = ver
                cl["kubeadmConfig"] = yaml.safe_dump(doc, sort_keys=True)
            except yaml.YAMLError:
                pass
        if node is not None and b.get("controlPlane") and ver:
            node["controlPlaneVersion"] = ver
        if node is not None and ver:
            node["kubeletConfigVersion"] = ver
        record_event("upgrade-" + (kind or "node"), nname or "-", ver)
    unup = sorted(n["name"] for n in st.d["nodes"].values()
                  if is_cp(n) and n["name"] != nname and (n.get("controlPlaneVersion") or old) != ver)
    if not b.get("dryRun") and b.get("controlPlane") and not unup and ver:
        cl["addonsVersion"] = ver
    st.save()
    return h.send_json(200, {"unupgraded": unup, "clusterVersion": cl.get("kubernetesVersion")})


def place(st, key, candidates, i=0):
    """Sticky pod placement: a pod stays on its node until evicted (cordon alone moves nothing).
    -> (node name or None, generation)"""
    pl = st.d.setdefault("placements", {})
    rec = pl.get(key) or {}
    if rec.get("node") in st.d["nodes"]:
        return rec["node"], rec.get("gen", 0)
    if candidates:
        rec["node"] = candidates[i % len(candidates)]["name"]
        pl[key] = rec
        st.save()
        return rec["node"], rec.get("gen", 0)
    rec.pop("node", None)
    pl[key] = rec
    return None, rec.get("gen", 0)


def release_placement(st, pod):
    """An evicted Deployment/CoreDNS pod: its ReplicaSet makes a new one (new name) on a schedulable node.
    -> True when POD was such a pod. (DaemonSet and mirror pods come back on the same node.)"""
    key = pod.get("kslabPlacement")
    if not key:
        return False
    rec = st.d.setdefault("placements", {}).setdefault(key, {})
    rec.pop("node", None)
    rec["gen"] = rec.get("gen", 0) + 1
    st.save()
    return True


def evict_pod(h, ns, pod):
    """POST /api/v1/namespaces/NS/pods/NAME/eviction (policy/v1 Eviction)."""
    st = h.server.st
    for p in synth_pods(st):
        if p["metadata"]["namespace"] == ns and p["metadata"]["name"] == pod:
            release_placement(st, p)
            return h.send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                     "code": 201})
    return h.not_found("pods", pod)


def deployment_pods(st, nodes):
    """Pods of applied Deployments, spread over Ready schedulable nodes (a cordoned node gets none: drain's
    evictions land elsewhere, or stay Pending)."""
    out = []
    now = time.time()
    for key, o in sorted(st.d["objects"].items()):
        if o.get("kind") != "Deployment":
            continue
        md = o.get("metadata") or {}
        spec = o.get("spec") or {}
        tmpl = spec.get("template") or {}
        pspec = tmpl.get("spec") or {}
        tol = {t.get("key") for t in (pspec.get("tolerations") or [])}
        ok = [n for n in nodes if node_ready(st, n)[0] == "True" and not n.get("unschedulable")
              and all(t.get("key") in tol for t in (n.get("taints") or []) if t.get("effect") in ("NoSchedule",
                                                                                                  "NoExecute"))]
        imgs = [c.get("image") for c in pspec.get("containers") or [] if c.get("image")]
        rs = _suffix(md.get("name", "") + "-rs", 10).lower()
        reps = spec.get("replicas", 1)
        for i in range(int(reps if reps is not None else 1)):
            pkey = "%s/%s-%d" % (md.get("namespace", "default"), md.get("name"), i)
            where, gen = place(st, pkey, ok, i)
            n = st.d["nodes"].get(where) if where else None
            p = _pod("%s-%s-%s" % (md.get("name"), rs, _suffix("%s%d%s" % (md.get("name"), i, gen or ""))),
                     md.get("namespace", "default"), n["name"] if n else None, "Running" if n else "Pending", imgs,
                     now, {"kind": "ReplicaSet", "name": "%s-%s" % (md.get("name"), rs)}, n.get("ip") if n else None,
                     (tmpl.get("metadata") or {}).get("labels"))
            p["spec"]["volumes"] = pspec.get("volumes") or []
            p["kslabPlacement"] = pkey
            out.append(p)
    return out


BUILTIN_GROUPS = {"", "apps", "rbac.authorization.k8s.io", "apiextensions.k8s.io", "policy", "batch",
                  "networking.k8s.io", "storage.k8s.io", "scheduling.k8s.io", "admissionregistration.k8s.io",
                  "apiregistration.k8s.io", "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
                  "node.k8s.io", "autoscaling", "events.k8s.io", "flowcontrol.apiserver.k8s.io",
                  "authentication.k8s.io", "authorization.k8s.io", "resource.k8s.io", "internal.apiserver.k8s.io"}


def obj_key(o):
    md = o.get("metadata") or {}
    api = o.get("apiVersion", "")
    group = api.split("/")[0] if "/" in api else ""
    return "%s|%s|%s|%s" % (group, o.get("kind", ""), md.get("namespace", ""), md.get("name", ""))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kslab-apiserver"

    def log_message(self, fmt, *args):
        if "/apis/kslab/v1/replicate" in (getattr(self, "path", "") or "") and " 200 " in " %s " % (fmt % args):
            return  # the peers' 2 s snapshot pushes: only failures are worth a line
        log("%s %s" % (self.address_string(), fmt % args))

    # identity ---------------------------------------------------------------
    def identity(self):
        """-> ('admin'|'node'|'bootstrap'|'anonymous'|'invalid', name)"""
        cert = None
        try:
            cert = self.connection.getpeercert()
        except (AttributeError, ValueError):
            cert = None
        if cert:
            subj = {}
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    subj.setdefault(k, []).append(v)
            orgs = subj.get("organizationName", [])
            cn = (subj.get("commonName") or [""])[0]
            if "system:masters" in orgs or "kubeadm:cluster-admins" in orgs:
                return "admin", cn
            if "system:nodes" in orgs and cn.startswith("system:node:"):
                return "node", cn[len("system:node:"):]
            return "user", cn
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            tok = auth[7:].strip()
            if self.server.st.valid_token(tok):
                return "bootstrap", "system:bootstrap:" + tok.split(".")[0]
            return "invalid", ""
        return "anonymous", "system:anonymous"

    def send_json(self, code, obj):
        raw = json.dumps(obj, indent=1).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def send_text(self, code, text):
        raw = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def health_checks(self, path):
        """The apiserver's per-check endpoints (k8s.io/apiserver healthz): `/readyz/etcd` -> "ok", or 500
        `[-]etcd failed: reason withheld`; `/readyz?verbose` lists every check. Knob faults/etcd-unhealthy."""
        kind, _, one = path.lstrip("/").partition("/")
        checks = ["ping", "log", "etcd", "etcd-readiness", "informer-sync", "poststarthook/start-apiserver-admission-initializer"]
        if kind == "livez":
            checks = [c for c in checks if c not in ("etcd-readiness", "informer-sync")]
        bad = {"etcd", "etcd-readiness"} if (os.path.exists(os.path.join(C.FAULTS, "etcd-unhealthy")) or
                                             not self.server.etcd.quorum()) else set()
        if one:
            if one not in checks:
                return self.send_text(404, "404 page not found\n")
            if one in bad:
                return self.send_text(500, "internal server error: %s failed: reason withheld\n" % one)
            return self.send_text(200, "ok")
        lines = ["[-]%s failed: reason withheld" % c if c in bad else "[+]%s ok" % c for c in checks]
        lines.append("%s check %s" % (kind, "failed" if bad else "passed"))
        return self.send_text(500 if bad else 200, "\n".join(lines) + "\n")

    def unauthorized(self):
        self.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))

    def forbidden(self, who, verb, resource, name=None, ns=None):
        scope = 'in the namespace "%s"' % ns if ns else "at the cluster scope"
        what = '%s "%s"' % (resource, name) if name else resource
        self.send_json(403, status_obj(403, "Forbidden", '%s is forbidden: User "%s" cannot %s resource "%s" in API '
                                       'group "" %s' % (what, who, verb, resource, scope)))

    def not_found(self, resource, name):
        self.send_json(404, status_obj(404, "NotFound", '%s "%s" not found' % (resource, name),
                                       {"name": name, "kind": resource}))

    def body_raw(self):
        if getattr(self, "_raw", None) is None:
            n = int(self.headers.get("Content-Length") or 0)
            self._raw = self.rfile.read(n) if n else b""
        return self._raw

    def body(self):
        raw = self.body_raw()
        try:
            return json.loads(raw.decode()) if raw else {}
        except ValueError:
            return None

    # routing ----------------------------------------------------------------
    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def do_PATCH(self):
        self.route("PATCH")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        url = urllib.parse.urlparse(self.path)
        path = url.path.rstrip("/") or "/"
        who, name = self.identity()
        st = self.server.st
        self._raw = None
        self.body_raw()  # read the request body before any lock is taken
        if who == "invalid":
            return self.unauthorized()
        etcd = self.server.etcd
        if path == "/apis/kslab/v1/replicate" and method == "POST":  # a peer's snapshot (no quorum needed)
            if who != "admin":
                return self.forbidden(name, "create", "replicate")
            b = self.body()
            if not isinstance(b, dict):
                return self.send_json(400, status_obj(400, "BadRequest", "bad snapshot"))
            with st.lock:
                took = st.merge(b)
                rev = st.d.get("rev")
            return self.send_json(200, {"rev": rev, "took": took})
        if path in ("/healthz", "/readyz", "/livez") and method == "GET" and "verbose" not in url.query:
            if not etcd.quorum():
                return self.health_checks(path)
            return self.send_text(200, "ok")
        if method == "GET" and (path in ("/readyz", "/livez") or path.startswith(("/readyz/", "/livez/"))):
            return self.health_checks(path)
        if path == "/version" and method == "GET":
            return self.send_json(200, self.server.version_info)
        discovery = method == "GET" and (path in ("/api", "/apis", "/api/v1") or path.startswith("/openapi/") or
                                         re.match(r"^/apis/[^/]+(/[^/]+)?$", path))
        if not discovery and not etcd.quorum():  # etcd lost quorum: every storage call times out (discovery and
            # openapi are served from memory, as the real kube-apiserver does)
            time.sleep(min(1.0, C.max_wait(1.0)))
            return self.send_json(500, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                        "message": "etcdserver: request timed out", "code": 500})
        if path.startswith("/apis/kslab/v1/etcd/") or path in ("/apis/kslab/v1/replicate", "/apis/kslab/v1/kubeadm-certs"):
            if path == "/apis/kslab/v1/kubeadm-certs" and method == "GET" and who in ("admin", "bootstrap"):
                return self.kubeadm_certs_get()
            if who != "admin":
                return self.forbidden(name, method.lower(), "etcd")
            return self.ha_request(method, path)
        if kapi_wants(who, method, path):  # the real kubectl's API (outside st.lock: watches are long)
            self.body_raw()
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
            try:
                if self.server.kapi.handle(self, method, path, q):
                    return
            except Exception as e:  # an internal error is a 500 Status, as the real API answers
                import traceback
                log("kapi %s %s: %s" % (method, self.path, traceback.format_exc()))
                return self.send_json(500, status_obj(500, "InternalError", "Internal error occurred: %s" % e))
        with st.lock:
            if path == "/api/v1/namespaces/kube-public/configmaps/cluster-info" and method == "GET":
                return self.send_json(200, self.cluster_info())
            m = re.match(r"^/api/v1/namespaces/kube-system/configmaps/(kubeadm-config|kubelet-config)$", path)
            if m and method == "GET":
                if who not in ("admin", "bootstrap", "node"):
                    return self.forbidden(name, "get", "configmaps", m.group(1), "kube-system")
                key = "kubeadmConfig" if m.group(1) == "kubeadm-config" else "kubeletConfig"
                data = {"ClusterConfiguration": st.d["cluster"].get(key, "")} if key == "kubeadmConfig" else {
                    "kubelet": st.d["cluster"].get(key, "")}
                return self.send_json(200, {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": m.group(1), "namespace": "kube-system"},
                                            "data": data})
            if path == "/apis/certificates.k8s.io/v1/certificatesigningrequests" and method == "POST":
                if who not in ("bootstrap", "admin", "node"):
                    return self.forbidden(name, "create", "certificatesigningrequests")
                return self.sign_csr()
            if path == "/api/v1/nodes":
                if method == "GET":
                    if who != "admin":
                        return self.forbidden(name, "list", "nodes")
                    items = [node_object(st, n) for _, n in sorted(st.d["nodes"].items())]
                    return self.send_json(200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {},
                                                "items": items})
                if method == "POST":
                    return self.register_node(who, name)
            m = re.match(r"^/api/v1/nodes/([^/]+)(/status)?$", path)
            if m:
                nname = urllib.parse.unquote(m.group(1))
                node = st.d["nodes"].get(nname)
                if m.group(2):
                    if method != "PUT":
                        return self.send_json(405, status_obj(405, "MethodNotAllowed", "method not allowed"))
                    if not (who == "admin" or (who == "node" and name == nname)):
                        return self.forbidden(name, "update", "nodes/status", nname)
                    if not node:
                        return self.not_found("nodes", nname)
                    b = self.body() or {}
                    node["lastHeartbeat"] = time.time()
                    dirty = note_kubelet_start(st, node, b)
                    for k in ("neverReady", "images", "ip", "kubeletVersion", "runtimeVersion", "runtimeProblem"):
                        if k in b and node.get(k) != b[k]:
                            node[k] = b[k]
                            dirty = True
                    if dirty:  # heartbeats alone stay in memory (a restarted API waits for the next beat)
                        st.save()
                    o = node_object(st, node)
                    o["kslab"] = {"cni": cni_files(st, node)}
                    return self.send_json(200, o)
                if method == "GET":
                    if not (who in ("admin", "bootstrap") or (who == "node" and name == nname)):
                        return self.forbidden(name, "get", "nodes", nname)
                    if not node:
                        return self.not_found("nodes", nname)
                    return self.send_json(200, node_object(st, node))
                if method == "DELETE":
                    if who != "admin":
                        return self.forbidden(name, "delete", "nodes", nname)
                    if not node:
                        return self.not_found("nodes", nname)
                    del st.d["nodes"][nname]
                    st.save()
                    return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                                                "details": {"name": nname, "kind": "nodes"}})
                if method == "PATCH":
                    if who != "admin":
                        return self.forbidden(name, "patch", "nodes", nname)
                    if not node:
                        return self.not_found("nodes", nname)
                    b = self.body() or {}
                    spec = b.get("spec") or {}
                    changed = False
                    if "unschedulable" in spec:
                        changed = bool(node.get("unschedulable")) != bool(spec["unschedulable"])
                        node["unschedulable"] = bool(spec["unschedulable"])
                        note_cordon(node)
                    if "taints" in spec:
                        node["taints"] = [t for t in (spec.get("taints") or [])
                                          if t.get("key") not in ("node.kubernetes.io/not-ready",
                                                                  "node.kubernetes.io/unschedulable")]
                        changed = True
                    labels = (b.get("metadata") or {}).get("labels")
                    if isinstance(labels, dict):
                        for k, v in labels.items():
                            if v is None:
                                node.setdefault("labels", {}).pop(k, None)
                            else:
                                node.setdefault("labels", {})[k] = v
                        changed = True
                    node["rv"] = node.get("rv", 1) + 1
                    st.save()
                    o = node_object(st, node)
                    o["kslabChanged"] = changed
                    return self.send_json(200, o)
            m = re.match(r"^/api/v1/(?:namespaces/([^/]+)/)?pods$", path)
            if m and method == "GET":
                if who != "admin":
                    return self.forbidden(name, "list", "pods", None, m.group(1))
                items = synth_pods(st)
                if m.group(1):
                    items = [p for p in items if p["metadata"]["namespace"] == m.group(1)]
                return self.send_json(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
            if path == "/apis/kslab/v1/apply" and method == "POST":
                if who != "admin":
                    return self.forbidden(name, "patch", "*")
                return self.apply()
            m = re.match(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/eviction$", path)
            if m and method == "POST":
                if who != "admin":
                    return self.forbidden(name, "create", "pods/eviction", m.group(2), m.group(1))
                return evict_pod(self, m.group(1), m.group(2))
            if path == "/apis/kslab/v1/upgrade" and method == "POST":
                return self.upgrade(who, name)
            if path == "/apis/kslab/v1/objects" and method == "GET":
                if who != "admin":
                    return self.forbidden(name, "list", "*")
                return self.send_json(200, {"items": list(st.d["objects"].values())})
            if path == "/apis/kslab/v1/tokens":
                if who != "admin":
                    return self.forbidden(name, "list" if method == "GET" else "create", "secrets", None,
                                          "kube-system")
                if method == "GET":
                    return self.send_json(200, {"items": [dict(t, id=i) for i, t in sorted(st.d["tokens"].items())]})
                if method == "POST":
                    b = self.body() or {}
                    m2 = C.TOKEN_RE.match(b.get("token") or "")
                    if not m2:
                        return self.send_json(422, status_obj(422, "Invalid", "invalid token"))
                    if m2.group(1) in st.d["tokens"]:
                        return self.send_json(409, status_obj(409, "AlreadyExists",
                                                              'secrets "bootstrap-token-%s" already exists'
                                                              % m2.group(1)))
                    st.d["tokens"][m2.group(1)] = {
                        "secret": m2.group(2), "expires": b.get("expires"), "created": time.time(),
                        "usages": b.get("usages") or ["authentication", "signing"],
                        "groups": b.get("groups") or ["system:bootstrappers:kubeadm:default-node-token"],
                        "description": b.get("description") or ""}
                    st.save()
                    return self.send_json(201, {"id": m2.group(1)})
            m = re.match(r"^/apis/kslab/v1/tokens/([a-z0-9]{6})$", path)
            if m and method == "DELETE":
                if who != "admin":
                    return self.forbidden(name, "delete", "secrets", "bootstrap-token-" + m.group(1), "kube-system")
                if m.group(1) not in st.d["tokens"]:
                    return self.not_found("secrets", "bootstrap-token-" + m.group(1))
                del st.d["tokens"][m.group(1)]
                st.save()
                return self.send_json(200, {"status": "Success"})
        if who == "anonymous":
            return self.forbidden("system:anonymous", method.lower(), path)
        return self.send_json(404, status_obj(404, "NotFound", "the server could not find the requested resource"))

    # HA: stacked etcd members, kubeadm-certs, snapshots --------------------------
    def kubeadm_certs_get(self):
        st = self.server.st
        with st.lock:
            sec = st.d.get("kubeadmCerts")
            tok = st.d["tokens"].get((sec or {}).get("owner") or "")
            live = bool(sec and tok and (tok.get("expires") is None or tok["expires"] >= time.time()))
            data = dict(sec["data"]) if live else None
        if not live:  # the owning token expired: the garbage collector deleted the Secret
            return self.not_found("secrets", "kubeadm-certs")
        return self.send_json(200, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                    "metadata": {"name": "kubeadm-certs", "namespace": "kube-system"}, "data": data})

    def ha_request(self, method, path):
        st, etcd = self.server.st, self.server.etcd
        b = self.body() or {}
        if path == "/apis/kslab/v1/replicate" and method == "GET":
            return self.send_json(200, json.loads(st.snapshot()))
        if path == "/apis/kslab/v1/kubeadm-certs" and method == "POST":
            with st.lock:
                tid = b.get("owner") or ""
                m = C.TOKEN_RE.match(tid)
                if not m:
                    return self.send_json(422, status_obj(422, "Invalid", "invalid owner token"))
                # the Secret is owned by a short-lived bootstrap token (no usages): it goes when the token expires
                old = (st.d.get("kubeadmCerts") or {}).get("owner")
                if old and old != m.group(1):
                    st.d["tokens"].pop(old, None)
                st.d["tokens"][m.group(1)] = {"secret": m.group(2), "expires": time.time() + float(b.get("ttl", 7200)),
                                              "created": time.time(), "usages": [], "groups": [],
                                              "description": "Proxy for managing TTL for the kubeadm-certs secret"}
                st.d["kubeadmCerts"] = {"owner": m.group(1), "data": b.get("data") or {}}
                st.save()
            return self.send_json(201, {"status": "Success"})
        if path == "/apis/kslab/v1/etcd/members" and method == "GET":
            with st.lock:
                members = json.loads(json.dumps(st.members()))
            up = etcd.up_names()
            for mem in members:
                mem["started"] = mem["name"] in up
            return self.send_json(200, {"members": members})
        if path == "/apis/kslab/v1/etcd/members" and method == "POST":
            with st.lock:
                ms = st.members()
                if any(x["peerURL"] == b.get("peerURL") for x in ms):  # kubeadm tolerates ErrPeerURLExist
                    return self.send_json(200, {"members": ms})
                if b.get("learner", True) and any(x.get("learner") for x in ms):
                    return self.send_json(400, status_obj(400, "BadRequest",
                                                          "etcdserver: too many learner members in cluster"))
                st.d.setdefault("etcd", {}).setdefault("members", []).append(
                    {"name": b.get("name"), "id": C.secrets.token_hex(8), "peerURL": b.get("peerURL"),
                     "clientURL": b.get("clientURL"), "apiEndpoint": b.get("apiEndpoint"),
                     "learner": bool(b.get("learner", True))})
                st.save()
                ms = json.loads(json.dumps(st.members()))
            return self.send_json(201, {"members": ms})
        m = re.match(r"^/apis/kslab/v1/etcd/members/([^/]+)(/promote)?$", path)
        if m and (method == "POST" and m.group(2) or method == "DELETE" and not m.group(2)):
            mname = urllib.parse.unquote(m.group(1))
            up = etcd.up_names()
            with st.lock:
                ms = st.members()
                mem = [x for x in ms if x["name"] == mname]
                if not mem:
                    return self.send_json(404, status_obj(404, "NotFound", "etcdserver: member not found"))
                mem = mem[0]
                if m.group(2):
                    if mem.get("learner"):
                        if mname not in up:
                            return self.send_json(412, status_obj(
                                412, "PreconditionFailed",
                                "etcdserver: can only promote a learner member which is in sync with leader"))
                        mem["learner"] = False
                        st.save()
                    return self.send_json(200, {"members": ms})
                rest = [x for x in ms if x is not mem and not x.get("learner")]
                started = [x for x in rest if x["name"] in up]
                if not mem.get("learner") and rest and len(started) * 2 <= len(rest):
                    return self.send_json(412, status_obj(
                        412, "PreconditionFailed",
                        "etcdserver: re-configuration failed due to not enough started members"))
                ms.remove(mem)
                st.save()
                snap = json.loads(json.dumps(st.d))
                left = json.loads(json.dumps(ms))
            etcd.push(snap, [mem] + left)  # before answering: the removed host goes away right after
            return self.send_json(200, {"members": left})
        return self.send_json(404, status_obj(404, "NotFound", "the server could not find the requested resource"))

    # handlers ---------------------------------------------------------------
    def cluster_info(self):
        st = self.server.st
        kc = st.d["cluster"]["clusterInfoKubeconfig"]
        data = {"kubeconfig": kc}
        for tid, t in st.live_tokens().items():
            if "signing" in (t.get("usages") or ["signing"]):
                data["jws-kubeconfig-" + tid] = C.jws_detached(kc, tid, t["secret"])
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cluster-info", "namespace": "kube-public"}, "data": data}

    def sign_csr(self):
        b = self.body() or {}
        try:
            import base64
            csr = base64.b64decode(((b.get("spec") or {}).get("request")) or "")
        except ValueError:
            csr = b""
        if b"CERTIFICATE REQUEST" not in csr:
            return self.send_json(422, status_obj(422, "Invalid", "CertificateSigningRequest is invalid: "
                                                  "spec.request: Invalid value: []byte{}: PEM block type must be "
                                                  "CERTIFICATE REQUEST"))
        conf = self.server.conf
        try:
            pem = C.sign_csr(csr, conf["caCrt"], conf["caKey"], client=True)
        except RuntimeError as e:
            return self.send_json(422, status_obj(422, "Invalid", str(e)))
        import base64
        name = (b.get("metadata") or {}).get("name") or "csr-%d" % int(time.time())
        return self.send_json(201, {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                                    "metadata": {"name": name},
                                    "status": {"conditions": [{"type": "Approved", "status": "True",
                                                               "reason": "AutoApproved"}],
                                               "certificate": base64.b64encode(pem).decode()}})

    def register_node(self, who, name):
        st = self.server.st
        b = self.body() or {}
        md = b.get("metadata") or {}
        nname = md.get("name")
        if not nname:
            return self.send_json(422, status_obj(422, "Invalid", "Node is invalid: metadata.name: Required value"))
        if not (who in ("admin", "bootstrap") or (who == "node" and name == nname)):
            return self.forbidden(name, "create", "nodes")
        ext = b.get("kslab") or {}
        existing = st.d["nodes"].get(nname)
        now = time.time()
        idx = existing.get("index", 0) if existing else (
            max([n.get("index", 0) for n in st.d["nodes"].values()] + [-1]) + 1)
        rec = existing or {"name": nname, "created": now, "uid": C.secrets.token_hex(16), "index": idx}
        rec.update({"labels": md.get("labels") or rec.get("labels") or {},
                    "annotations": md.get("annotations") or rec.get("annotations") or {},
                    "taints": (b.get("spec") or {}).get("taints") or [],
                    "lastHeartbeat": now, "rv": rec.get("rv", 0) + 1})
        for k in ("ip", "kubeletVersion", "osImage", "kernel", "runtimeVersion", "neverReady", "images", "machineID",
                  "memKi", "bootID", "runtimeProblem"):
            if k in ext:
                rec[k] = ext[k]
        ps = st.d["cluster"].get("podSubnet")
        if ps and "podCIDR" not in rec:
            m = re.match(r"^(\d+)\.(\d+)\.\d+\.\d+/(\d+)$", ps)
            if m and int(m.group(3)) <= 16:
                rec["podCIDR"] = "%s.%s.%d.0/24" % (m.group(1), m.group(2), idx)
        st.d["nodes"][nname] = rec
        st.save()
        return self.send_json(200 if existing else 201, node_object(st, rec))

    def upgrade(self, who, name):
        return upgrade_request(self, who, name)

    def apply(self):
        st = self.server.st
        b = self.body() or {}
        results = []
        namespaces = {"default", "kube-system", "kube-public", "kube-node-lease"}
        namespaces |= {(o.get("metadata") or {}).get("name") for o in st.d["objects"].values()
                       if o.get("kind") == "Namespace"}
        crds = set()
        for o in st.d["objects"].values():
            if o.get("kind") == "CustomResourceDefinition":
                sp = o.get("spec") or {}
                crds.add((sp.get("group"), (sp.get("names") or {}).get("kind")))
        for o in b.get("items") or []:
            if o.get("kind") == "CustomResourceDefinition":
                sp = o.get("spec") or {}
                crds.add((sp.get("group"), (sp.get("names") or {}).get("kind")))
            api = o.get("apiVersion", "")
            group = api.split("/")[0] if "/" in api else ""
            if group not in BUILTIN_GROUPS and (group, o.get("kind")) not in crds:
                md = o.get("metadata") or {}
                results.append('nomatch: resource mapping not found for name: "%s" namespace: "%s" from "%%s": no '
                               'matches for kind "%s" in version "%s"\nensure CRDs are installed first' % (
                                   md.get("name", ""), md.get("namespace", "") if o.get("kind") not in
                                   ("Installation", "APIServer") else "", o.get("kind"), api))
                continue
            ns = (o.get("metadata") or {}).get("namespace")
            if ns and ns not in namespaces:
                results.append('error: namespaces "%s" not found' % ns)
                continue
            if o.get("kind") == "Namespace":
                namespaces.add((o.get("metadata") or {}).get("name"))
            key = obj_key(o)
            old = st.d["objects"].get(key)
            clean = json.loads(json.dumps(o))
            if old is None:
                results.append("created")
            elif old == clean:
                results.append("unchanged")
            else:
                results.append("configured")
            st.d["objects"][key] = clean
        st.save()
        synth_pods(st)  # the scheduler places new pods at once (placements are sticky)
        return self.send_json(200, {"results": results})


# ----------------------------------------------------------------------------------------------
# The Kubernetes REST surface for the real kubectl (kslab_kapi.py): the hooks that tie it to this state.
# Nodes come from the same records the node agent and kubeadm keep; pods are synth_pods() plus pods created
# through the API; kubeadm's objects (namespaces, kube-proxy, CoreDNS, cluster-info, kubeadm-config,
# kubelet-config, bootstrap-token secrets) are served as built-in objects.

def _kapi_uid(seed):
    import hashlib
    h = hashlib.sha256(seed.encode()).hexdigest()
    return "%s-%s-4%s-8%s-%s" % (h[:8], h[8:12], h[13:16], h[17:20], h[20:32])


def _kapi_md(name, ns=None, created=None, labels=None, annotations=None, rv="1", seed=None):
    md = {"name": name, "uid": _kapi_uid(seed or "%s/%s" % (ns or "", name)), "resourceVersion": rv,
          "creationTimestamp": C.now_rfc3339(created)}
    if ns is not None:
        md["namespace"] = ns
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    return md


def _kapi_b64(s):
    import base64
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class KapiHooks:
    """What kslab_kapi.API needs from the daemon (see its docstring)."""

    node_object = staticmethod(node_object)

    # built-in objects a kubeadm cluster has ---------------------------------------------------
    @staticmethod
    def builtin_objects(st):
        cl = st.d["cluster"]
        created = min([n.get("created", time.time()) for n in st.d["nodes"].values()] + [st.d.get("createdAt") or
                                                                                          time.time()])
        st.d.setdefault("createdAt", created)
        ver = cl.get("kubernetesVersion", "v1.31.2")
        repo = cl.get("imageRepository", "registry.k8s.io")
        comp = C.components(ver)
        out = {}

        def put(o):
            out[obj_key(o)] = o
        for ns in ("default", "kube-node-lease", "kube-public", "kube-system"):
            put({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": _kapi_md(ns, created=created, labels={"kubernetes.io/metadata.name": ns}),
                 "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        if cl.get("clusterInfoKubeconfig"):
            data = {"kubeconfig": cl["clusterInfoKubeconfig"]}
            for tid, t in st.live_tokens().items():
                if "signing" in (t.get("usages") or ["signing"]):
                    data["jws-kubeconfig-" + tid] = C.jws_detached(cl["clusterInfoKubeconfig"], tid, t["secret"])
            put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _kapi_md("cluster-info", "kube-public", created),
                 "data": data})
        if cl.get("kubeadmConfig") is not None:
            put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _kapi_md("kubeadm-config", "kube-system", created),
                 "data": {"ClusterConfiguration": cl.get("kubeadmConfig", "")}})
        if cl.get("kubeletConfig") is not None:
            put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _kapi_md("kubelet-config", "kube-system", created),
                 "data": {"kubelet": cl.get("kubeletConfig", "")}})
        put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _kapi_md("kube-root-ca.crt", "kube-system",
                                                                           created),
             "data": {"ca.crt": ""}})
        for tid, t in sorted(st.d["tokens"].items()):
            data = {"token-id": _kapi_b64(tid), "token-secret": _kapi_b64(t.get("secret", ""))}
            if t.get("expires") is not None:
                data["expiration"] = _kapi_b64(C.now_rfc3339(t["expires"]))
            for u in t.get("usages") or []:
                data["usage-bootstrap-" + u] = _kapi_b64("true")
            if t.get("groups"):
                data["auth-extra-groups"] = _kapi_b64(",".join(t["groups"]))
            if t.get("description"):
                data["description"] = _kapi_b64(t["description"])
            put({"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
                 "metadata": _kapi_md("bootstrap-token-" + tid, "kube-system", t.get("created")), "data": data})
        sec = st.d.get("kubeadmCerts")
        owner = st.d["tokens"].get((sec or {}).get("owner") or "")
        if sec and owner and (owner.get("expires") is None or owner["expires"] >= time.time()):
            md = _kapi_md("kubeadm-certs", "kube-system", owner.get("created"))
            md["ownerReferences"] = [{"apiVersion": "v1", "kind": "Secret", "name": "bootstrap-token-" + sec["owner"],
                                      "uid": _kapi_uid("kube-system/bootstrap-token-" + sec["owner"]),
                                      "blockOwnerDeletion": True, "controller": True}]
            put({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": md, "data": dict(sec["data"])})
        put({"apiVersion": "apps/v1", "kind": "DaemonSet",
             "metadata": _kapi_md("kube-proxy", "kube-system", created, {"k8s-app": "kube-proxy"}),
             "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                      "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                                   "spec": {"containers": [{"name": "kube-proxy",
                                                            "image": "%s/kube-proxy:%s" % (repo, ver)}],
                                            "nodeSelector": {"kubernetes.io/os": "linux"},
                                            "tolerations": [{"operator": "Exists"}]}}}})
        dns_img = ("%s/coredns/coredns:%s" if repo == "registry.k8s.io" else "%s/coredns:%s") % (repo, comp["coredns"])
        put({"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": _kapi_md("coredns", "kube-system", created, {"k8s-app": "kube-dns"}),
             "spec": {"replicas": 2, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                      "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                                   "spec": {"containers": [{"name": "coredns", "image": dns_img}]}}}})
        for name, ns, ip, ports in (("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443,
                                                                              "protocol": "TCP"}]),
                                    ("kube-dns", "kube-system", "10.96.0.10",
                                     [{"name": "dns", "port": 53, "protocol": "UDP"},
                                      {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])):
            put({"apiVersion": "v1", "kind": "Service", "metadata": _kapi_md(name, ns, created),
                 "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": ports,
                          **({"selector": {"k8s-app": "kube-dns"}} if name == "kube-dns" else {})}})
        for n in st.d["nodes"].values():  # the kubelet's heartbeat lease
            put({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": _kapi_md(n["name"], "kube-node-lease", n.get("created"),
                                      seed="lease/%s/%s" % (n["name"], n.get("uid"))),
                 "spec": {"holderIdentity": n["name"], "leaseDurationSeconds": 40,
                          "renewTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z",
                                                     time.gmtime(n.get("lastHeartbeat") or n.get("created")))}})
        for o in out.values():
            o.setdefault("kslabBuiltin", True)
        return out

    @staticmethod
    def delete_builtin(st, key):
        """DELETE of a built-in object: bootstrap-token secrets are the tokens kubeadm keeps."""
        g, kind, ns, name = key.split("|", 3)
        if g == "" and kind == "Secret" and ns == "kube-system" and name.startswith("bootstrap-token-"):
            st.d["tokens"].pop(name[len("bootstrap-token-"):], None)
        if g == "" and kind == "Secret" and ns == "kube-system" and name == "kubeadm-certs":
            st.d.pop("kubeadmCerts", None)

    # pods ---------------------------------------------------------------------------------------
    @staticmethod
    def synth_pods(st):
        """synth_pods() with what the API adds: uids, controller owner references, mirror-pod annotations, CoreDNS
        placed on a schedulable Ready node (moved when evicted), plus pods created through the API."""
        nodes = st.d["nodes"]
        place = st.d.setdefault("kapiPlacement", {})
        gens = st.d.setdefault("kapiPodGen", {})
        out = []
        dns_i = 0
        ready = [n["name"] for n in sorted(nodes.values(), key=lambda n: n.get("created", 0))
                 if node_ready(st, n)[0] == "True"]
        for p in synth_pods(st):
            md = p["metadata"]
            owners = md.get("ownerReferences") or []
            if owners and owners[0].get("kind") == "ReplicaSet" and (md.get("labels") or {}).get("k8s-app") == \
                    "kube-dns":
                slot = "coredns-%d" % dns_i
                dns_i += 1
                node = place.get(slot)
                if node not in nodes:
                    cands = [n for n in ready if not nodes[n].get("unschedulable")]
                    node = cands[0] if cands else None
                    if node:
                        place[slot] = node
                    else:
                        place.pop(slot, None)
                p["spec"]["nodeName"] = node
                if node is None:
                    p["spec"].pop("nodeName")
                    p["status"]["kslabStatus"] = "Pending"
                    p["status"]["phase"] = "Pending"
                    for c in p["status"].get("containerStatuses") or []:
                        c.update({"ready": False, "started": False, "state": {"waiting": {"reason": "Pending"}}})
                rs = owners[0]["name"]
                md["name"] = "%s-%s" % (rs, _suffix("%s@%s#%d" % (slot, node, gens.get(slot, 0))))
                md["labels"] = dict(md.get("labels") or {}, **{"pod-template-hash": rs.rsplit("-", 1)[-1]})
            for o in owners:
                o["controller"] = True
                o["blockOwnerDeletion"] = True
                o["apiVersion"] = {"Node": "v1", "DaemonSet": "apps/v1", "ReplicaSet": "apps/v1"}.get(o.get("kind"),
                                                                                                     "v1")
                o["uid"] = _kapi_uid("%s/%s/%s" % (o.get("kind"), md["namespace"], o.get("name")))
            if owners and owners[0].get("kind") == "DaemonSet":
                KapiHooks.ds_pod_containers(st, p, owners[0].get("name"))
            if owners and owners[0].get("kind") == "Node":
                md["annotations"] = {"kubernetes.io/config.mirror": _kapi_uid("mirror/" + md["name"])[:32],
                                     "kubernetes.io/config.source": "file"}
                p["spec"]["priorityClassName"] = "system-node-critical"
            gen = gens.get("%s/%s" % (md["namespace"], md["name"]), 0)
            md["uid"] = _kapi_uid("pod/%s/%s#%d" % (md["namespace"], md["name"], gen))
            md["resourceVersion"] = str(st.d.get("rv", 1000))
            p["status"].setdefault("conditions", [{"type": "Ready", "status": "True" if p["status"].get("phase") ==
                                                   "Running" else "False"}])
            if p["status"].get("kslabStatus") == "Unknown":
                p["status"]["phase"] = "Unknown"
            out.append(p)
        for key, o in sorted(st.d["objects"].items()):
            if o.get("kind") == "Pod" and o.get("apiVersion") == "v1":
                out.append(KapiHooks.stored_pod(st, o))
        return out

    @staticmethod
    def ds_pod_containers(st, p, ds_name):
        """A DaemonSet pod's containers as its template has them: init containers apart (completed once the pod
        got past them), so READY counts the main containers only, as on a real node."""
        ds = st.d["objects"].get("apps|DaemonSet|%s|%s" % (p["metadata"]["namespace"], ds_name))
        tpl = (((ds or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
        if not tpl.get("initContainers"):
            return
        cs = p["status"].get("containerStatuses") or []
        by_image = {c.get("image"): c for c in cs}
        stt = p["status"].get("kslabStatus")
        done = stt in ("Running", "CrashLoopBackOff")
        p["spec"]["initContainers"] = [{"name": c.get("name"), "image": c.get("image")} for c in tpl["initContainers"]]
        p["spec"]["containers"] = [{"name": c.get("name"), "image": c.get("image")} for c in tpl.get("containers") or []]
        if tpl.get("volumes"):
            p["spec"]["volumes"] = tpl["volumes"]
        p["status"]["initContainerStatuses"] = [
            {"name": c.get("name"), "image": c.get("image"), "ready": done, "restartCount": 0, "started": False,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}} if done else
             {"waiting": {"reason": stt or "PodInitializing"}}} for c in tpl["initContainers"]]
        main = []
        for c in tpl.get("containers") or []:
            st_ = dict(by_image.get(c.get("image")) or {"ready": False, "restartCount": 0, "started": False,
                                                         "state": {"waiting": {"reason": stt}}})
            st_["name"] = c.get("name")
            st_["image"] = c.get("image")
            main.append(st_)
        p["status"]["containerStatuses"] = main

    @staticmethod
    def stored_pod(st, o):
        p = json.loads(json.dumps(o))
        node = st.d["nodes"].get((p.get("spec") or {}).get("nodeName") or "")
        up = node is not None and node_ready(st, node)[0] == "True"
        cs = [{"name": c.get("name"), "image": c.get("image"), "ready": up, "restartCount": 0, "started": up,
               "state": {"running": {"startedAt": p["metadata"].get("creationTimestamp")}} if up else
               {"waiting": {"reason": "ContainerCreating"}}} for c in (p.get("spec") or {}).get("containers") or []]
        p["status"] = {"phase": "Running" if up else "Pending", "containerStatuses": cs,
                       "kslabStatus": "Running" if up else ("ContainerCreating" if node else "Pending"),
                       "hostIP": node.get("ip") if node else None,
                       "conditions": [{"type": "Ready", "status": "True" if up else "False"}]}
        return p

    @staticmethod
    def evict(st, pod):
        # Pods placed by the node agent's scheduler (lab-upgrade) move by its rules; CoreDNS stays with the REST layer.
        if (pod["metadata"].get("labels") or {}).get("k8s-app") != "kube-dns" and release_placement(st, pod):
            return
        md = pod["metadata"]
        key = "|Pod|%s|%s" % (md["namespace"], md["name"])
        if key in st.d["objects"]:
            del st.d["objects"][key]
            return
        owners = md.get("ownerReferences") or []
        if owners and owners[0].get("kind") == "ReplicaSet":  # the ReplicaSet makes a new pod elsewhere
            place = st.d.setdefault("kapiPlacement", {})
            for slot, node in list(place.items()):
                if node == (pod.get("spec") or {}).get("nodeName") and slot.startswith("coredns-"):
                    if md["name"].endswith(_suffix("%s@%s#%d" % (slot, node, st.d.get("kapiPodGen", {}).get(slot,
                                                                                                              0)))):
                        del place[slot]
                        gens = st.d.setdefault("kapiPodGen", {})
                        gens[slot] = gens.get(slot, 0) + 1
            return
        # DaemonSet / static pods come back under the same name (a new uid)
        gens = st.d.setdefault("kapiPodGen", {})
        k = "%s/%s" % (md["namespace"], md["name"])
        gens[k] = gens.get(k, 0) + 1

    # objects ------------------------------------------------------------------------------------
    @staticmethod
    def default(o):
        """API defaulting on create/update."""
        kind, sp = o.get("kind"), o.get("spec")
        if kind == "DaemonSet" and isinstance(sp, dict):
            sp.setdefault("updateStrategy", {"type": "RollingUpdate",
                                             "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
            sp.setdefault("revisionHistoryLimit", 10)
        if kind == "Deployment" and isinstance(sp, dict):
            sp.setdefault("replicas", 1)
            sp.setdefault("strategy", {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        if kind == "Namespace":
            o.setdefault("spec", {"finalizers": ["kubernetes"]})
            o["status"] = {"phase": "Active"}
            o["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = o["metadata"]["name"]
        if kind == "Secret":
            o.setdefault("type", "Opaque")
        if kind == "Pod" and isinstance(sp, dict):
            sp.setdefault("restartPolicy", "Always")

    @staticmethod
    def decorate(st, o):
        """A stored object as the API shows it: metadata filled in, controller status computed."""
        o = json.loads(json.dumps(o))
        o.pop("kslabBuiltin", None)
        md = o.setdefault("metadata", {})
        md.setdefault("uid", _kapi_uid("%s/%s/%s/%s" % (o.get("apiVersion"), o.get("kind"), md.get("namespace", ""),
                                                         md.get("name"))))
        md.setdefault("resourceVersion", "1")
        md.setdefault("creationTimestamp", C.now_rfc3339(st.d.get("createdAt")))
        md.setdefault("generation", 1)
        kind = o.get("kind")
        if kind == "DaemonSet":
            KapiHooks.default(o)
            pods = [p for p in KapiHooks.synth_pods(st)
                    if any(r.get("kind") == "DaemonSet" and r.get("name") == md.get("name")
                           for r in p["metadata"].get("ownerReferences") or [])
                    and p["metadata"]["namespace"] == md.get("namespace")]
            n = len(pods)
            rd = sum(1 for p in pods if p["status"].get("kslabStatus") == "Running")
            o["status"] = {"currentNumberScheduled": n, "desiredNumberScheduled": n, "numberMisscheduled": 0,
                           "numberReady": rd, "numberAvailable": rd, "updatedNumberScheduled": n,
                           "observedGeneration": md["generation"]}
            if n - rd:
                o["status"]["numberUnavailable"] = n - rd
        elif kind == "Deployment" and md.get("name") == "coredns" and md.get("namespace") == "kube-system":
            pods = [p for p in KapiHooks.synth_pods(st) if (p["metadata"].get("labels") or {}).get("k8s-app") ==
                    "kube-dns"]
            rd = sum(1 for p in pods if p["status"].get("kslabStatus") == "Running")
            o["status"] = {"observedGeneration": md["generation"], "replicas": len(pods), "updatedReplicas": len(pods),
                           "readyReplicas": rd, "availableReplicas": rd}
            if len(pods) - rd:
                o["status"]["unavailableReplicas"] = len(pods) - rd
        return o

    # nodes --------------------------------------------------------------------------------------
    @staticmethod
    def node_update(st, rec, new, status_only=False):
        """PUT/PATCH of a Node: spec.unschedulable, spec.taints, labels, annotations. -> changed?"""
        if status_only or not isinstance(new, dict):
            return False
        before = json.dumps([rec.get(k) for k in ("unschedulable", "taints", "labels", "annotations")],
                            sort_keys=True)
        spec = new.get("spec") or {}
        rec["unschedulable"] = bool(spec.get("unschedulable"))
        rec["taints"] = [t for t in (spec.get("taints") or [])
                         if not (t.get("key") in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unschedulable")
                                 and t.get("effect") == "NoSchedule" and not t.get("value"))]
        md = new.get("metadata") or {}
        rec["labels"] = {k: v for k, v in (md.get("labels") or {}).items() if v is not None}
        rec["annotations"] = {k: v for k, v in (md.get("annotations") or {}).items() if v is not None}
        changed = json.dumps([rec.get(k) for k in ("unschedulable", "taints", "labels", "annotations")],
                             sort_keys=True) != before
        if changed:
            rec["rv"] = rec.get("rv", 1) + 1
            st.save()
        return changed


def kapi_wants(who, method, path):
    """Requests the REST surface answers: everything an admin asks except the lab's private paths and the
    calls kubeadm and the node agent make (registration, heartbeats, CSRs)."""
    if who != "admin" or path.startswith("/apis/kslab/"):
        return False
    if method == "PUT" and re.match(r"^/api/v1/nodes/[^/]+/status$", path):
        return False
    if method == "POST" and path in ("/api/v1/nodes", "/apis/certificates.k8s.io/v1/certificatesigningrequests"):
        return False
    return path in ("/api", "/apis") or path.startswith(("/api/", "/apis/", "/openapi/"))


class EtcdView:
    """This API server's view of the stacked etcd cluster shared by the control planes (st.d["etcd"]["members"]).
    A prober dials every other member's client port (2379) each second; quorum = a majority of the voting
    (non-learner) members answer, this one included. A replicator pushes the whole store to every other member's
    API server after each local write (and every 2 s), never while holding the state lock."""

    def __init__(self, st, conf):
        self.st = st
        self.me = conf.get("member") or ""
        self.crt, self.key, self.ca = conf.get("peerCrt"), conf.get("peerKey"), conf.get("caCrt")
        self._up = set()
        self._push_err = {}
        self._lock = threading.Lock()
        st.me = self.me
        st.dirty = threading.Event()

    def up_names(self):
        with self._lock:
            return set(self._up) | {self.me}

    def quorum(self):
        with self.st.lock:
            voting = [m["name"] for m in self.st.members() if not m.get("learner")]
        if not voting:
            return True  # a store from before HA (single control plane without a member list)
        up = self.up_names()
        return sum(1 for n in voting if n in up) * 2 > len(voting)

    def _probe(self):
        while True:
            with self.st.lock:
                ms = [(m["name"], m.get("clientURL") or "") for m in self.st.members() if m["name"] != self.me]
            up = set()
            for name, url in ms:
                host, port = C.split_server(url) if url else ("", 0)
                try:
                    socket.create_connection((host, int(port)), timeout=0.5).close()
                    up.add(name)
                except (OSError, ValueError):
                    pass
            with self._lock:
                self._up = up
            time.sleep(1.0)

    def push(self, snap, members):
        """POST the snapshot to the API servers of `members` (not us), in parallel; no lock held."""
        if not (self.crt and os.path.exists(self.crt)):
            return
        try:
            ca_pem, crt, key = (open(f, "rb").read() for f in (self.ca, self.crt, self.key))
        except OSError:
            return

        def one(ep):
            try:
                code, _ = C.api_request("https://" + ep, "POST", "/apis/kslab/v1/replicate", snap, ca_pem=ca_pem,
                                        cert_pem=crt, key_pem=key, timeout=3)
                err = None if code == 200 else "HTTP %s" % code
            except Exception as e:
                err = str(e)
            with self._lock:  # log changes only (a stopped peer would otherwise fill the log every 2 s)
                was = self._push_err.get(ep)
                self._push_err[ep] = err
            if err != was:
                log("replicate to %s: %s" % (ep, err or "ok"))
        ts = [threading.Thread(target=one, args=(m["apiEndpoint"],), daemon=True) for m in members
              if m.get("apiEndpoint") and m["name"] != self.me]
        for t in ts:
            t.start()
        for t in ts:
            t.join(5)

    def _replicate(self):
        while True:
            self.st.dirty.wait(2.0)
            self.st.dirty.clear()
            with self.st.lock:
                ms = json.loads(json.dumps(self.st.members()))
                snap = json.loads(json.dumps(self.st.d)) if len(ms) > 1 else None
            if snap:
                self.push(snap, ms)

    def start(self):
        for fn in (self._probe, self._replicate):
            threading.Thread(target=fn, daemon=True).start()


class TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # up to 100 lab hosts join/heartbeat at once

    def __init__(self, addr, ctx, st, conf, version_info):
        self.ctx = ctx
        self.st = st
        self.conf = conf
        self.version_info = version_info
        import kslab_kapi
        adv = conf.get("bind") or C.split_server(st.d["cluster"].get("server") or "https://127.0.0.1:6443")[0]
        self.kapi = kslab_kapi.API(st, KapiHooks, "%s:%s" % (adv, conf.get("port", 6443)))
        self.etcd = EtcdView(st, conf)
        self.etcd.start()
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        try:
            request.settimeout(30)
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log("TLS handshake from %s failed: %s" % (client_address, e))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


def run_apiserver():
    conf = C.load_json(API_CONF)
    if not conf:
        log("no %s" % API_CONF)
        sys.exit(1)
    st = State(conf.get("stateFile") or API_STATE)
    addr = conf.get("bind", "")
    for port in conf.get("listeners", []):
        listen_plain(addr, port)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(conf["servingCrt"], conf["servingKey"])
    ctx.load_verify_locations(conf["caCrt"])
    ctx.verify_mode = ssl.CERT_OPTIONAL
    v = conf.get("version", "v1.31.2")
    t = C.parse_version(v) or (1, 31, 2)
    version_info = {"major": str(t[0]), "minor": str(t[1]), "gitVersion": v, "gitTreeState": "clean",
                    "goVersion": C.GO_VERSION.get("%d.%d" % t[:2], "go1.22.8"), "compiler": "gc",
                    "platform": "linux/amd64"}
    srv = TLSServer((addr, conf.get("port", 6443)), ctx, st, conf, version_info)
    flush_on_term(st)
    log("apiserver listening on %s:%s" % (addr or "*", conf.get("port", 6443)))
    srv.serve_forever()


# ----------------------------------------------------------------------------------------------
# kubelet daemon


def run_kubelet():
    conf = C.load_json(KUBELET_CONF)
    if not conf:
        log("no %s" % KUBELET_CONF)
        sys.exit(1)
    addr = conf.get("bind", "")
    listen_plain(addr, 10250)
    listen_plain(addr or "127.0.0.1", 10248, http_ok=True)
    kind = conf.get("runtime", "containerd")
    started = {"kubeletVersion": C.read_version("kubelet"), "kubeletStartedAt": time.time()}
    images, images_at = None, 0.0
    backoff = None  # like the kubelet's registration: a failed beat is retried soon (0.2 s doubling to 7 s)
    while True:
        ok = False
        try:
            if images is None or time.time() - images_at > (30 if C.tier() == "vm" else 10):
                images, images_at = sorted(C.runtime_images(kind)), time.time()
            body = {"neverReady": C.knob("never-ready"), "images": images,
                    "runtimeProblem": C.node_runtime_problem(kind)}
            body.update(started)
            kc = C.load_kubeconfig(conf["kubeconfig"])
            code, resp = C.api_request(kc["server"], "PUT", "/api/v1/nodes/%s/status" % conf["node"], body,
                                       ca_pem=kc["ca_pem"], cert_pem=kc["cert_pem"], key_pem=kc["key_pem"])
            if code >= 300:
                log("heartbeat: HTTP %s %s" % (code, resp))
            else:
                ok = True
                for fname, content in ((resp.get("kslab") or {}).get("cni") or {}).items():
                    path = C.P("/etc/cni/net.d/" + fname)
                    if not os.path.exists(path):
                        C.atomic_write(path, content, 0o644)
                        log("CNI pod wrote %s" % path)
        except Exception as e:  # keep beating
            log("heartbeat failed: %s" % e)
        backoff = None if ok else min(7.0, (backoff or 0.1) * 2)
        time.sleep(HEARTBEAT_EVERY if ok else backoff)


def main():
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "apiserver":
        run_apiserver()
    elif role == "kubelet":
        run_kubelet()
    else:
        sys.stderr.write("usage: kslab_daemon.py apiserver|kubelet\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
