#!/usr/bin/python3
"""Write a docker-archive tarball (as `docker save` makes) holding the images that
`kubeadm config images list --kubernetes-version vVERSION [--image-repository R]` names, plus flannel's.

Each image has a config JSON and one tiny real layer. Output bytes are deterministic.
Usage: mkimages.py VERSION -o FILE [--repo REPOSITORY] [--list]
"""
import argparse
import hashlib
import io
import json
import os
import sys
import tarfile

MTIME = 1729555200  # 2024-10-22T00:00:00Z
DEFAULT_REPO = "registry.k8s.io"
FLANNEL = ["ghcr.io/flannel-io/flannel:v0.26.1", "ghcr.io/flannel-io/flannel-cni-plugin:v1.5.1-flannel2"]
COMPONENTS = {  # minor -> (coredns, pause, etcd)
    "1.30": ("v1.11.3", "3.9", "3.5.15-0"),
    "1.31": ("v1.11.3", "3.10", "3.5.15-0"),
    "1.32": ("v1.11.3", "3.10", "3.5.16-0"),
    "1.33": ("v1.12.0", "3.10", "3.5.21-0"),
}


def image_list(version, repo=None):
    v = version.lstrip("v")
    minor = ".".join(v.split(".")[:2])
    if minor not in COMPONENTS:
        raise SystemExit(f"images: unsupported Kubernetes version {version} (1.30.x to 1.33.x)")
    coredns, pause, etcd = COMPONENTS[minor]
    r = (repo or DEFAULT_REPO).rstrip("/")
    # kubeadm keeps coredns/coredns only for the default registry
    coredns_img = f"{r}/coredns/coredns:{coredns}" if r == DEFAULT_REPO else f"{r}/coredns:{coredns}"
    return [
        f"{r}/kube-apiserver:v{v}",
        f"{r}/kube-controller-manager:v{v}",
        f"{r}/kube-scheduler:v{v}",
        f"{r}/kube-proxy:v{v}",
        coredns_img,
        f"{r}/pause:{pause}",
        f"{r}/etcd:{etcd}",
    ] + FLANNEL


def tar_bytes(entries):
    """entries: list of (name, bytes|None for dir, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mode = mode
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def build(version, repo):
    files = []  # (name, bytes)
    manifest = []
    repositories = {}
    for ref in image_list(version, repo):
        name, tag = ref.rsplit(":", 1)
        base = name.rsplit("/", 1)[-1]
        layer = tar_bytes([
            ("etc/", None, 0o755),
            ("etc/kubestrap-lab-image", f"{ref}\n".encode(), 0o644),
            ("usr/", None, 0o755),
            ("usr/local/", None, 0o755),
            ("usr/local/bin/", None, 0o755),
            (f"usr/local/bin/{base}", f"#!/bin/sh\necho '{ref}: kubestrap lab image stand-in'\n".encode(), 0o755),
        ])
        diff_id = "sha256:" + sha(layer)
        config = {
            "architecture": "amd64",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Entrypoint": [f"/usr/local/bin/{base}"],
                "Labels": {"io.kubestrap.lab.image": ref},
            },
            "created": "2024-10-22T00:00:00Z",
            "history": [{"created": "2024-10-22T00:00:00Z", "created_by": "kubestrap lab mkimages.py"}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        cfg = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        cfg_id = sha(cfg)
        layer_dir = sha(layer)  # legacy layer directory name (v1 id)
        v1json = json.dumps({"id": layer_dir, "created": "2024-10-22T00:00:00Z", "os": "linux"},
                            sort_keys=True, separators=(",", ":")).encode()
        files += [
            (f"{layer_dir}/", None),
            (f"{layer_dir}/VERSION", b"1.0"),
            (f"{layer_dir}/json", v1json),
            (f"{layer_dir}/layer.tar", layer),
            (f"{cfg_id}.json", cfg),
        ]
        manifest.append({"Config": f"{cfg_id}.json", "RepoTags": [ref], "Layers": [f"{layer_dir}/layer.tar"]})
        repositories.setdefault(name, {})[tag] = layer_dir
    files.append(("manifest.json", json.dumps(manifest, separators=(",", ":")).encode()))
    files.append(("repositories", json.dumps(repositories, sort_keys=True, separators=(",", ":")).encode()))
    seen = set()
    entries = []
    for name, data in files:
        if name in seen:
            continue
        seen.add(name)
        entries.append((name, data, 0o755 if data is None else 0o644))
    return tar_bytes(entries)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("version")
    ap.add_argument("-o", "--output")
    ap.add_argument("--repo", "--image-repository", dest="repo")
    ap.add_argument("--list", action="store_true", help="only print the image references")
    a = ap.parse_args()
    if a.list:
        print("\n".join(image_list(a.version, a.repo)))
        return 0
    if not a.output:
        ap.error("-o FILE is required")
    data = build(a.version, a.repo)
    tmp = a.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, a.output)
    print(f"{a.output}: {len(data)} bytes, {len(image_list(a.version, a.repo))} images, sha256 {sha(data)}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
