"""The Kubernetes REST surface of the lab's API server (used by the real kubectl).

Written from the Kubernetes API conventions (api-conventions.md, api-concepts.md), the discovery documents a real
kube-apiserver 1.31 serves, and client-go/kubectl behaviour:
  - /version, legacy discovery (/api, /api/v1, /apis, /apis/G, /apis/G/V; aggregated discovery is answered with
    the legacy document as plain application/json, which client-go treats as "not aggregated" and falls back),
  - /openapi/v3 (+ one document per group-version: the PATCH operations with their GVK and the fieldValidation
    query parameter, so kubectl leaves validation to the server); /openapi/v2 is an empty document (kubectl then
    uses its compiled-in types for strategic merge patches and skips client-side validation of unknown kinds),
  - nodes, pods (synthesized by the daemon), pods/eviction, and a generic store for every other built-in or
    CRD-defined resource: list (fieldSelector, labelSelector), get, watch, create, update, patch (merge,
    strategic merge, JSON patch, server-side apply as a merge), delete; Table responses when asked for,
  - errors as Status objects (404 NotFound, 409 AlreadyExists/Conflict, 422 Invalid, 405 MethodNotAllowed).
The daemon passes itself in (node_object, synth_pods, obj_key, ...), so this module holds no cluster logic.
"""
import copy
import json
import re
import time
import urllib.parse

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _r(plural, kind, namespaced, short=(), cats=(), verbs=None, singular=None):
    return {"name": plural, "singularName": singular or kind.lower(), "namespaced": namespaced, "kind": kind,
            "verbs": list(verbs or ALL_VERBS), "shortNames": list(short), "categories": list(cats)}


def _sub(name, kind, namespaced, verbs, group=None, version=None):
    d = {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": list(verbs)}
    if group is not None:
        d["group"], d["version"] = group, version
    return d


GS = ["get", "patch", "update"]
# group -> version -> resources (as in a kube-apiserver 1.31's discovery, the parts a kubeadm cluster uses)
BUILTIN = {
    "": {"v1": [
        _r("bindings", "Binding", True, verbs=["create"]),
        _r("componentstatuses", "ComponentStatus", False, ("cs",), verbs=["get", "list"]),
        _r("configmaps", "ConfigMap", True, ("cm",)),
        _r("endpoints", "Endpoints", True, ("ep",), singular="endpoints"),
        _r("events", "Event", True, ("ev",)),
        _r("limitranges", "LimitRange", True, ("limits",)),
        _r("namespaces", "Namespace", False, ("ns",), verbs=["create", "delete", "get", "list", "patch", "update",
                                                            "watch"]),
        _sub("namespaces/finalize", "Namespace", False, ["update"]),
        _sub("namespaces/status", "Namespace", False, GS),
        _r("nodes", "Node", False, ("no",)),
        _sub("nodes/proxy", "NodeProxyOptions", False, ["create", "delete", "get", "patch", "update"]),
        _sub("nodes/status", "Node", False, GS),
        _r("persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",)),
        _r("persistentvolumes", "PersistentVolume", False, ("pv",)),
        _r("pods", "Pod", True, ("po",), ("all",)),
        _sub("pods/attach", "PodAttachOptions", True, ["create", "get"]),
        _sub("pods/binding", "Binding", True, ["create"]),
        _sub("pods/ephemeralcontainers", "Pod", True, GS),
        _sub("pods/eviction", "Eviction", True, ["create"], "policy", "v1"),
        _sub("pods/exec", "PodExecOptions", True, ["create", "get"]),
        _sub("pods/log", "Pod", True, ["get"]),
        _sub("pods/portforward", "PodPortForwardOptions", True, ["create", "get"]),
        _sub("pods/proxy", "PodProxyOptions", True, ["create", "delete", "get", "patch", "update"]),
        _sub("pods/status", "Pod", True, GS),
        _r("podtemplates", "PodTemplate", True),
        _r("replicationcontrollers", "ReplicationController", True, ("rc",), ("all",)),
        _r("resourcequotas", "ResourceQuota", True, ("quota",)),
        _r("secrets", "Secret", True),
        _r("serviceaccounts", "ServiceAccount", True, ("sa",)),
        _sub("serviceaccounts/token", "TokenRequest", True, ["create"], "authentication.k8s.io", "v1"),
        _r("services", "Service", True, ("svc",), ("all",)),
        _sub("services/proxy", "ServiceProxyOptions", True, ["create", "delete", "get", "patch", "update"]),
        _sub("services/status", "Service", True, GS),
    ]},
    "apps": {"v1": [
        _r("controllerrevisions", "ControllerRevision", True),
        _r("daemonsets", "DaemonSet", True, ("ds",), ("all",)),
        _sub("daemonsets/status", "DaemonSet", True, GS),
        _r("deployments", "Deployment", True, ("deploy",), ("all",)),
        _sub("deployments/scale", "Scale", True, GS, "autoscaling", "v1"),
        _sub("deployments/status", "Deployment", True, GS),
        _r("replicasets", "ReplicaSet", True, ("rs",), ("all",)),
        _sub("replicasets/scale", "Scale", True, GS, "autoscaling", "v1"),
        _sub("replicasets/status", "ReplicaSet", True, GS),
        _r("statefulsets", "StatefulSet", True, ("sts",), ("all",)),
        _sub("statefulsets/scale", "Scale", True, GS, "autoscaling", "v1"),
        _sub("statefulsets/status", "StatefulSet", True, GS),
    ]},
    "events.k8s.io": {"v1": [_r("events", "Event", True, ("ev",))]},
    "authentication.k8s.io": {"v1": [_r("selfsubjectreviews", "SelfSubjectReview", False, verbs=["create"]),
                                     _r("tokenreviews", "TokenReview", False, verbs=["create"])]},
    "authorization.k8s.io": {"v1": [
        _r("localsubjectaccessreviews", "LocalSubjectAccessReview", True, verbs=["create"]),
        _r("selfsubjectaccessreviews", "SelfSubjectAccessReview", False, verbs=["create"]),
        _r("selfsubjectrulesreviews", "SelfSubjectRulesReview", False, verbs=["create"]),
        _r("subjectaccessreviews", "SubjectAccessReview", False, verbs=["create"])]},
    "autoscaling": {"v2": [_r("horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ("hpa",), ("all",)),
                           _sub("horizontalpodautoscalers/status", "HorizontalPodAutoscaler", True, GS)],
                    "v1": [_r("horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ("hpa",), ("all",)),
                           _sub("horizontalpodautoscalers/status", "HorizontalPodAutoscaler", True, GS)]},
    "batch": {"v1": [_r("cronjobs", "CronJob", True, ("cj",), ("all",)), _sub("cronjobs/status", "CronJob", True, GS),
                     _r("jobs", "Job", True, (), ("all",)), _sub("jobs/status", "Job", True, GS)]},
    "certificates.k8s.io": {"v1": [
        _r("certificatesigningrequests", "CertificateSigningRequest", False, ("csr",)),
        _sub("certificatesigningrequests/approval", "CertificateSigningRequest", False, GS),
        _sub("certificatesigningrequests/status", "CertificateSigningRequest", False, GS)]},
    "networking.k8s.io": {"v1": [
        _r("ingressclasses", "IngressClass", False),
        _r("ingresses", "Ingress", True, ("ing",)), _sub("ingresses/status", "Ingress", True, GS),
        _r("networkpolicies", "NetworkPolicy", True, ("netpol",))]},
    "policy": {"v1": [_r("poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",)),
                      _sub("poddisruptionbudgets/status", "PodDisruptionBudget", True, GS)]},
    "rbac.authorization.k8s.io": {"v1": [
        _r("clusterrolebindings", "ClusterRoleBinding", False), _r("clusterroles", "ClusterRole", False),
        _r("rolebindings", "RoleBinding", True), _r("roles", "Role", True)]},
    "storage.k8s.io": {"v1": [
        _r("csidrivers", "CSIDriver", False), _r("csinodes", "CSINode", False),
        _r("csistoragecapacities", "CSIStorageCapacity", True), _r("storageclasses", "StorageClass", False, ("sc",)),
        _r("volumeattachments", "VolumeAttachment", False),
        _sub("volumeattachments/status", "VolumeAttachment", False, GS)]},
    "admissionregistration.k8s.io": {"v1": [
        _r("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False, (), ("api-extensions",)),
        _r("validatingadmissionpolicies", "ValidatingAdmissionPolicy", False, (), ("api-extensions",)),
        _sub("validatingadmissionpolicies/status", "ValidatingAdmissionPolicy", False, GS),
        _r("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", False, (), ("api-extensions",)),
        _r("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False, (), ("api-extensions",))]},
    "apiextensions.k8s.io": {"v1": [
        _r("customresourcedefinitions", "CustomResourceDefinition", False, ("crd", "crds"), ("api-extensions",)),
        _sub("customresourcedefinitions/status", "CustomResourceDefinition", False, GS)]},
    "scheduling.k8s.io": {"v1": [_r("priorityclasses", "PriorityClass", False, ("pc",))]},
    "coordination.k8s.io": {"v1": [_r("leases", "Lease", True)]},
    "node.k8s.io": {"v1": [_r("runtimeclasses", "RuntimeClass", False)]},
    "discovery.k8s.io": {"v1": [_r("endpointslices", "EndpointSlice", True)]},
    "flowcontrol.apiserver.k8s.io": {"v1": [
        _r("flowschemas", "FlowSchema", False), _sub("flowschemas/status", "FlowSchema", False, GS),
        _r("prioritylevelconfigurations", "PriorityLevelConfiguration", False),
        _sub("prioritylevelconfigurations/status", "PriorityLevelConfiguration", False, GS)]},
    "apiregistration.k8s.io": {"v1": [_r("apiservices", "APIService", False, (), ("api-extensions",)),
                                      _sub("apiservices/status", "APIService", False, GS)]},
}
# the order kube-apiserver lists its groups in /apis
GROUP_ORDER = ["apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
               "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io", "policy",
               "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io",
               "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io", "discovery.k8s.io",
               "flowcontrol.apiserver.k8s.io"]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PATH_SEGMENT_BAD = re.compile(r"[/%]|^\.\.?$")


# ----------------------------------------------------------------------------------------------
# helpers

def human_duration(sec):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration"""
    s = int(sec)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = s // 3600
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    if h < 24 * 8:
        return "%dd%dh" % (h // 24, h % 24) if h % 24 else "%dd" % (h // 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    if h < 24 * 365 * 8:
        dy = (h // 24) % 365
        return "%dy%dd" % (h // 24 // 365, dy) if dy else "%dy" % (h // 24 // 365)
    return "%dy" % (h // 24 // 365)


def parse_ts(s):
    try:
        return time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except (TypeError, ValueError):
        return time.time()


def age(obj):
    return human_duration(time.time() - parse_ts((obj.get("metadata") or {}).get("creationTimestamp")))


def status(code, reason, message, details=None):
    d = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
         "reason": reason, "code": code}
    if details:
        d["details"] = details
    return d


def qualified(group, plural):
    return plural + ("." + group if group else "")


def not_found(group, plural, name):
    return 404, status(404, "NotFound", '%s "%s" not found' % (qualified(group, plural), name),
                       {"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural})


def get_path(obj, dotted):
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def field_match(obj, selector):
    """fieldSelector: a=b, a==b, a!=b joined by commas. Unset string fields compare as ''."""
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", term)
        if not m:
            continue
        v = get_path(obj, m.group(1).strip())
        v = "" if v is None else (("true" if v else "false") if isinstance(v, bool) else str(v))
        if (v == m.group(3)) != (m.group(2) != "!="):
            return False
    return True


def label_match(labels, selector):
    """labelSelector: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b)."""
    if not selector:
        return True
    labels = labels or {}
    terms, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    for t in (x.strip() for x in terms):
        if not t:
            continue
        m = re.match(r"^(\S+)\s+(in|notin)\s+\((.*)\)$", t)
        if m:
            vals = {x.strip() for x in m.group(3).split(",")}
            has = m.group(1) in labels and labels[m.group(1)] in vals
            if (m.group(2) == "in") != has:
                return False
            continue
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", t)
        if m:
            k, op, v = m.group(1).strip(), m.group(2), m.group(3).strip()
            eq = labels.get(k) == v
            if (op == "!=" and eq) or (op != "!=" and not eq):
                return False
            continue
        if t.startswith("!"):
            if t[1:].strip() in labels:
                return False
        elif t not in labels:
            return False
    return True


# ---------------------------------------------------------------------------------------------- patches

def merge_patch(orig, patch):
    """RFC 7386"""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# patchMergeKey of the list fields in the built-in types (patchStrategy "merge"); other lists are replaced
MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
              "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name",
              "hostAliases": "ip", "conditions": "type", "ownerReferences": "uid",
              "topologySpreadConstraints": "topologyKey", "resourceClaims": "name", "addresses": "type"}
MERGE_PRIMITIVE = {"finalizers"}


def _merge_key(field, items):
    if field == "ports":
        if all(isinstance(i, dict) and "containerPort" in i for i in items):
            return "containerPort"
        if all(isinstance(i, dict) and "port" in i for i in items):
            return "port"
        return None
    return MERGE_KEYS.get(field)


def _strip_directives(v):
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v]
    return v


def strategic_merge(orig, patch):
    """A strategic merge patch (k8s.io/apimachinery/pkg/util/strategicpatch) for the built-in types' merge keys:
    $patch (replace/delete/merge), $retainKeys, $setElementOrder/F, $deleteFromPrimitiveList/F."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    if isinstance(patch.get("$retainKeys"), list):
        keep = set(patch["$retainKeys"])
        out = {k: v for k, v in out.items() if k in keep}
    orders = {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(out.get(f), list):
                out[f] = [x for x in out[f] if x not in (v or [])]
            continue
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            r = strategic_merge(out.get(k), v)
            if r is None:
                out.pop(k, None)
            else:
                out[k] = r
        elif isinstance(v, list):
            cur = out.get(k) if isinstance(out.get(k), list) else []
            mk = _merge_key(k, [x for x in v + cur if isinstance(x, dict) and x.get("$patch") != "replace"])
            if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in v):
                out[k] = [_strip_directives(x) for x in v if not (isinstance(x, dict) and "$patch" in x)]
            elif mk and all(isinstance(x, dict) for x in v + cur):
                res = copy.deepcopy(cur)
                for item in v:
                    key = item.get(mk)
                    idx = next((i for i, x in enumerate(res) if x.get(mk) == key), None)
                    if item.get("$patch") == "delete":
                        if idx is not None:
                            res.pop(idx)
                    elif idx is not None:
                        res[idx] = strategic_merge(res[idx], item)
                    else:
                        res.append(_strip_directives(item))
                out[k] = res
            elif k in MERGE_PRIMITIVE:
                out[k] = cur + [x for x in v if x not in cur]
            else:
                out[k] = _strip_directives(v)
        else:
            out[k] = v
    for f, order in orders.items():
        lst = out.get(f)
        if not isinstance(lst, list):
            continue
        mk = _merge_key(f, lst) if lst and isinstance(lst[0], dict) else None
        keyof = (lambda x: x.get(mk)) if mk else (lambda x: x)
        want = [(o.get(mk) if mk and isinstance(o, dict) else o) for o in order]
        pos = {w: i for i, w in enumerate(want)}
        out[f] = sorted(lst, key=lambda x: pos.get(keyof(x), len(pos)))
    return out


def _ptr(path):
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc, ops):
    """RFC 6902 (add, remove, replace, test, copy, move). Raises ValueError."""
    doc = copy.deepcopy(doc)

    def walk(parts):
        cur = doc
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur, parts[-1]

    for op in ops:
        o, parts = op.get("op"), _ptr(op.get("path", ""))
        try:
            if o == "test":
                cur, last = walk(parts)
                val = cur[int(last)] if isinstance(cur, list) else cur[last]
                if val != op.get("value"):
                    raise ValueError("testing value %s failed" % op.get("path"))
                continue
            if o in ("copy", "move"):
                src, slast = walk(_ptr(op["from"]))
                val = copy.deepcopy(src[int(slast)] if isinstance(src, list) else src[slast])
                if o == "move":
                    if isinstance(src, list):
                        src.pop(int(slast))
                    else:
                        del src[slast]
                o, op = "add", {"value": val}
            cur, last = walk(parts)
            if o == "add":
                if isinstance(cur, list):
                    cur.insert(len(cur) if last == "-" else int(last), op.get("value"))
                else:
                    cur[last] = op.get("value")
            elif o == "remove":
                if isinstance(cur, list):
                    cur.pop(int(last))
                else:
                    del cur[last]
            elif o == "replace":
                if isinstance(cur, list):
                    cur[int(last)] = op.get("value")
                else:
                    if last not in cur:
                        raise KeyError(last)
                    cur[last] = op.get("value")
            else:
                raise ValueError("Unexpected kind: %s" % o)
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError("doc is missing path: \"%s\": %s" % (op.get("path"), e))
    return doc


def apply_patch(current, body_raw, content_type):
    """-> patched object; raises ValueError (-> 422/400)."""
    ct = (content_type or "application/merge-patch+json").split(";")[0].strip()
    if ct == "application/apply-patch+yaml":
        import yaml
        patch = yaml.safe_load(body_raw.decode() or "{}") or {}
    else:
        try:
            patch = json.loads(body_raw.decode() or "{}")
        except ValueError as e:
            raise ValueError("couldn't get patch: %s" % e)
    if ct == "application/json-patch+json":
        if not isinstance(patch, list):
            raise ValueError("json patch must be a list of operations")
        return json_patch(current, patch)
    if not isinstance(patch, dict):
        raise ValueError("patch must be an object")
    if ct == "application/strategic-merge-patch+json":
        return strategic_merge(current, patch)
    return merge_patch(current, patch)


# ---------------------------------------------------------------------------------------------- tables

def _col(name, typ="string", fmt="", desc="", prio=0):
    return {"name": name, "type": typ, "format": fmt, "description": desc, "priority": prio}


def node_row(n):
    ready = [c for c in (n.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
    st = {"True": "Ready", "False": "NotReady"}.get(ready[0]["status"] if ready else "", "Unknown")
    if (n.get("spec") or {}).get("unschedulable"):
        st += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in (n["metadata"].get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1])
    info = (n.get("status") or {}).get("nodeInfo") or {}
    addrs = (n.get("status") or {}).get("addresses") or []
    ip = lambda t: next((a["address"] for a in addrs if a.get("type") == t and a.get("address")), "<none>")  # noqa
    return [n["metadata"]["name"], st, ",".join(roles) or "<none>", age(n), info.get("kubeletVersion", ""),
            ip("InternalIP"), ip("ExternalIP"), info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>"]


NODE_COLS = [_col("Name", fmt="name"), _col("Status"), _col("Roles"), _col("Age"), _col("Version"),
             _col("Internal-IP", prio=1), _col("External-IP", prio=1), _col("OS-Image", prio=1),
             _col("Kernel-Version", prio=1), _col("Container-Runtime", prio=1)]


def pod_row(p):
    cs = (p.get("status") or {}).get("containerStatuses") or []
    ready = sum(1 for c in cs if c.get("ready"))
    total = len((p.get("spec") or {}).get("containers") or [])
    st = (p.get("status") or {}).get("kslabStatus") or (p.get("status") or {}).get("phase") or "Unknown"
    if (p.get("metadata") or {}).get("deletionTimestamp"):
        st = "Terminating"
    restarts = sum(int(c.get("restartCount") or 0) for c in cs)
    return [p["metadata"]["name"], "%d/%d" % (ready, total), st, restarts, age(p),
            (p.get("status") or {}).get("podIP") or "<none>", (p.get("spec") or {}).get("nodeName") or "<none>",
            "<none>", "<none>"]


POD_COLS = [_col("Name", fmt="name"), _col("Ready"), _col("Status"), _col("Restarts", "string"), _col("Age"),
            _col("IP", prio=1), _col("Node", prio=1), _col("Nominated Node", prio=1),
            _col("Readiness Gates", prio=1)]


def _selector(sel):
    return ",".join("%s=%s" % kv for kv in sorted((sel or {}).items())) or "<none>"


def generic_table(kind, objs):
    if kind == "DaemonSet":
        cols = [_col("Name", fmt="name"), _col("Desired", "integer"), _col("Current", "integer"),
                _col("Ready", "integer"), _col("Up-to-date", "integer"), _col("Available", "integer"),
                _col("Node Selector"), _col("Age"), _col("Containers", prio=1), _col("Images", prio=1),
                _col("Selector", prio=1)]

        def row(o):
            s, sp = o.get("status") or {}, ((o.get("spec") or {}).get("template") or {}).get("spec") or {}
            cs = sp.get("containers") or []
            return [o["metadata"]["name"], s.get("desiredNumberScheduled", 0), s.get("currentNumberScheduled", 0),
                    s.get("numberReady", 0), s.get("updatedNumberScheduled", 0), s.get("numberAvailable", 0),
                    _selector(sp.get("nodeSelector")), age(o), ",".join(c.get("name", "") for c in cs),
                    ",".join(c.get("image", "") for c in cs),
                    _selector(((o.get("spec") or {}).get("selector") or {}).get("matchLabels"))]
    elif kind == "Deployment":
        cols = [_col("Name", fmt="name"), _col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"),
                _col("Age")]

        def row(o):
            s = o.get("status") or {}
            return [o["metadata"]["name"], "%d/%d" % (s.get("readyReplicas", 0), (o.get("spec") or {}).get(
                "replicas", 1)), s.get("updatedReplicas", 0), s.get("availableReplicas", 0), age(o)]
    elif kind == "ConfigMap":
        cols = [_col("Name", fmt="name"), _col("Data", "integer"), _col("Age")]

        def row(o):
            return [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}), age(o)]
    elif kind == "Secret":
        cols = [_col("Name", fmt="name"), _col("Type"), _col("Data", "integer"), _col("Age")]

        def row(o):
            return [o["metadata"]["name"], o.get("type", "Opaque"), len(o.get("data") or {}) + len(
                o.get("stringData") or {}), age(o)]
    elif kind == "Lease":
        cols = [_col("Name", fmt="name"), _col("Holder"), _col("Age")]

        def row(o):
            return [o["metadata"]["name"], (o.get("spec") or {}).get("holderIdentity", ""), age(o)]
    elif kind == "ClusterRole":
        cols = [_col("Name", fmt="name"), _col("Created At", fmt="date")]

        def row(o):
            return [o["metadata"]["name"], o["metadata"].get("creationTimestamp", "")]
    elif kind in ("ClusterRoleBinding", "RoleBinding"):
        cols = [_col("Name", fmt="name"), _col("Role"), _col("Age")]

        def row(o):
            ref = o.get("roleRef") or {}
            return [o["metadata"]["name"], "%s/%s" % (ref.get("kind", ""), ref.get("name", "")), age(o)]
    elif kind == "Namespace":
        cols = [_col("Name", fmt="name"), _col("Status"), _col("Age")]

        def row(o):
            return [o["metadata"]["name"], (o.get("status") or {}).get("phase", "Active"), age(o)]
    elif kind == "ServiceAccount":
        cols = [_col("Name", fmt="name"), _col("Secrets", "integer"), _col("Age")]

        def row(o):
            return [o["metadata"]["name"], len(o.get("secrets") or []), age(o)]
    elif kind == "Service":
        cols = [_col("Name", fmt="name"), _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"),
                _col("Age"), _col("Selector", prio=1)]

        def row(o):
            sp = o.get("spec") or {}
            ports = ",".join("%s/%s" % (p.get("port"), p.get("protocol", "TCP")) for p in sp.get("ports") or [])
            return [o["metadata"]["name"], sp.get("type", "ClusterIP"), sp.get("clusterIP", "<none>"), "<none>",
                    ports or "<none>", age(o), _selector(sp.get("selector"))]
    else:
        cols = [_col("Name", fmt="name"), _col("Age")]

        def row(o):
            return [o["metadata"]["name"], age(o)]
    return cols, [row(o) for o in objs]


def to_table(kind, objs, include="Metadata", rv="1"):
    if kind == "Node":
        cols, rows = NODE_COLS, [node_row(o) for o in objs]
    elif kind == "Pod":
        cols, rows = POD_COLS, [pod_row(o) for o in objs]
    else:
        cols, rows = generic_table(kind, objs)

    def rowobj(o):
        if include == "None":
            return None
        if include == "Object":
            return o
        return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata")}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": cols,
            "rows": [{"cells": r, "object": rowobj(o)} for r, o in zip(rows, objs)]}


def wants_table(accept):
    return "as=Table" in (accept or "")


# ---------------------------------------------------------------------------------------------- openapi

def openapi_v3_index(groups):
    paths = {}
    for g, vers in groups.items():
        for v in vers:
            gv = "api/v1" if g == "" else "apis/%s/%s" % (g, v)
            paths[gv] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (gv, "0" * 16 + gv.replace("/", "")[:8])}
    return {"paths": paths}


def openapi_v3_doc(group, version, resources):
    """Only what kubectl reads: each resource's PATCH operation, its GVK and the fieldValidation parameter
    (-> kubectl sends fieldValidation=Strict and skips client-side schema validation). No requestBody: kubectl
    then builds strategic merge patches from its compiled-in types."""
    paths = {}
    prefix = "/api/v1" if group == "" else "/apis/%s/%s" % (group, version)
    params = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
              {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
              {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}}]
    for r in resources:
        if "/" in r["name"] or "patch" not in r["verbs"]:
            continue
        p = prefix + ("/namespaces/{namespace}" if r["namespaced"] else "") + "/%s/{name}" % r["name"]
        gvk = {"group": group, "version": version, "kind": r["kind"]}
        paths[p] = {"patch": {"tags": [], "operationId": "patch" + r["kind"], "parameters": params,
                              "responses": {"200": {"description": "OK"}},
                              "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk},
                    "get": {"operationId": "read" + r["kind"], "responses": {"200": {"description": "OK"}},
                            "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.31.2"}, "paths": paths,
            "components": {"schemas": {}}}


# ---------------------------------------------------------------------------------------------- the API

class API:
    """hooks: node_object(st, rec), synth_pods(st), builtin_objects(st) -> {key: obj}, obj_key(o), decorate(st, o),
    evict(st, pod) and state st (.lock, .d, .save())."""

    def __init__(self, st, hooks, server_addr):
        self.st = st
        self.h = hooks
        self.server_addr = server_addr

    # resources ---------------------------------------------------------------------------------
    def groups(self):
        """group -> {version: [resources]} (built-in + served CRD versions), ordered."""
        out = {g: dict(vs) for g, vs in BUILTIN.items()}
        for o in self.st.d["objects"].values():
            if o.get("kind") != "CustomResourceDefinition":
                continue
            sp = o.get("spec") or {}
            names = sp.get("names") or {}
            g = sp.get("group")
            if not g or not names.get("plural") or not names.get("kind"):
                continue
            vers = [v.get("name") for v in (sp.get("versions") or []) if v.get("served", True) and v.get("name")]
            if not vers and sp.get("version"):
                vers = [sp["version"]]
            for v in vers:
                res = out.setdefault(g, {}).setdefault(v, [])
                if any(r["name"] == names["plural"] for r in res):
                    continue
                res.append(_r(names["plural"], names["kind"], sp.get("scope", "Namespaced") == "Namespaced",
                              names.get("shortNames") or (), names.get("categories") or (),
                              singular=names.get("singular") or names["kind"].lower()))
                sub = ((next((x for x in sp.get("versions") or [] if x.get("name") == v), {}) or {})
                       .get("subresources") or {})
                if "status" in sub:
                    res.append(_sub(names["plural"] + "/status", names["kind"], sp.get("scope") != "Cluster", GS))
        return out

    @staticmethod
    def versions_sorted(vs):
        def prio(v):  # k8s version priority: GA > beta > alpha, higher first
            m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
            if not m:
                return (3, 0, 0, v)
            return ({None: 0, "beta": 1, "alpha": 2}[m.group(2)], -int(m.group(1)), -int(m.group(3) or 0), v)
        return sorted(vs, key=prio)

    def ordered_groups(self):
        gs = self.groups()
        names = [g for g in GROUP_ORDER if g in gs] + sorted(g for g in gs if g not in GROUP_ORDER and g)
        return gs, names

    def resource(self, group, version, plural):
        gs = self.groups()
        for r in gs.get(group, {}).get(version, []):
            if r["name"] == plural:
                return r
        return None

    # discovery -------------------------------------------------------------------------------
    def discovery(self, path):
        gs, names = self.ordered_groups()
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_addr}]}
        if path == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self.group_doc(g, gs[g]) for g in names]}
        m = re.match(r"^/api/(v1)$", path) or re.match(r"^/apis/([^/]+)/([^/]+)$", path)
        if m:
            g, v = ("", "v1") if path.startswith("/api/") else (m.group(1), m.group(2))
            if v not in gs.get(g, {}):
                return 404, status(404, "NotFound", "the server could not find the requested resource")
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": (g + "/" + v) if g else v,
                         "resources": gs[g][v]}
        m = re.match(r"^/apis/([^/]+)$", path)
        if m and m.group(1) in gs and m.group(1):
            d = self.group_doc(m.group(1), gs[m.group(1)])
            d.update({"kind": "APIGroup", "apiVersion": "v1"})
            return 200, d
        return None

    def group_doc(self, g, vers):
        vs = self.versions_sorted(vers)
        return {"name": g, "versions": [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in vs],
                "preferredVersion": {"groupVersion": "%s/%s" % (g, vs[0]), "version": vs[0]}}

    def openapi(self, path):
        gs = self.groups()
        if path == "/openapi/v3":
            return 200, openapi_v3_index(gs)
        m = re.match(r"^/openapi/v3/api/v1$", path) or re.match(r"^/openapi/v3/apis/([^/]+)/([^/]+)$", path)
        if m:
            g, v = ("", "v1") if path == "/openapi/v3/api/v1" else (m.group(1), m.group(2))
            if v in gs.get(g, {}):
                return 200, openapi_v3_doc(g, v, gs[g][v])
        return None

    # path parsing ----------------------------------------------------------------------------
    def parse(self, path):
        """-> dict(group, version, res, ns, name, sub) or None"""
        m = re.match(r"^/api/v1/(.*)$", path)
        if m:
            g, v, rest = "", "v1", m.group(1)
        else:
            m = re.match(r"^/apis/([^/]+)/([^/]+)/(.*)$", path)
            if not m:
                return None
            g, v, rest = m.group(1), m.group(2), m.group(3)
        parts = [urllib.parse.unquote(p) for p in rest.split("/")]
        ns = None
        if parts[0] == "namespaces" and len(parts) >= 3 and not (g == "" and len(parts) == 3 and
                                                                   parts[2] in ("status", "finalize")):
            ns, parts = parts[1], parts[2:]
        if not parts or len(parts) > 3:
            return None
        return {"group": g, "version": v, "plural": parts[0], "name": parts[1] if len(parts) > 1 else None,
                "sub": parts[2] if len(parts) > 2 else None, "ns": ns}

    # objects ---------------------------------------------------------------------------------
    def all_of(self, group, kind, ns=None):
        """stored objects of a kind (+ the built-in ones a kubeadm cluster has), decorated."""
        objs = dict(self.h.builtin_objects(self.st))
        objs.update(self.st.d["objects"])
        out = []
        for key, o in objs.items():
            kg, kk, kns, kname = key.split("|", 3)
            if kg != group or kk != kind or (ns is not None and kns != ns):
                continue
            out.append(self.h.decorate(self.st, o))
        out.sort(key=lambda o: ((o["metadata"].get("namespace") or ""), o["metadata"].get("name") or ""))
        return out

    def find(self, group, kind, ns, name):
        key = "%s|%s|%s|%s" % (group, kind, ns or "", name)
        o = self.st.d["objects"].get(key)
        if o is None:
            o = self.h.builtin_objects(self.st).get(key)
        return key, o

    def namespace_exists(self, ns):
        return self.find("", "Namespace", None, ns)[1] is not None

    def next_rv(self):
        self.st.d["rv"] = int(self.st.d.get("rv", 1000)) + 1
        return str(self.st.d["rv"])

    def list_rv(self):
        return str(self.st.d.get("rv", 1000))

    def objects_for(self, ctx, r, q):
        """the (decorated) objects a list/watch request names."""
        g, kind = ctx["group"], r["kind"]
        if g == "" and kind == "Node":
            objs = [self.h.node_object(self.st, n) for _, n in sorted(self.st.d["nodes"].items())]
        elif g == "" and kind == "Pod":
            objs = sorted((p for p in self.h.synth_pods(self.st) if ctx["ns"] is None or
                           p["metadata"]["namespace"] == ctx["ns"]),
                          key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))  # etcd key order
        else:
            objs = self.all_of(g, kind, ctx["ns"] if r["namespaced"] else None)
        if ctx["name"]:
            objs = [o for o in objs if o["metadata"]["name"] == ctx["name"]]
        fs, ls = q.get("fieldSelector", ""), q.get("labelSelector", "")
        return [o for o in objs if field_match(o, fs) and label_match(o["metadata"].get("labels"), ls)]

    # entry -----------------------------------------------------------------------------------
    def handle(self, h, method, path, q):
        """-> True when answered. h: the request handler (send_json, body_raw, headers, wfile)."""
        if method == "GET" and (path in ("/api", "/apis") or path.startswith("/api/") or path.startswith("/apis/")):
            with self.st.lock:
                r = self.discovery(path)
            if r:
                h.send_json(*r)
                return True
        if path == "/openapi/v2" and method == "GET":
            # an empty openapi_v2.Document (protobuf, the only form client-go asks for): kubectl finds no
            # schema for any kind, so its client-side validation (used for kinds the server has no
            # fieldValidation for, e.g. a custom resource without its CRD) skips them, as for schemaless kinds,
            # and its patches use the compiled-in types
            h.send_response(200)
            h.send_header("Content-Type", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return True
        if path.startswith("/openapi/"):
            if method == "GET":
                with self.st.lock:
                    r = self.openapi(path)
                if r:
                    h.send_json(*r)
                    return True
            h.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            return True
        ctx = self.parse(path)
        if not ctx:
            return False
        with self.st.lock:
            r = self.resource(ctx["group"], ctx["version"], ctx["plural"])
        if not r:
            return False
        if ctx["sub"] and not any(x["name"] == "%s/%s" % (ctx["plural"], ctx["sub"])
                                  for x in self.groups()[ctx["group"]][ctx["version"]]):
            return False
        if not r["namespaced"] and ctx["ns"]:
            return False
        if method == "GET" and q.get("watch") in ("true", "1"):
            return self.watch(h, ctx, r, q)
        with self.st.lock:
            code, obj = self.dispatch(h, method, ctx, r, q)
            if code and obj is not None and code < 300 and method == "GET" and wants_table(h.headers.get("Accept")):
                items = obj.get("items") if obj.get("kind", "").endswith("List") else [obj]
                obj = to_table(r["kind"], items, q.get("includeObject", "Metadata"), self.list_rv())
        h.send_json(code, obj)
        return True

    def dispatch(self, h, method, ctx, r, q):
        g, kind, ns, name, sub = ctx["group"], r["kind"], ctx["ns"], ctx["name"], ctx["sub"]
        gv = (g + "/" + ctx["version"]) if g else "v1"
        if g == "" and kind == "Pod":
            return self.pods(h, method, ctx, r, q)
        if g == "" and kind == "Node":
            return self.nodes(h, method, ctx, r, q)
        if name is None:
            if method == "GET":
                items = self.objects_for(ctx, r, q)
                return 200, {"kind": kind + "List", "apiVersion": gv, "metadata": {"resourceVersion": self.list_rv()},
                             "items": items}
            if method == "POST":
                return self.create(h, ctx, r, gv, q)
            return 405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                       "resource")
        key, cur = self.find(g, kind, ns if r["namespaced"] else None, name)
        if method == "GET":
            if cur is None:
                return not_found(g, r["name"], name)
            return 200, self.h.decorate(self.st, cur)
        if method == "DELETE":
            if cur is None:
                return not_found(g, r["name"], name)
            if key not in self.st.d["objects"] and hasattr(self.h, "delete_builtin"):
                self.h.delete_builtin(self.st, key)
            self.st.d["objects"].pop(key, None)
            if kind == "Namespace":
                for k in [k for k in self.st.d["objects"] if k.split("|")[2] == name]:
                    del self.st.d["objects"][k]
            if kind == "CustomResourceDefinition":
                sp = cur.get("spec") or {}
                ck = (sp.get("names") or {}).get("kind")
                for k in [k for k in self.st.d["objects"] if k.split("|")[:2] == [sp.get("group"), ck]]:
                    del self.st.d["objects"][k]
            self.st.save()
            return 200, self.h.decorate(self.st, cur)
        if method in ("PUT", "PATCH"):
            raw = h.body_raw()
            if method == "PUT":
                try:
                    new = json.loads(raw.decode() or "{}")
                except ValueError as e:
                    return 400, status(400, "BadRequest", "the body of the request was in an unknown format: %s" % e)
                if cur is None:
                    return not_found(g, r["name"], name)
                want = (new.get("metadata") or {}).get("resourceVersion")
                if want and want != cur["metadata"].get("resourceVersion"):
                    return 409, status(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been '
                                       'modified; please apply your changes to the latest version and try again'
                                       % (qualified(g, r["name"]), name),
                                       {"name": name, "group": g, "kind": r["name"]})
            else:
                ct = h.headers.get("Content-Type", "")
                if cur is None and not ct.startswith("application/apply-patch"):
                    return not_found(g, r["name"], name)
                try:
                    new = apply_patch(cur or {"apiVersion": gv, "kind": kind, "metadata": {"name": name}}, raw, ct)
                except ValueError as e:
                    return 422, status(422, "Invalid", str(e))
            if sub == "status":  # only the status changes through /status
                base = copy.deepcopy(cur)
                base["status"] = new.get("status")
                new = base
            err = self.validate(g, r, new, ns, name)
            if err:
                return err
            return self.store(key, cur, new, r, ns)
        return 405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def validate(self, g, r, o, ns, name=None):
        md = o.get("metadata") or {}
        n = md.get("name")
        kind = r["kind"]
        if not n:
            return 422, status(422, "Invalid", "%s \"\" is invalid: metadata.name: Required value: name or "
                               "generateName is required" % kind,
                               {"kind": kind, "group": g, "causes": [{"reason": "FieldValueRequired",
                                                                      "message": "Required value: name or "
                                                                      "generateName is required",
                                                                      "field": "metadata.name"}]})
        if name is not None and n != name:
            return 400, status(400, "BadRequest", "the name of the object (%s) does not match the name on the URL "
                               "(%s)" % (n, name))
        if kind == "Namespace":
            bad = not DNS1123_LABEL.match(n) or len(n) > 63
            what = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
        elif g == "rbac.authorization.k8s.io":
            bad, what = bool(PATH_SEGMENT_BAD.search(n)), "may not contain '/' or '%'"
        else:
            bad = not DNS1123_SUB.match(n) or len(n) > 253
            what = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
        if bad:
            return 422, status(422, "Invalid", '%s "%s" is invalid: metadata.name: Invalid value: "%s": %s'
                               % (kind, n, n, what),
                               {"name": n, "group": g, "kind": kind, "causes": [
                                   {"reason": "FieldValueInvalid", "message": 'Invalid value: "%s": %s' % (n, what),
                                    "field": "metadata.name"}]})
        if r["namespaced"] and md.get("namespace") and ns and md["namespace"] != ns:
            return 400, status(400, "BadRequest", "the namespace of the provided object does not match the "
                               "namespace sent on the request")
        return None

    def create(self, h, ctx, r, gv, q):
        g, ns = ctx["group"], ctx["ns"]
        try:
            o = json.loads(h.body_raw().decode() or "{}")
        except ValueError as e:
            return 400, status(400, "BadRequest", "the body of the request was in an unknown format: %s" % e)
        if not isinstance(o, dict):
            return 400, status(400, "BadRequest", "the body of the request was in an unknown format")
        o.setdefault("apiVersion", gv)
        o.setdefault("kind", r["kind"])
        if o.get("kind") != r["kind"]:
            return 400, status(400, "BadRequest", "the API version in the data (%s) does not match the expected API "
                               "version (%s)" % (o.get("apiVersion"), gv))
        md = o.setdefault("metadata", {})
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "%05x" % (int(time.time() * 1000) % 0xfffff)
        err = self.validate(g, r, o, ns)
        if err:
            return err
        if r["namespaced"]:
            ns = ns or md.get("namespace") or "default"
            if not self.namespace_exists(ns):
                return 404, status(404, "NotFound", 'namespaces "%s" not found' % ns,
                                   {"name": ns, "kind": "namespaces"})
        key, cur = self.find(g, r["kind"], ns if r["namespaced"] else None, md["name"])
        if cur is not None:
            return 409, status(409, "AlreadyExists", '%s "%s" already exists' % (qualified(g, r["name"]), md["name"]),
                               {"name": md["name"], "group": g, "kind": r["name"]} if g else
                               {"name": md["name"], "kind": r["name"]})
        if q.get("dryRun"):
            return 201, o
        code, obj = self.store(key, None, o, r, ns)
        return 201 if code == 200 else code, obj

    def store(self, key, cur, new, r, ns):
        md = new.setdefault("metadata", {})
        if r["namespaced"]:
            md["namespace"] = ns or md.get("namespace") or "default"
        else:
            md.pop("namespace", None)
        old_md = (cur or {}).get("metadata") or {}
        md["uid"] = old_md.get("uid") or "%08x-%04x-4%03x-8%03x-%012x" % tuple(
            int.from_bytes(__import__("os").urandom(8), "big") % (16 ** n) for n in (8, 4, 3, 3, 12))
        md["creationTimestamp"] = old_md.get("creationTimestamp") or time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                   time.gmtime())
        gen = int(old_md.get("generation") or 0)
        if cur is None or json.dumps((cur or {}).get("spec"), sort_keys=True) != json.dumps(new.get("spec"),
                                                                                            sort_keys=True):
            gen += 1
        md["generation"] = gen or 1
        if cur is not None and _comparable(cur) == _comparable(new):
            return 200, self.h.decorate(self.st, cur)  # no-op: unchanged resourceVersion
        md["resourceVersion"] = self.next_rv()
        self.h.default(new)
        new.pop("kslab", None)
        self.st.d["objects"][key] = new
        self.st.save()
        return 200, self.h.decorate(self.st, new)

    # nodes and pods --------------------------------------------------------------------------
    def nodes(self, h, method, ctx, r, q):
        name, sub = ctx["name"], ctx["sub"]
        if name is None:
            if method == "GET":
                return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": self.list_rv()},
                             "items": self.objects_for(ctx, r, q)}
            return 405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                       "resource")
        rec = self.st.d["nodes"].get(name)
        if rec is None:
            return not_found("", "nodes", name)
        cur = self.h.node_object(self.st, rec)
        if method == "GET":
            return 200, cur
        if method == "DELETE":
            del self.st.d["nodes"][name]
            self.st.save()
            return 200, cur
        if method in ("PATCH", "PUT"):
            raw = h.body_raw()
            try:
                if method == "PUT":
                    new = json.loads(raw.decode() or "{}")
                else:
                    new = apply_patch(cur, raw, h.headers.get("Content-Type", ""))
            except ValueError as e:
                return 422, status(422, "Invalid", str(e))
            changed = self.h.node_update(self.st, rec, new, status_only=(sub == "status"))
            o = self.h.node_object(self.st, rec)
            o["kslabChanged"] = changed
            return 200, o
        return 405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def pods(self, h, method, ctx, r, q):
        ns, name, sub = ctx["ns"], ctx["name"], ctx["sub"]
        if name is None:
            if method == "GET":
                return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": self.list_rv()},
                             "items": self.objects_for(ctx, r, q)}
            if method == "POST":  # a pod made through the API (kept in the store, shown by synth_pods)
                return self.create(h, ctx, r, "v1", q)
            return 405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                       "resource")
        pod = next((p for p in self.h.synth_pods(self.st) if p["metadata"]["namespace"] == ns and
                    p["metadata"]["name"] == name), None)
        if pod is None:
            return not_found("", "pods", name)
        if sub == "eviction" and method == "POST":
            try:
                ev = json.loads(h.body_raw().decode() or "{}")
            except ValueError:
                ev = None
            if not isinstance(ev, dict) or ev.get("kind") not in (None, "Eviction"):
                return 400, status(400, "BadRequest", "the body of the request was in an unknown format")
            evn = (ev.get("metadata") or {}).get("name")
            if evn and evn != name:
                return 400, status(400, "BadRequest", "name in URL does not match name in Eviction object")
        if sub == "log" and method == "GET":
            return 200, None
        if (sub == "eviction" and method == "POST") or (sub is None and method == "DELETE"):
            h.body_raw()
            self.h.evict(self.st, pod)
            self.st.save()
            if sub == "eviction":
                return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
            return 200, pod
        if method == "GET" and sub in (None, "status"):
            return 200, pod
        return 405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # watch -----------------------------------------------------------------------------------
    def watch(self, h, ctx, r, q):
        try:
            timeout = float(q.get("timeoutSeconds") or 1800)
        except ValueError:
            timeout = 1800
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def emit(typ, obj):
            raw = (json.dumps({"type": typ, "object": obj}) + "\n").encode()
            h.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
            h.wfile.flush()

        def snapshot():
            with self.st.lock:
                return {(o["metadata"].get("namespace"), o["metadata"]["name"]): o
                        for o in self.objects_for(ctx, r, q)}
        end = time.time() + timeout
        initial = q.get("sendInitialEvents") == "true"
        rv = q.get("resourceVersion") or ""
        seen = {}
        try:
            cur = snapshot()
            for k, o in sorted(cur.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
                emit("ADDED" if (initial or rv in ("", "0")) else "MODIFIED", o)
                seen[k] = json.dumps(o, sort_keys=True)
            if initial:
                emit("BOOKMARK", {"kind": r["kind"], "apiVersion": (ctx["group"] + "/" + ctx["version"])
                                  if ctx["group"] else "v1",
                                  "metadata": {"resourceVersion": self.list_rv(),
                                               "annotations": {"k8s.io/initial-events-end": "true"}}})
            last = dict(cur)
            while time.time() < end:
                time.sleep(1.0)
                cur = snapshot()
                for k, o in sorted(cur.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
                    s = json.dumps(o, sort_keys=True)
                    if k not in seen:
                        emit("ADDED", o)
                    elif seen[k] != s:
                        emit("MODIFIED", o)
                    seen[k] = s
                for k in [k for k in seen if k not in cur]:
                    emit("DELETED", last[k])
                    del seen[k]
                last = dict(cur)
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (OSError, ValueError):
            pass
        h.close_connection = True
        return True


def _comparable(o):
    o = copy.deepcopy(o)
    md = o.get("metadata") or {}
    for k in ("resourceVersion", "generation", "uid", "creationTimestamp", "managedFields"):
        md.pop(k, None)
    o.pop("status", None)
    return json.dumps(o, sort_keys=True)
