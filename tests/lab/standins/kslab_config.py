"""kubeadm config decoding for the stand-ins: strict like `kubeadm config validate`.

Schemas are written from the upstream v1beta3/v1beta4 types (kubeadm.md §5).  Leaves are type codes:
  's' string, 'i' integer, 'b' bool, 'd' duration string, 'sl' []string, 'ss' map[string]string,
  'sb' map[string]bool, 'any' anything, 'args' extraArgs (v1beta4 list of {name,value}, v1beta3 map).
"""
import json
import re

import yaml

import kslab_common as C

ARG = {"name": "s", "value": "s"}
ENVVAR = {"name": "s", "value": "s", "valueFrom": "any"}
HOSTPATH = {"name": "s", "hostPath": "s", "mountPath": "s", "readOnly": "b", "pathType": "s"}
TAINT = {"key": "s", "value": "s", "effect": "s", "timeAdded": "any"}
BOOTSTRAP_TOKEN = {"token": "s", "description": "s", "ttl": "d", "expires": "s", "usages": "sl", "groups": "sl"}
APIENDPOINT = {"advertiseAddress": "s", "bindPort": "i"}
PATCHES = {"directory": "s"}
TIMEOUTS = {k: "d" for k in ("controlPlaneComponentHealthCheck", "kubeletHealthCheck", "kubernetesAPICall",
                             "etcdAPICall", "tlsBootstrap", "discovery", "upgradeManifests")}


def node_registration(v4):
    d = {"name": "s", "criSocket": "s", "taints": [TAINT], "kubeletExtraArgs": "args",
         "ignorePreflightErrors": "sl", "imagePullPolicy": "s"}
    if v4:
        d["imagePullSerial"] = "b"
    return d


def cp_component(v4):
    d = {"extraArgs": "args", "extraVolumes": [HOSTPATH]}
    if v4:
        d["extraEnvs"] = [ENVVAR]
    return d


def schemas(v4):
    nr = node_registration(v4)
    init = {"apiVersion": "s", "kind": "s", "bootstrapTokens": [BOOTSTRAP_TOKEN], "nodeRegistration": nr,
            "localAPIEndpoint": APIENDPOINT, "certificateKey": "s", "skipPhases": "sl", "patches": PATCHES}
    apiserver = dict(cp_component(v4), certSANs="sl")
    local_etcd = {"imageRepository": "s", "imageTag": "s", "dataDir": "s", "extraArgs": "args",
                  "serverCertSANs": "sl", "peerCertSANs": "sl"}
    dns = {"imageRepository": "s", "imageTag": "s"}
    cluster = {"apiVersion": "s", "kind": "s",
               "etcd": {"local": local_etcd,
                        "external": {"endpoints": "sl", "caFile": "s", "certFile": "s", "keyFile": "s"}},
               "networking": {"serviceSubnet": "s", "podSubnet": "s", "dnsDomain": "s"},
               "kubernetesVersion": "s", "controlPlaneEndpoint": "s", "apiServer": apiserver,
               "controllerManager": cp_component(v4), "scheduler": cp_component(v4), "dns": dns,
               "certificatesDir": "s", "imageRepository": "s", "featureGates": "sb", "clusterName": "s"}
    join = {"apiVersion": "s", "kind": "s", "nodeRegistration": nr, "caCertPath": "s",
            "discovery": {"bootstrapToken": {"token": "s", "apiServerEndpoint": "s", "caCertHashes": "sl",
                                             "unsafeSkipCAVerification": "b"},
                          "file": {"kubeConfigPath": "s"}, "tlsBootstrapToken": "s"},
            "controlPlane": {"localAPIEndpoint": APIENDPOINT, "certificateKey": "s"},
            "skipPhases": "sl", "patches": PATCHES}
    reset = None
    if v4:
        init.update(dryRun="b", timeouts=TIMEOUTS)
        local_etcd["extraEnvs"] = [ENVVAR]
        dns["disabled"] = "b"
        cluster.update(proxy={"disabled": "b"}, encryptionAlgorithm="s", certificateValidityPeriod="d",
                       caCertificateValidityPeriod="d")
        join.update(dryRun="b", timeouts=TIMEOUTS)
        reset = {"apiVersion": "s", "kind": "s", "cleanupTmpDir": "b", "certificatesDir": "s", "criSocket": "s",
                 "dryRun": "b", "force": "b", "ignorePreflightErrors": "sl", "skipPhases": "sl",
                 "unmountFlags": "sl", "timeouts": TIMEOUTS}
    else:
        apiserver["timeoutForControlPlane"] = "d"
        join["discovery"]["timeout"] = "d"
    out = {"InitConfiguration": init, "ClusterConfiguration": cluster, "JoinConfiguration": join}
    if reset:
        out["ResetConfiguration"] = reset
        out["UpgradeConfiguration"] = "any"
    return out


KUBELET_FIELDS = set("""apiVersion kind enableServer staticPodPath podLogsDir syncFrequency fileCheckFrequency
httpCheckFrequency staticPodURL staticPodURLHeader address port readOnlyPort tlsCertFile tlsPrivateKeyFile
tlsCipherSuites tlsMinVersion rotateCertificates serverTLSBootstrap authentication authorization registryPullQPS
registryBurst imagePullCredentialsVerificationPolicy preloadedImagesVerificationAllowlist eventRecordQPS eventBurst
enableDebuggingHandlers enableContentionProfiling healthzPort healthzBindAddress oomScoreAdj clusterDomain clusterDNS
streamingConnectionIdleTimeout nodeStatusUpdateFrequency nodeStatusReportFrequency nodeLeaseDurationSeconds
imageMinimumGCAge imageMaximumGCAge imageGCHighThresholdPercent imageGCLowThresholdPercent volumeStatsAggPeriod
kubeletCgroups systemCgroups cgroupRoot cgroupsPerQOS cgroupDriver cpuManagerPolicy singleProcessOOMKill
cpuManagerPolicyOptions cpuManagerReconcilePeriod memoryManagerPolicy topologyManagerPolicy topologyManagerScope
topologyManagerPolicyOptions qosReserved runtimeRequestTimeout hairpinMode maxPods podCIDR podPidsLimit resolvConf
runOnce cpuCFSQuota cpuCFSQuotaPeriod nodeStatusMaxImages maxOpenFiles contentType kubeAPIQPS kubeAPIBurst
serializeImagePulls maxParallelImagePulls evictionHard evictionSoft evictionSoftGracePeriod
evictionPressureTransitionPeriod evictionMaxPodGracePeriod evictionMinimumReclaim mergeDefaultEvictionSettings
podsPerCore enableControllerAttachDetach protectKernelDefaults makeIPTablesUtilChains iptablesMasqueradeBit
iptablesDropBit featureGates failSwapOn memorySwap containerLogMaxSize containerLogMaxFiles containerLogMaxWorkers
containerLogMonitorInterval configMapAndSecretChangeDetectionStrategy systemReserved kubeReserved reservedSystemCPUs
showHiddenMetricsForVersion systemReservedCgroup kubeReservedCgroup enforceNodeAllocatable allowedUnsafeSysctls
volumePluginDir providerID kernelMemcgNotification logging enableSystemLogHandler enableSystemLogQuery
shutdownGracePeriod shutdownGracePeriodCriticalPods shutdownGracePeriodByPodPriority crashLoopBackOff reservedMemory
enableProfilingHandler enableDebugFlagsHandler seccompDefault memoryThrottlingFactor registerWithTaints registerNode
tracing localStorageCapacityIsolation containerRuntimeEndpoint imageServiceEndpoint failCgroupV1 userNamespaces
tlsCurvePreferences memoryReservationPolicy""".split())

KUBEPROXY_FIELDS = set("""apiVersion kind featureGates clientConnection hostnameOverride bindAddress
healthzBindAddress metricsBindAddress bindAddressHardFail enableProfiling showHiddenMetricsForVersion mode iptables
ipvs nftables winkernel detectLocalMode detectLocal clusterCIDR nodePortAddresses oomScoreAdj conntrack
configSyncPeriod portRange logging windowsRunAsService""".split())

GO_TYPES = {"s": "string", "i": "int32", "b": "bool", "d": "v1.Duration", "sl": "[]string",
            "ss": "map[string]string", "sb": "map[string]bool"}


class ConfigError(Exception):
    pass


def _jtype(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


class Decoder:
    def __init__(self, kind, v4, struct_names):
        self.kind = kind
        self.v4 = v4
        self.unknown = []
        self.type_errors = []
        self.struct_names = struct_names

    def err(self, path, value, gotype):
        self.type_errors.append("json: cannot unmarshal %s into Go struct field %s.%s of type %s" % (
            _jtype(value), self.kind, path, gotype))

    def walk(self, schema, value, path):
        if value is None:
            return
        if schema == "any":
            return
        if isinstance(schema, dict):
            if not isinstance(value, dict):
                self.err(path, value, "struct")
                return
            for k, v in value.items():
                sub = path + "." + str(k) if path else str(k)
                if k not in schema:
                    self.unknown.append(sub)
                    continue
                self.walk(schema[k], v, sub)
            return
        if isinstance(schema, list):
            if not isinstance(value, list):
                self.err(path, value, "[]struct")
                return
            for i, v in enumerate(value):
                self.walk(schema[0], v, "%s[%d]" % (path, i))
            return
        if schema == "args":
            if self.v4:
                if not isinstance(value, list):
                    self.err(path, value, "[]v1beta4.Arg")
                    return
                for i, v in enumerate(value):
                    self.walk(ARG, v, "%s[%d]" % (path, i))
            else:
                if not isinstance(value, dict):
                    self.err(path, value, "map[string]string")
                    return
                for k, v in value.items():
                    if not isinstance(v, str):
                        self.err(path, v, "string")
            return
        if schema == "s" or schema == "d":
            if not isinstance(value, str):
                self.err(path, value, GO_TYPES[schema])
            elif schema == "d":
                try:
                    C.parse_duration(value)
                except ValueError as e:
                    self.type_errors.append(str(e))
            return
        if schema == "i":
            if isinstance(value, bool) or not isinstance(value, int):
                self.err(path, value, "int32")
            return
        if schema == "b":
            if not isinstance(value, bool):
                self.err(path, value, "bool")
            return
        if schema == "sl":
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                self.err(path, value, "[]string")
            return
        if schema in ("ss", "sb"):
            if not isinstance(value, dict):
                self.err(path, value, GO_TYPES[schema])
                return
            want = str if schema == "ss" else bool
            for v in value.values():
                if not isinstance(v, want):
                    self.err(path, v, GO_TYPES[schema])
            return


SCHEME = 'k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31'
OLD_APIS = {"kubeadm.k8s.io/v1alpha2": "v1.11", "kubeadm.k8s.io/v1alpha3": "v1.14",
            "kubeadm.k8s.io/v1beta1": "v1.15", "kubeadm.k8s.io/v1beta2": "v1.22"}


def args_to_dict(v):
    """extraArgs in either form -> ordered list of (name, value)."""
    if v is None:
        return []
    if isinstance(v, dict):
        return [(str(k), str(x)) for k, x in v.items()]
    return [(str(a.get("name")), str(a.get("value", ""))) for a in v if isinstance(a, dict)]


def split_documents(text):
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise ConfigError("error converting YAML to JSON: yaml: %s" % str(e).replace("\n", " "))
    return [d for d in docs if d is not None]


def load(path, kubeadm_version, allowed_kinds):
    """Decode a kubeadm --config file.  Returns dict kind -> (apiVersion, doc).  Raises ConfigError."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError("unable to read config from %s : open %s: no such file or directory" % (
            json.dumps(path), path) if not C.os.path.exists(path) else "unable to read config from %s : %s" % (
            json.dumps(path), e))
    docs = split_documents(text)
    kver = C.parse_version(kubeadm_version)
    out = {}
    warnings = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise ConfigError("error unmarshaling JSON: while decoding JSON: json: cannot unmarshal %s into Go "
                              "value of type map[string]interface {}" % _jtype(doc))
        api = doc.get("apiVersion")
        kind = doc.get("kind")
        if not kind:
            raise ConfigError("Object 'Kind' is missing in '%s'" % json.dumps(doc, separators=(",", ":")))
        if not api:
            raise ConfigError("Object 'apiVersion' is missing in '%s'" % json.dumps(doc, separators=(",", ":")))
        gvk = 'schema.GroupVersionKind{Group:"%s", Version:"%s", Kind:"%s"}' % (
            api.split("/")[0] if "/" in api else "", api.split("/")[-1], kind)
        if api.startswith("kubeadm.k8s.io/"):
            if api in OLD_APIS:
                raise ConfigError("your configuration file uses an old API spec: %s (kind: %s). Please use kubeadm "
                                  "%s instead and run 'kubeadm config migrate --old-config old.yaml --new-config "
                                  "new.yaml', which will write the new, similar spec using a newer API version."
                                  % (json.dumps(api), json.dumps(kind), OLD_APIS[api]))
            if api == "kubeadm.k8s.io/v1beta3":
                if kver and kver >= (1, 37, 0):
                    raise ConfigError("your configuration file uses an old API spec: %s (kind: %s). Please use "
                                      "kubeadm v1.36 instead and run 'kubeadm config migrate --old-config old.yaml "
                                      "--new-config new.yaml', which will write the new, similar spec using a newer "
                                      "API version." % (json.dumps(api), json.dumps(kind)))
                if kver and kver >= (1, 31, 0):
                    warnings.append("your configuration file uses a deprecated API spec: %s (kind: %s). Please use "
                                    "'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will "
                                    "write the new, similar spec using a newer API version." % (
                                        json.dumps(api), json.dumps(kind)))
                v4 = False
            elif api == "kubeadm.k8s.io/v1beta4":
                if kver and kver < (1, 31, 0):
                    raise ConfigError('no kind "%s" is registered for version "%s" in scheme "%s"' % (kind, api, SCHEME))
                v4 = True
            else:
                raise ConfigError('no kind "%s" is registered for version "%s" in scheme "%s"' % (kind, api, SCHEME))
            sch = schemas(v4)
            if kind not in sch:
                raise ConfigError('no kind "%s" is registered for version "%s" in scheme "%s"' % (kind, api, SCHEME))
            schema = sch[kind]
        elif api == "kubelet.config.k8s.io/v1beta1" and kind == "KubeletConfiguration":
            schema = {k: "any" for k in KUBELET_FIELDS}
            schema.update(failSwapOn="b", cgroupDriver="s", clusterDNS="sl", clusterDomain="s")
            v4 = True
        elif api == "kubeproxy.config.k8s.io/v1alpha1" and kind == "KubeProxyConfiguration":
            schema = {k: "any" for k in KUBEPROXY_FIELDS}
            v4 = True
        else:
            raise ConfigError('no kind "%s" is registered for version "%s" in scheme "%s"' % (
                kind, api, "k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs/scheme.go:28"))
        if kind not in allowed_kinds:
            # kubeadm ignores documents of other kubeadm kinds for this command (e.g. JoinConfiguration in init)
            warnings.append("[config] WARNING: Ignored configuration document with GroupVersionKind %s" % gvk)
            continue
        if kind in out:
            raise ConfigError("duplicate %s" % kind)
        dec = Decoder(kind, v4, None)
        if schema != "any":
            dec.walk(schema, doc, "")
        if dec.type_errors:
            raise ConfigError("error unmarshaling JSON: while decoding JSON: " + dec.type_errors[0])
        if dec.unknown:
            raise ConfigError("error unmarshaling configuration %s: strict decoding error: %s" % (
                gvk, ", ".join('unknown field "%s"' % u for u in dec.unknown)))
        out[kind] = (api, doc)
    return out, warnings


def dig(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return default
        d = d[k]
    return d


IMAGE_REPO = "registry.k8s.io"


def image_list(k8s_version, repo=None, dns_disabled=False, proxy_disabled=False, external_etcd=False,
               etcd_repo=None, etcd_tag=None, dns_repo=None, dns_tag=None):
    repo = repo or IMAGE_REPO
    tag = k8s_version.replace("+", "_")
    comp = C.components(k8s_version)
    out = ["%s/kube-apiserver:%s" % (repo, tag), "%s/kube-controller-manager:%s" % (repo, tag),
           "%s/kube-scheduler:%s" % (repo, tag)]
    if not proxy_disabled:
        out.append("%s/kube-proxy:%s" % (repo, tag))
    if not dns_disabled:
        drepo = dns_repo or repo
        dname = "coredns/coredns" if drepo == IMAGE_REPO else "coredns"
        out.append("%s/%s:%s" % (drepo, dname, dns_tag or comp["coredns"]))
    out.append("%s/pause:%s" % (repo, comp["pause"]))
    if not external_etcd:
        out.append("%s/etcd:%s" % (etcd_repo or repo, etcd_tag or comp["etcd"]))
    return out


def normalize_k8s_version(v):
    if v is None:
        return None
    v = str(v).strip()
    if re.match(r"^\d+\.\d+\.\d+", v):
        v = "v" + v
    return v


DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def dns1123_subdomain_errors(name):
    errs = []
    if len(name) > 253:
        errs.append("must be no more than 253 characters")
    if not DNS1123_SUB.match(name):
        errs.append("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    return errs


def qualified_name_errors(name):
    errs = []
    if len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if not QUALIFIED.match(name):
        errs.append("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return errs
