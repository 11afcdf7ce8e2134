"""Shared code for the kubestrap lab stand-ins (kubeadm, kubelet, kubectl, crictl,
systemctl, hostnamectl, ctr, docker, cri-dockerd).

Written independently of kubestrap.  Installed as /usr/share/kubestrap-lab/kslab_common.py.

Environment overrides (for local testing only; never set on lab hosts):
  KSLAB_ROOT      prefix for every absolute path the stand-ins touch (state, /etc, /var/lib ...)
  KSLAB_BIND      address the daemons bind to / preflight port checks bind to (default: all)
  KSLAB_HOSTNAME  pretend hostname (default: the real UTS hostname)
  KSLAB_NODE_IP   pretend default-route address
  KSLAB_TIER      namespaced|vm (default: vm if /run/systemd/system exists, else namespaced)
  KSLAB_MAX_WAIT  cap (seconds) for every wait kubeadm does (same as knob file max-wait-seconds)
"""
import importlib
import os
import re
import sys
import time


class _Lazy:
    """A module imported on first use. Every stand-in run is a new Python process and most runs (a
    `systemctl show`, a `crictl images`) need few of these modules: importing them all up front
    doubled the start-up time (~20 ms of ~35 ms), which 50 lab hosts sharing two cores pay for on
    every call. Real systemctl, crictl and kubectl are compiled programs that start in a few ms."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        mod = importlib.import_module(self._name)
        globals()[self._name] = mod  # later lookups in this module get the module itself
        return getattr(mod, attr)


(base64, datetime, hashlib, hmac, json, secrets, shlex, shutil, signal, socket, subprocess,
 tempfile) = map(_Lazy, ("base64", "datetime", "hashlib", "hmac", "json", "secrets", "shlex", "shutil",
                         "signal", "socket", "subprocess", "tempfile"))

ROOT = os.environ.get("KSLAB_ROOT", "").rstrip("/")
SHARE = "/usr/share/kubestrap-lab"


def P(path):
    """Map an absolute host path into the (optional) test root."""
    return ROOT + path if ROOT else path


def proc_path(path):
    """/proc and /sys files: use a fake under KSLAB_ROOT when one exists."""
    if ROOT and os.path.exists(ROOT + path):
        return ROOT + path
    return path


STATE = P("/var/lib/kubestrap-lab")
FAULTS = P("/etc/kubestrap-lab/faults")
CALLS_LOG = P("/var/log/kubestrap-lab/calls.log")
PIDDIR = STATE + "/pids"

DEFAULTS = {
    "kubeadm": "v1.31.2",
    "kubelet": "v1.31.2",
    "kubectl": "v1.31.2",
    "cri-tools": "v1.31.1",
}

# component versions per minor (CONTRACT.md)
COMPONENTS = {
    "1.31": {"coredns": "v1.11.3", "pause": "3.10", "etcd": "3.5.15-0"},
    "1.32": {"coredns": "v1.11.3", "pause": "3.10", "etcd": "3.5.16-0"},
    "1.30": {"coredns": "v1.11.3", "pause": "3.9", "etcd": "3.5.15-0"},
    "1.33": {"coredns": "v1.12.0", "pause": "3.10", "etcd": "3.5.21-0"},
}

KUSTOMIZE = {"1.30": "v5.0.4", "1.31": "v5.4.2", "1.32": "v5.5.0", "1.33": "v5.6.0"}
GO_VERSION = {"1.30": "go1.22.8", "1.31": "go1.22.8", "1.32": "go1.23.3", "1.33": "go1.24.0"}


# ----------------------------------------------------------------------------------------------
# invocation bookkeeping


def mkdirp(path, mode=0o755):
    os.makedirs(path, mode=mode, exist_ok=True)


def log_call(argv):
    if os.environ.pop("KSLAB_CALL_LOGGED", None) == os.path.basename(argv[0]):
        return  # a wrapper (the kubectl package's /usr/bin/kubectl) logged this call already
    try:
        mkdirp(os.path.dirname(CALLS_LOG))
        line = shlex.join([os.path.basename(argv[0])] + list(argv[1:]))
        fd = os.open(CALLS_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, (line.replace("\n", "\\n") + "\n").encode())
            if os.fstat(fd).st_uid == os.geteuid():
                os.fchmod(fd, 0o666)  # non-root invocations append too
        finally:
            os.close(fd)
    except OSError:
        pass


def knob(name):
    return os.path.exists(os.path.join(FAULTS, name))


def lab_setting(name, default=None):
    """Lab settings live next to the faults: /etc/kubestrap-lab/<name> (one line)."""
    p = P("/etc/kubestrap-lab/" + name)
    try:
        with open(p) as f:
            return f.read().strip()
    except OSError:
        return default


def start(cmd, argv=None):
    """Common prologue for every stand-in: log argv, honour hang knobs."""
    argv = list(sys.argv if argv is None else argv)
    log_call(argv)
    if knob("hang-" + cmd) or knob("hang:" + cmd):
        while True:
            time.sleep(3600)
    return argv[1:]


def read_version(pkg):
    for path in (P(SHARE + "/%s.version" % pkg), SHARE + "/%s.version" % pkg):
        try:
            with open(path) as f:
                v = f.read().strip()
                if v:
                    return v if v.startswith("v") else "v" + v
        except OSError:
            pass
    return os.environ.get("KSLAB_VERSION_" + pkg.upper().replace("-", "_"), DEFAULTS[pkg])


def parse_version(v):
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$", str(v).strip())
    if not m:
        return None
    return tuple(int(x) for x in m.groups())


def minor_key(v):
    t = parse_version(v)
    return "%d.%d" % (t[0], t[1]) if t else None


def components(k8s_version):
    mk = minor_key(k8s_version)
    return COMPONENTS.get(mk, COMPONENTS["1.31"])


def die(msg, code=1):
    sys.stderr.write(msg if msg.endswith("\n") else msg + "\n")
    sys.exit(code)


def klog_prefix(level="W", src="checks.go:1080"):
    now = datetime.datetime.now()
    return "%s%s %s %7d %s]" % (level, now.strftime("%m%d"), now.strftime("%H:%M:%S.%f"), os.getpid(), src)


def klog(level, src, msg):
    sys.stderr.write("%s %s\n" % (klog_prefix(level, src), msg))


def max_wait(default):
    """Seconds to wait for something kubeadm waits for; capped by the lab's max-wait knob."""
    cap = os.environ.get("KSLAB_MAX_WAIT") or lab_setting("max-wait-seconds")
    try:
        if cap is not None:
            return min(default, float(cap))
    except ValueError:
        pass
    return default


def atomic_write(path, data, mode=0o644):
    mkdirp(os.path.dirname(path) or ".")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    try:
        if isinstance(data, str):
            data = data.encode()
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def save_json(path, obj):
    atomic_write(path, json.dumps(obj, indent=1, sort_keys=True))


def now_rfc3339(ts=None):
    return datetime.datetime.fromtimestamp(ts if ts is not None else time.time(), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s):
    try:
        return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def parse_duration(s):
    """Go time.ParseDuration subset: 24h0m0s, 1h30m, 90s, 0."""
    if s is None:
        return None
    s = str(s).strip()
    if s in ("0", "0s"):
        return 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    total = 0.0
    pos = 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", s):
        if m.start() != pos:
            raise ValueError("time: invalid duration %s" % json.dumps(s))
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError("time: invalid duration %s" % json.dumps(s))
    return total


def format_duration(sec):
    """Go Duration.String() for whole seconds (24h0m0s, 4m0s, 30s)."""
    sec = int(round(sec))
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    if h:
        return "%dh%dm%ds" % (h, m, s)
    if m:
        return "%dm%ds" % (m, s)
    return "%ds" % s


# ----------------------------------------------------------------------------------------------
# host facts


def tier():
    t = os.environ.get("KSLAB_TIER") or lab_setting("tier")
    if t in ("namespaced", "vm"):
        return t
    if ROOT:
        return "namespaced"
    return "vm" if os.path.isdir("/run/systemd/system") else "namespaced"


def hostname():
    h = os.environ.get("KSLAB_HOSTNAME")
    if h:
        return h
    if ROOT:
        try:
            with open(STATE + "/uts-hostname") as f:
                h = f.read().strip()
                if h:
                    return h
        except OSError:
            pass
    return socket.gethostname()


def bind_addr():
    return os.environ.get("KSLAB_BIND", "")


def default_route_ip():
    ip = os.environ.get("KSLAB_NODE_IP")
    if ip:
        return ip
    iface = None
    try:
        with open("/proc/net/route") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if len(parts) > 2 and parts[1] == "00000000":
                    iface = parts[0]
                    break
    except OSError:
        pass
    if iface:
        try:
            out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", iface], capture_output=True,
                                 text=True, timeout=5).stdout
            m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
            if m:
                return m.group(1)
        except (OSError, subprocess.SubprocessError):
            pass
    return None


def lookup_host(name):
    """net.LookupHost without ever asking a DNS server: /etc/hosts, own hostname (nss-myhostname)."""
    if re.match(r"^\d+\.\d+\.\d+\.\d+$", name):
        return [name]
    addrs = []
    try:
        with open(P("/etc/hosts")) as f:
            for line in f:
                line = line.split("#", 1)[0].split()
                if len(line) >= 2 and name.lower() in [x.lower() for x in line[1:]]:
                    addrs.append(line[0])
    except OSError:
        pass
    if not addrs and name.lower() in (hostname().lower(), "localhost"):
        addrs = ["127.0.0.1"] if name.lower() == "localhost" else [default_route_ip() or "127.0.1.1"]
    return addrs


def resolver_addr():
    try:
        with open(P("/etc/resolv.conf")) as f:
            for line in f:
                p = line.split()
                if len(p) >= 2 and p[0] == "nameserver":
                    return p[1] + ":53" if ":" not in p[1] else "[%s]:53" % p[1]
    except OSError:
        pass
    return "[::1]:53"


# ----------------------------------------------------------------------------------------------
# tokens


TOKEN_RE = re.compile(r"\A([a-z0-9]{6})\.([a-z0-9]{16})\Z")
TOKEN_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"


def gen_token():
    r = lambda n: "".join(secrets.choice(TOKEN_CHARS) for _ in range(n))
    return "%s.%s" % (r(6), r(16))


def check_token(tok):
    if not TOKEN_RE.match(tok or ""):
        return "the bootstrap token %s was not of the form %s" % (
            json.dumps(tok), json.dumps(r"\A([a-z0-9]{6})\.([a-z0-9]{16})\z"))
    return None


def jws_detached(content, token_id, token_secret):
    """Detached JWS (HS256) as the bootstrap signer puts into cluster-info."""
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = b64(content.encode())
    sig = hmac.new(token_secret.encode(), (header + "." + payload).encode(), hashlib.sha256).digest()
    return header + ".." + b64(sig)


def jws_valid(detached, content, token_id, token_secret):
    return hmac.compare_digest(detached, jws_detached(content, token_id, token_secret))


# ----------------------------------------------------------------------------------------------
# DER / x509 helpers (no python3-cryptography on the hosts)


def _der_read(buf, pos):
    tag = buf[pos]
    ln = buf[pos + 1]
    pos += 2
    if ln & 0x80:
        n = ln & 0x7F
        ln = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
    return tag, pos, pos + ln  # tag, content start, content end


def pem_blocks(text, label="CERTIFICATE"):
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    out = []
    for m in re.finditer(r"-----BEGIN %s-----(.*?)-----END %s-----" % (label, label), text, re.S):
        out.append(base64.b64decode("".join(m.group(1).split())))
    return out


def cert_spki_der(der):
    """Raw SubjectPublicKeyInfo bytes from a DER certificate."""
    _, s, _ = _der_read(der, 0)  # Certificate SEQUENCE
    _, ts, te = _der_read(der, s)  # tbsCertificate
    pos = ts
    fields = []
    while pos < te:
        tag, cs, ce = _der_read(der, pos)
        fields.append((tag, pos, ce))
        pos = ce
    if fields and fields[0][0] == 0xA0:  # explicit version
        fields = fields[1:]
    # serial, signature, issuer, validity, subject, spki
    tag, start, end = fields[5]
    return der[start:end]


def pin_of_der(der):
    return "sha256:" + hashlib.sha256(cert_spki_der(der)).hexdigest()


def pin_of_pem(pem):
    return [pin_of_der(d) for d in pem_blocks(pem)]


def openssl(*args, input=None):
    r = subprocess.run(["openssl"] + list(args), input=input, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r.stdout


def make_key(path):
    mkdirp(os.path.dirname(path))
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    os.chmod(path, 0o600)


def make_ca(crt, key, cn="kubernetes", days=3650):
    make_key(key)
    openssl("req", "-x509", "-new", "-key", key, "-out", crt, "-days", str(days), "-subj", "/CN=" + cn,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
            "-addext", "subjectKeyIdentifier=hash")
    os.chmod(crt, 0o644)


def sign_csr(csr_pem, ca_crt, ca_key, client=True, server=False, dns=(), ips=(), days=365):
    """Sign a CSR (PEM bytes) with the CA, return PEM bytes."""
    with tempfile.TemporaryDirectory(prefix="kslab-") as d:
        csr = os.path.join(d, "req.csr")
        ext = os.path.join(d, "ext.cnf")
        with open(csr, "wb") as f:
            f.write(csr_pem)
        eku = []
        if server:
            eku.append("serverAuth")
        if client:
            eku.append("clientAuth")
        lines = ["basicConstraints=critical,CA:FALSE",
                 "keyUsage=critical,digitalSignature,keyEncipherment",
                 "extendedKeyUsage=" + ",".join(eku),
                 "authorityKeyIdentifier=keyid"]
        sans = ["DNS:" + x for x in dns] + ["IP:" + x for x in ips]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        serial = str(int.from_bytes(secrets.token_bytes(8), "big"))
        return openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-set_serial", serial,
                       "-days", str(days), "-sha256", "-extfile", ext)


def make_csr(key, subj):
    return openssl("req", "-new", "-key", key, "-subj", subj)


def make_cert(crt, key, ca_crt, ca_key, subj, client=True, server=False, dns=(), ips=()):
    make_key(key)
    pem = sign_csr(make_csr(key, subj), ca_crt, ca_key, client=client, server=server, dns=dns, ips=ips)
    atomic_write(crt, pem, 0o644)


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


# ----------------------------------------------------------------------------------------------
# kubeconfig


def kubeconfig_yaml(server, ca_pem, user, cluster="kubernetes", cert_pem=None, key_pem=None,
                    cert_file=None, key_file=None):
    import yaml
    u = {}
    if cert_file:
        u["client-certificate"] = cert_file
        u["client-key"] = key_file
    else:
        u["client-certificate-data"] = b64(cert_pem)
        u["client-key-data"] = b64(key_pem)
    ctx = "%s@%s" % (user, cluster)
    doc = {
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": b64(ca_pem), "server": server}, "name": cluster}],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": ctx}],
        "current-context": ctx,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": u}],
    }
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)


def cluster_info_kubeconfig(server, ca_pem):
    # same shape as the real cluster-info ConfigMap's kubeconfig
    return ("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: %s\n    server: %s\n"
            "  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {}\nusers: null\n"
            % (b64(ca_pem), server))


def load_kubeconfig(path):
    """Return dict(server, ca_pem, cert_pem, key_pem, token) for the current context."""
    import yaml
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    cur = doc.get("current-context")
    ctx = None
    for c in doc.get("contexts") or []:
        if c.get("name") == cur:
            ctx = c.get("context") or {}
    if ctx is None and doc.get("contexts"):
        ctx = doc["contexts"][0].get("context") or {}
    ctx = ctx or {}
    cl = {}
    for c in doc.get("clusters") or []:
        if c.get("name") == ctx.get("cluster") or not ctx:
            cl = c.get("cluster") or {}
    if not cl and doc.get("clusters"):
        cl = doc["clusters"][0].get("cluster") or {}
    us = {}
    for u in doc.get("users") or []:
        if u.get("name") == ctx.get("user"):
            us = u.get("user") or {}
    base = os.path.dirname(os.path.abspath(path))

    def data(d, key, fkey):
        if d.get(key):
            return base64.b64decode(d[key])
        if d.get(fkey):
            fp = d[fkey] if os.path.isabs(d[fkey]) else os.path.join(base, d[fkey])
            with open(P(fp) if ROOT and not fp.startswith(ROOT) else fp, "rb") as f:
                return f.read()
        return None

    return {
        "server": cl.get("server"),
        "ca_pem": data(cl, "certificate-authority-data", "certificate-authority"),
        "insecure": bool(cl.get("insecure-skip-tls-verify")),
        "cert_pem": data(us, "client-certificate-data", "client-certificate"),
        "key_pem": data(us, "client-key-data", "client-key"),
        "token": us.get("token"),
    }


# ----------------------------------------------------------------------------------------------
# HTTPS client


class APIError(Exception):
    def __init__(self, code, body, msg=None):
        self.code = code
        self.body = body
        super().__init__(msg or "HTTP %s" % code)


def split_server(server):
    m = re.match(r"^https://(\[[^\]]+\]|[^:/]+)(?::(\d+))?/?$", server or "")
    if not m:
        raise ValueError("invalid server URL %r" % server)
    host = m.group(1).strip("[]")
    return host, int(m.group(2) or 443)


def api_request(server, method, path, body=None, ca_pem=None, cert_pem=None, key_pem=None, token=None,
                insecure=False, timeout=10):
    """One HTTPS request to the lab API. Returns (status, parsed-json-or-text)."""
    import http.client
    import ssl
    host, port = split_server(server)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cadata=ca_pem.decode() if isinstance(ca_pem, bytes) else ca_pem)
    tmpd = None
    try:
        if cert_pem and key_pem:
            tmpd = tempfile.mkdtemp(prefix="kslab-kc-")
            cf, kf = os.path.join(tmpd, "c.pem"), os.path.join(tmpd, "k.pem")
            with open(cf, "wb") as f:
                f.write(cert_pem)
            fd = os.open(kf, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, key_pem)
            os.close(fd)
            ctx.load_cert_chain(cf, kf)
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
        headers = {"Accept": "application/json", "User-Agent": "kslab"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        try:
            parsed = json.loads(raw.decode()) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return resp.status, parsed
    finally:
        if tmpd:
            shutil.rmtree(tmpd, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# process helpers


def pidfile(name):
    return os.path.join(PIDDIR, name + ".pid")


def read_pid(name):
    try:
        with open(pidfile(name)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid, marker="kslab"):
    if not pid:
        return False
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return marker.encode() in cmd


def stop_daemon(name, timeout=5.0):
    """Stop a daemon we started, by its recorded PID only."""
    pid = read_pid(name)
    if pid and pid_alive(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + timeout
        while time.time() < deadline and pid_alive(pid):
            time.sleep(0.05)
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.time() + 2
            while time.time() < deadline and pid_alive(pid):
                time.sleep(0.05)
    try:
        os.unlink(pidfile(name))
    except OSError:
        pass
    return pid


def spawn_daemon(name, args):
    """Start `python3 kslab_daemon.py NAME args...` fully detached: double fork + setsid, stdio to
    /var/log/kubestrap-lab/NAME.log, cwd /. Records and returns the daemon's PID."""
    mkdirp(PIDDIR)
    logdir = P("/var/log/kubestrap-lab")
    mkdirp(logdir)
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(here, "kslab_daemon.py")
    argv = [sys.executable, script, name] + list(args)
    logpath = os.path.join(logdir, name + ".log")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # first child
        try:
            os.close(r)
            os.setsid()
            pid2 = os.fork()
            if pid2:
                os.write(w, str(pid2).encode())
                os._exit(0)
            os.close(w)
            os.chdir("/")
            fd = os.open(os.devnull, os.O_RDONLY)
            os.dup2(fd, 0)
            lf = os.open(logpath, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(lf, 1)
            os.dup2(lf, 2)
            os.closerange(3, 1024)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            os.execv(argv[0], argv)
        except BaseException:
            os._exit(127)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 64)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    dpid = int(data.decode() or 0)
    with open(pidfile(name), "w") as f:
        f.write("%d\n" % dpid)
    return dpid


# ----------------------------------------------------------------------------------------------
# systemd stand-in state (namespaced tier) and runtime facts

UNIT_DIRS = ["/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
SYSTEMD_STATE = STATE + "/systemd.json"
# config files a service reads when it starts (the namespaced tier snapshots them at start)
SERVICE_CONFIGS = {
    "containerd.service": "/etc/containerd/config.toml",
    "docker.service": "/etc/docker/daemon.json",
}


def unit_name(u):
    if "." in u and u.rsplit(".", 1)[1] in ("service", "socket", "target", "timer", "mount", "path", "slice",
                                             "scope", "device", "swap", "automount"):
        return u
    return u + ".service"


def unit_file(u):
    u = unit_name(u)
    for d in UNIT_DIRS:
        p = P(d + "/" + u)
        if os.path.exists(p):
            return p
    return None


def systemd_state():
    return load_json(SYSTEMD_STATE, {"units": {}})


def save_systemd_state(st):
    save_json(SYSTEMD_STATE, st)


def unit_wants_links(u):
    u = unit_name(u)
    out = []
    base = P("/etc/systemd/system")
    try:
        for d in os.listdir(base):
            if d.endswith(".wants") or d.endswith(".requires"):
                lp = os.path.join(base, d, u)
                if os.path.islink(lp) or os.path.exists(lp):
                    out.append(lp)
    except OSError:
        pass
    return out


def ns_unit_active(u):
    st = systemd_state()
    return bool(st["units"].get(unit_name(u), {}).get("active"))


def ns_unit_enabled(u):
    return bool(unit_wants_links(u)) or bool(systemd_state()["units"].get(unit_name(u), {}).get("enabled"))


def service_config_snapshot(u):
    """Content of the service's config file as it was when the service (re)started (namespaced tier)."""
    st = systemd_state()
    return st["units"].get(unit_name(u), {}).get("config")


def unit_active(u):
    if tier() == "namespaced":
        return ns_unit_active(u)
    try:
        r = subprocess.run(["systemctl", "is-active", "--quiet", unit_name(u)], timeout=20)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def unit_enabled(u):
    if tier() == "namespaced":
        return ns_unit_enabled(u)
    try:
        r = subprocess.run(["systemctl", "is-enabled", "--quiet", unit_name(u)], timeout=20)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


CRI_SOCKETS = {
    "containerd": "unix:///var/run/containerd/containerd.sock",
    "crio": "unix:///var/run/crio/crio.sock",
    "docker": "unix:///var/run/cri-dockerd.sock",
}


def socket_kind(sock):
    s = (sock or "").replace("unix://", "")
    if "containerd" in s:
        return "containerd"
    if "cri-dockerd" in s:
        return "docker"
    if "crio" in s:
        return "crio"
    return None


def _unix_sock_ok(path):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(path)
        s.close()
        return True
    except OSError:
        return False


def _sock_path(sock):
    p = (sock or "").replace("unix://", "")
    return P(p)


def runtime_endpoint_present(kind):
    """Does the CRI socket of `kind` exist (namespaced tier: is the runtime service active)?"""
    if tier() == "namespaced":
        if kind == "containerd":
            return ns_unit_active("containerd")
        if kind == "docker":
            return ns_unit_active("cri-docker.service") or ns_unit_active("cri-docker.socket")
        return False
    paths = {"containerd": ["/var/run/containerd/containerd.sock", "/run/containerd/containerd.sock"],
             "docker": ["/var/run/cri-dockerd.sock", "/run/cri-dockerd.sock"],
             "crio": ["/var/run/crio/crio.sock"]}[kind]
    return any(os.path.exists(P(p)) for p in paths)


def detect_cri_socket():
    """kubeadm's DetectCRISocket: (socket, error)."""
    found = [CRI_SOCKETS[k] for k in ("containerd", "crio", "docker") if runtime_endpoint_present(k)]
    if len(found) > 1:
        return None, ("found multiple CRI endpoints on the host. Please define which one do you wish to use by "
                      "setting the 'criSocket' field in the kubeadm configuration file: %s" % ", ".join(found))
    if not found:
        return CRI_SOCKETS["containerd"], None
    return found[0], None


def containerd_config(text):
    """Parse containerd config.toml text -> dict(systemd_cgroup, sandbox_image, cri_disabled, error)."""
    import tomllib
    res = {"systemd_cgroup": False, "sandbox_image": "registry.k8s.io/pause:3.6", "cri_disabled": False,
           "error": None}
    if text is None:
        return res
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        res["error"] = "failed to load TOML from /etc/containerd/config.toml: %s" % e
        return res
    dis = doc.get("disabled_plugins") or []
    if "cri" in dis or "io.containerd.grpc.v1.cri" in dis:
        res["cri_disabled"] = True
    plugins = doc.get("plugins") or {}
    version = doc.get("version", 1)
    if version >= 3:
        rt = plugins.get("io.containerd.cri.v1.runtime") or {}
        runc = (((rt.get("containerd") or {}).get("runtimes") or {}).get("runc") or {})
        opts = runc.get("options") or {}
        res["systemd_cgroup"] = opts.get("SystemdCgroup") is True
        img = plugins.get("io.containerd.cri.v1.images") or {}
        sb = (img.get("pinned_images") or {}).get("sandbox")
        res["sandbox_image"] = sb or "registry.k8s.io/pause:3.10"
    else:
        cri = plugins.get("io.containerd.grpc.v1.cri") or plugins.get("cri") or {}
        runc = (((cri.get("containerd") or {}).get("runtimes") or {}).get("runc") or {})
        opts = runc.get("options") or {}
        res["systemd_cgroup"] = opts.get("SystemdCgroup") is True
        if cri.get("sandbox_image"):
            res["sandbox_image"] = cri["sandbox_image"]
    return res


def read_file(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def containerd_effective_config():
    if tier() == "namespaced" and ns_unit_active("containerd"):
        snap = service_config_snapshot("containerd")
        return containerd_config(snap)
    return containerd_config(read_file(P("/etc/containerd/config.toml")))


def docker_daemon_json(text=None, use_snapshot=True):
    """-> (dict, error) for /etc/docker/daemon.json as the running daemon sees it."""
    if text is None:
        if use_snapshot and tier() == "namespaced" and ns_unit_active("docker"):
            text = service_config_snapshot("docker")
        else:
            text = read_file(P("/etc/docker/daemon.json"))
    if text is None or not text.strip():
        return {}, None
    try:
        d = json.loads(text)
        if not isinstance(d, dict):
            return {}, "invalid daemon.json"
        return d, None
    except ValueError as e:
        return {}, "unable to configure the Docker daemon with file /etc/docker/daemon.json: %s" % e


def docker_cgroup_driver(daemon=None):
    if daemon is None:
        daemon, _ = docker_daemon_json()
    for opt in daemon.get("exec-opts") or []:
        if isinstance(opt, str) and opt.replace(" ", "").startswith("native.cgroupdriver="):
            return opt.split("=", 1)[1].strip()
    return "cgroupfs"


# image stores of the namespaced tier ----------------------------------------------------------

def image_store_path(kind):
    return STATE + "/images-%s.json" % kind


def image_store(kind):
    return load_json(image_store_path(kind), {})


def save_image_store(kind, st):
    save_json(image_store_path(kind), st)


def normalize_ref(ref):
    """docker.io normalisation as containerd shows references."""
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    first = ref.split("/", 1)[0]
    if "/" not in ref or ("." not in first and ":" not in first and first != "localhost"):
        if "/" not in ref:
            ref = "docker.io/library/" + ref
        else:
            ref = "docker.io/" + ref
    return ref


def docker_short_ref(ref):
    if ref.startswith("docker.io/library/"):
        return ref[len("docker.io/library/"):]
    if ref.startswith("docker.io/"):
        return ref[len("docker.io/"):]
    return ref


def runtime_images(kind):
    """Set of fully-qualified image references the runtime has."""
    if tier() == "namespaced":
        st = image_store(kind)
        return set(normalize_ref(r) for r in st)
    try:
        if kind == "containerd":
            out = subprocess.run(["ctr", "-n", "k8s.io", "images", "ls", "-q"], capture_output=True, text=True,
                                 timeout=60).stdout
            return set(normalize_ref(l.strip()) for l in out.splitlines()
                       if l.strip() and not l.startswith("sha256:"))
        if kind == "docker":
            out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                                 text=True, timeout=60).stdout
            return set(normalize_ref(l.strip()) for l in out.splitlines() if l.strip() and "<none>" not in l)
    except (OSError, subprocess.SubprocessError):
        pass
    return set()


def runtime_status(kind):
    """(running: bool, error message like the CRI client would give)."""
    sock = CRI_SOCKETS.get(kind, CRI_SOCKETS["containerd"])
    path = sock.replace("unix://", "")
    dial = ('validate service connection: validate CRI v1 runtime API for endpoint "%s": rpc error: code = '
            'Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix %s: connect: '
            'no such file or directory"' % (sock, path))
    if not runtime_endpoint_present(kind):
        return False, dial
    if kind == "containerd":
        cfg = containerd_effective_config()
        if cfg["cri_disabled"]:
            return False, ('validate service connection: validate CRI v1 runtime API for endpoint "%s": rpc error: '
                           'code = Unimplemented desc = unknown service runtime.v1.RuntimeService' % sock)
    if kind == "docker":
        if not (unit_active("docker") if tier() == "namespaced" else os.path.exists(P("/var/run/docker.sock"))):
            return False, ('validate service connection: validate CRI v1 runtime API for endpoint "%s": rpc error: '
                           'code = Unknown desc = failed to get docker version from dockerd: Cannot connect to the '
                           'Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' % sock)
    return True, None


def runtime_cgroup_driver(kind):
    if kind == "containerd":
        return "systemd" if containerd_effective_config()["systemd_cgroup"] else "cgroupfs"
    if kind == "docker":
        if tier() == "vm":
            try:
                out = subprocess.run(["docker", "info", "--format", "{{.CgroupDriver}}"], capture_output=True,
                                     text=True, timeout=30).stdout.strip()
                if out:
                    return out
            except (OSError, subprocess.SubprocessError):
                pass
        return docker_cgroup_driver()
    return "systemd"


def runtime_sandbox_image(kind):
    if kind == "containerd":
        return containerd_effective_config()["sandbox_image"]
    if kind == "docker":
        return None  # cri-dockerd takes the pause image from kubelet / its flag
    return None


def runtime_version_string(kind):
    if kind == "docker":
        return "docker://20.10.24"
    return "containerd://1.6.20"


def swap_on():
    try:
        with open(proc_path("/proc/swaps")) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        return len(lines) > 1
    except OSError:
        return False


def kubelet_extra_args_env():
    """KUBELET_EXTRA_ARGS from /etc/default/kubelet as a dict."""
    out = {}
    txt = read_file(P("/etc/default/kubelet"), "")
    for line in txt.splitlines():
        line = line.strip()
        if line.startswith("KUBELET_EXTRA_ARGS="):
            val = line.split("=", 1)[1]
            try:
                parts = shlex.split(val)
                if len(parts) == 1 and " " in parts[0]:
                    parts = shlex.split(parts[0])
            except ValueError:
                parts = val.split()
            for p in parts:
                if p.startswith("--"):
                    k, _, v = p[2:].partition("=")
                    out[k] = v
    return out


def os_image():
    txt = read_file(P("/etc/os-release")) or read_file("/etc/os-release", "")
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', txt, re.M)
    return m.group(1) if m else "Linux"


# ----------------------------------------------------------------------------------------------
# image archives (docker-archive or OCI layout tarballs)


def read_image_archive(path_or_fileobj):
    """-> (format, [ {ref, digest, config, size} ]) ; raises ValueError with a runtime-like message."""
    import tarfile
    try:
        if hasattr(path_or_fileobj, "read"):
            tf = tarfile.open(fileobj=path_or_fileobj, mode="r|*")
            members = {}
            for m in tf:
                if m.isfile() and (m.name.endswith(".json") or m.name.lstrip("./") in ("index.json", "oci-layout",
                                                                                       "manifest.json")
                                   or "blobs/" in m.name):
                    f = tf.extractfile(m)
                    data = f.read() if (m.size < 4 * 1024 * 1024) else b""
                    members[m.name.lstrip("./") if m.name.startswith("./") else m.name] = (data, m.size)
                elif m.isfile():
                    members[m.name] = (b"", m.size)
        else:
            tf = tarfile.open(path_or_fileobj, "r:*")
            members = {}
            for m in tf.getmembers():
                if not m.isfile():
                    continue
                name = m.name[2:] if m.name.startswith("./") else m.name
                if m.size < 4 * 1024 * 1024 and (name.endswith(".json") or name in ("index.json", "oci-layout")
                                                 or name.startswith("blobs/")):
                    members[name] = (tf.extractfile(m).read(), m.size)
                else:
                    members[name] = (b"", m.size)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError("unrecognized image format: %s" % e)
    total = sum(s for _, s in members.values())
    images = []
    if "manifest.json" in members and members["manifest.json"][0]:
        try:
            man = json.loads(members["manifest.json"][0])
        except ValueError as e:
            raise ValueError("failed to parse manifest.json: %s" % e)
        for ent in man:
            cfg = ent.get("Config", "")
            cfg_data = members.get(cfg, (b"", 0))[0]
            cfg_digest = "sha256:" + hashlib.sha256(cfg_data).hexdigest()
            layers = ent.get("Layers") or []
            size = sum(members.get(l, (b"", 0))[1] for l in layers) + len(cfg_data)
            mdig = "sha256:" + hashlib.sha256((cfg_digest + json.dumps(layers)).encode()).hexdigest()
            for tag in ent.get("RepoTags") or []:
                images.append({"ref": normalize_ref(tag), "digest": mdig, "config": cfg_digest, "size": size})
        return "docker-archive", images
    if "index.json" in members:
        try:
            idx = json.loads(members["index.json"][0])
        except ValueError as e:
            raise ValueError("failed to parse index.json: %s" % e)
        for m in idx.get("manifests") or []:
            ann = m.get("annotations") or {}
            name = ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name")
            dig = m.get("digest", "")
            blob = members.get("blobs/" + dig.replace(":", "/"), (b"", 0))[0]
            cfg = "sha256:" + hashlib.sha256(blob).hexdigest()
            size = m.get("size", 0)
            try:
                mj = json.loads(blob) if blob else {}
                cfg = (mj.get("config") or {}).get("digest", cfg)
                size = sum(l.get("size", 0) for l in mj.get("layers") or []) + (mj.get("config") or {}).get("size", 0)
            except ValueError:
                pass
            if not name:
                continue
            if "/" not in name and ":" not in name:
                continue  # bare tag without repository: containerd needs --base-name
            images.append({"ref": normalize_ref(name), "digest": dig, "config": cfg, "size": size})
        return "oci", images
    raise ValueError("unrecognized image format")


def human_size(n, si=True):
    """docker/crictl-style sizes: 320kB, 27.3MB."""
    units = ["B", "kB", "MB", "GB", "TB"]
    f = float(n)
    i = 0
    while f >= 1000 and i < len(units) - 1:
        f /= 1000.0
        i += 1
    if i == 0:
        return "%dB" % n
    s = ("%.3g" % f)
    return s + units[i]


def read_pid_at(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def peer_cert_sans(server):
    """SANs of the server's certificate (fetched without verification): (dns_names, ips)."""
    import ssl
    host, port = split_server(server)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=host if not re.match(r"^[\d.]+$", host) else None) as t:
            der = t.getpeercert(binary_form=True)
    txt = openssl("x509", "-inform", "DER", "-noout", "-ext", "subjectAltName", input=der).decode()
    dns = re.findall(r"DNS:([^,\s]+)", txt)
    ips = re.findall(r"IP Address:([^,\s]+)", txt)
    return dns, ips


def go_tls_error(server, exc):
    """Render a Python TLS verification error the way Go's crypto/tls + x509 word it."""
    msg = str(exc)
    host, _ = split_server(server)
    if "mismatch" in msg or "not valid for" in msg:
        try:
            dns, ips = peer_cert_sans(server)
            valid = ips if re.match(r"^[\d.:]+$", host) else dns
            return "tls: failed to verify certificate: x509: certificate is valid for %s, not %s" % (
                ", ".join(valid), host)
        except Exception:
            return "tls: failed to verify certificate: x509: certificate is not valid for %s" % host
    if "CERTIFICATE_VERIFY_FAILED" in msg:
        return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    return msg


def node_runtime_problem(kind, kubelet_config_path="/var/lib/kubelet/config.yaml"):
    """Why pods cannot run on this node right now (None if they can): runtime down, sandbox image missing,
    cgroup driver mismatch.  Used by the node agent for the Ready condition."""
    ok, msg = runtime_status(kind)
    if not ok:
        return "container runtime is down: " + msg
    try:
        import yaml
        with open(P(kubelet_config_path)) as f:
            kcfg = yaml.safe_load(f) or {}
    except (OSError, ValueError):
        kcfg = {}
    except Exception:
        kcfg = {}
    want = kcfg.get("cgroupDriver") or "systemd"
    have = runtime_cgroup_driver(kind)
    if want != have:
        return ("cgroup driver mismatch: kubelet cgroupDriver=%s, container runtime uses %s (pods keep getting "
                "killed)" % (want, have))
    sb = runtime_sandbox_image(kind)
    if sb and normalize_ref(sb) not in runtime_images(kind):
        return ('failed to get sandbox image "%s": failed to pull image "%s": dial tcp: lookup %s: no such host'
                % (sb, sb, sb.split("/")[0]))
    return None


# ----------------------------------------------------------------------------------------------
# kubeadm-certs encryption (real kubeadm: AES-256-GCM with the 32-byte certificate key). The lab has no AES in
# python's stdlib, so: AES-256-CBC through the openssl CLI, then HMAC-SHA256 over IV+ciphertext (encrypt-then-MAC,
# the MAC key derived from the certificate key). A wrong key fails the MAC check, as GCM's tag check does.

def _cert_keys(key_hex):
    import hashlib
    raw = bytes.fromhex(key_hex)
    return raw, hashlib.sha256(b"kslab-kubeadm-certs-mac" + raw).digest()


def encrypt_bytes(data, key_hex):
    import hmac
    import hashlib
    enc_key, mac_key = _cert_keys(key_hex)
    iv = secrets.token_bytes(16)
    ct = subprocess.run(["openssl", "enc", "-aes-256-cbc", "-K", enc_key.hex(), "-iv", iv.hex()], input=data,
                        capture_output=True, check=True).stdout
    return iv + ct + hmac.new(mac_key, iv + ct, hashlib.sha256).digest()


def decrypt_bytes(blob, key_hex):
    """-> plaintext, or raises ValueError("cipher: message authentication failed") like Go's GCM Open."""
    import hmac
    import hashlib
    enc_key, mac_key = _cert_keys(key_hex)
    if len(blob) < 48:
        raise ValueError("size of data is less than the nonce")
    iv, ct, tag = blob[:16], blob[16:-32], blob[-32:]
    if not hmac.compare_digest(tag, hmac.new(mac_key, iv + ct, hashlib.sha256).digest()):
        raise ValueError("cipher: message authentication failed")
    return subprocess.run(["openssl", "enc", "-d", "-aes-256-cbc", "-K", enc_key.hex(), "-iv", iv.hex()], input=ct,
                          capture_output=True, check=True).stdout


# the files kubeadm's copycerts transfers (certsToTransfer), and their Secret keys (certOrKeyNameToSecretName)
CERTS_TO_TRANSFER = ["ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key"]
ETCD_CERTS_TO_TRANSFER = ["etcd/ca.crt", "etcd/ca.key"]


def cert_secret_name(f):
    return f.replace("/", "-")
