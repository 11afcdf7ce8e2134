//! The `cluster:` section.

use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde_saphyr::Spanned;

use super::super::raw::{RawCluster, S};
use super::super::*;
use super::address::normalize_endpoint;
use super::bundle::{file_name_problem, is_oci_layout, sniff, Bundle};
use super::image::{image_repository_problem, package_repository_problem};
use super::{at, check_label, one_of, overlaps, parse_ipv4_net, Ctx, Pos};

const DEFAULT_POD_SUBNET: &str = "10.244.0.0/16";
const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";
const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";

pub(crate) struct ClusterParts {
    pub name: Option<String>,
    pub version: Option<Version>,
    pub pod: Option<Ipv4Net>,
    pub pod_pos: Pos,
    pub service: Option<Ipv4Net>,
    pub service_pos: Pos,
    pub runtime: Option<Runtime>,
    pub cni: Option<Cni>,
    pub image_repository: Option<String>,
    pub package_repository: Option<String>,
    pub preload_images: Vec<PathBuf>,
    pub pki: Option<PkiMode>,
    pub endpoint: Option<String>,
    pub endpoint_pos: Pos,
    /// `loadBalancer` as written, where.
    pub load_balancer: Option<(LoadBalancer, Pos)>,
    pub control_plane_schedulable: Option<bool>,
}

pub(crate) fn cluster(ctx: &mut Ctx, raw: &S<RawCluster>) -> ClusterParts {
    let mut out = ClusterParts {
        name: None,
        version: None,
        pod: None,
        pod_pos: (1, 1),
        service: None,
        service_pos: (1, 1),
        runtime: Some(Runtime::Containerd),
        cni: Some(Cni::Flannel),
        image_repository: Some(DEFAULT_IMAGE_REPOSITORY.into()),
        package_repository: None,
        preload_images: Vec::new(),
        pki: Some(PkiMode::Kubeadm),
        endpoint: None,
        endpoint_pos: (1, 1),
        load_balancer: None,
        control_plane_schedulable: None,
    };
    let Some(c) = raw else {
        ctx.err(
            (1, 1),
            "cluster",
            "missing section `cluster` (with at least `name` and `kubernetesVersion`)",
        );
        return out;
    };
    let here = at(c);
    let c = &c.value;

    match &c.name {
        Some(n) => {
            if check_label(ctx, n, "cluster.name", "cluster name") {
                out.name = Some(n.value.clone());
            }
        }
        None => ctx.err(
            here,
            "cluster.name",
            "missing field `name` (an RFC 1123 label such as `lab`)",
        ),
    }

    match &c.kubernetes_version {
        Some(v) => match Version::parse(v.value.trim()) {
            Some(ver) if ver.major == 1 && (MIN_MINOR..=MAX_MINOR).contains(&ver.minor) => {
                out.version = Some(ver)
            }
            Some(ver) => ctx.err(
                at(v),
                "cluster.kubernetesVersion",
                format!(
                    "Kubernetes {ver} is not supported; supported versions are 1.{MIN_MINOR}.x to 1.{MAX_MINOR}.x"
                ),
            ),
            None => {
                let mut m = format!(
                    "{:?} is not a Kubernetes version; write MAJOR.MINOR.PATCH like \"1.31.2\" or \"v1.31.2\" (supported: 1.{MIN_MINOR} to 1.{MAX_MINOR})",
                    v.value
                );
                let t = v.value.trim().trim_start_matches('v');
                if t.split('.').count() == 2 && t.split('.').all(|p| p.parse::<u32>().is_ok()) {
                    m.push_str(&format!("; a patch release is required, e.g. \"{t}.0\""));
                }
                ctx.err(at(v), "cluster.kubernetesVersion", m);
            }
        },
        None => ctx.err(
            here,
            "cluster.kubernetesVersion",
            "missing field `kubernetesVersion` (e.g. \"1.31.2\")",
        ),
    }

    match &c.pod_subnet {
        Some(s) => {
            out.pod_pos = at(s);
            out.pod = parse_ipv4_net(ctx, s, "cluster.podSubnet");
        }
        None => out.pod = DEFAULT_POD_SUBNET.parse().ok(),
    }
    match &c.service_subnet {
        Some(s) => {
            out.service_pos = at(s);
            out.service = parse_ipv4_net(ctx, s, "cluster.serviceSubnet");
            if let Some(n) = out.service {
                if n.prefix_len() < 12 {
                    ctx.err(
                        at(s),
                        "cluster.serviceSubnet",
                        format!("{n} is too large: the API server accepts a service range of /12 or smaller (prefix length 12-28)"),
                    );
                    out.service = None;
                } else if n.prefix_len() > 28 {
                    ctx.err(
                        at(s),
                        "cluster.serviceSubnet",
                        format!("{n} is too small for the cluster's services; use a prefix length of 12-28 (e.g. 10.96.0.0/12)"),
                    );
                    out.service = None;
                }
            }
        }
        None => out.service = DEFAULT_SERVICE_SUBNET.parse().ok(),
    }
    if let (Some(p), Some(s)) = (out.pod, out.service) {
        if overlaps(&p, &s) {
            let (pos, path, other) = if c.service_subnet.is_some() {
                (
                    out.service_pos,
                    "cluster.serviceSubnet",
                    format!("podSubnet {p}"),
                )
            } else {
                (
                    out.pod_pos,
                    "cluster.podSubnet",
                    format!("serviceSubnet {s} (the default)"),
                )
            };
            let this = if path.ends_with("serviceSubnet") {
                s
            } else {
                p
            };
            ctx.err(
                pos,
                path,
                format!("{this} overlaps {other}; pod and service subnets must not overlap"),
            );
        }
    }

    if let Some(r) = &c.container_runtime {
        out.runtime = one_of(
            ctx,
            r,
            "cluster.containerRuntime",
            "a container runtime",
            Runtime::ALLOWED,
            &[Runtime::Containerd, Runtime::Docker],
        );
    }
    if let Some(n) = &c.cni {
        out.cni = one_of(
            ctx,
            n,
            "cluster.cni",
            "a supported pod network",
            Cni::ALLOWED,
            &[Cni::Flannel, Cni::None],
        );
    }
    if let Some(p) = &c.pki {
        out.pki = one_of(
            ctx,
            p,
            "cluster.pki",
            "a PKI mode",
            PkiMode::ALLOWED,
            &[PkiMode::Kubeadm, PkiMode::Console],
        );
    }

    if let Some(r) = &c.image_repository {
        let v = r.value.trim();
        match image_repository_problem(v) {
            Some(why) => ctx.err(
                at(r),
                "cluster.imageRepository",
                format!(
                    "{v:?} {why}; write a lowercase registry host[:port] with an optional /path, e.g. registry.k8s.io or registry.aliyuncs.com/google_containers"
                ),
            ),
            None => out.image_repository = Some(v.to_string()),
        }
    }

    if let Some(r) = &c.package_repository {
        let v = r.value.trim();
        match package_repository_problem(v) {
            None => out.package_repository = Some(v.to_string()),
            Some(why) => ctx.err(
                at(r),
                "cluster.packageRepository",
                format!("{v:?} {why}; e.g. https://pkgs.k8s.io/core:/stable:/v1.31/deb/"),
            ),
        }
    } else if let Some(v) = out.version {
        out.package_repository = Some(format!(
            "https://pkgs.k8s.io/core:/stable:/v{}/deb/",
            v.minor_line()
        ));
    }

    if let Some(list) = &c.preload_images {
        for (i, img) in list.value.iter().enumerate() {
            let path = format!("cluster.preloadImages[{i}]");
            if let Some(file) = preload_image(ctx, img, &path) {
                out.preload_images.push(file);
            }
        }
    }

    if let Some(e) = &c.control_plane_endpoint {
        out.endpoint_pos = at(e);
        let v = e.value.trim();
        let checked = if v.contains("://") {
            Err("no scheme (https://) or path, just host[:port]".to_string())
        } else {
            normalize_endpoint(v)
        };
        match checked {
            Ok(n) => out.endpoint = Some(n),
            Err(why) => ctx.err(
                at(e),
                "cluster.controlPlaneEndpoint",
                format!("{v:?} is not a valid endpoint: {why}; write an IP address or DNS name with an optional port, e.g. k8s-api.example.com:6443"),
            ),
        }
    }
    if let Some(lb) = &c.load_balancer {
        if let Some(v) = one_of(
            ctx,
            lb,
            "cluster.loadBalancer",
            "a load balancer",
            LoadBalancer::ALLOWED,
            &[LoadBalancer::KubeVip, LoadBalancer::External],
        ) {
            out.load_balancer = Some((v, at(lb)));
        }
    }
    out.control_plane_schedulable = c.control_plane_schedulable.as_ref().map(|b| b.value);
    out
}

/// One `preloadImages` entry: an existing image bundle (checked by content) with a file name that
/// is safe to use on the hosts.
fn preload_image(ctx: &mut Ctx, img: &Spanned<String>, path: &str) -> Option<PathBuf> {
    let file = ctx.resolve_path(img, path)?;
    let shown = file.display();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(c) = file_name_problem(&name) {
        ctx.err(
            at(img),
            path,
            format!("the file name {name:?} becomes a file name on every host and {c:?} is not allowed there; rename the bundle using letters, digits, '.', '_', '-' and '+' (not starting with '.' or '-')"),
        );
        return None;
    }
    let problem = match std::fs::metadata(&file) {
        Err(_) => format!(
            "image tarball {:?} not found (looked for {shown}; relative paths start at the inventory's directory)",
            img.value
        ),
        Ok(m) if m.is_dir() && is_oci_layout(&file) => format!(
            "{shown} is an OCI image layout directory; kubestrap uploads one file per bundle: pack it with `tar -cf {name}.tar -C {shown} .` and list the .tar"
        ),
        Ok(m) if m.is_dir() => format!(
            "image tarball {:?} is not a file: it is a directory (looked for {shown})",
            img.value
        ),
        Ok(m) if !m.is_file() => format!(
            "image tarball {:?} is not a regular file (looked for {shown})",
            img.value
        ),
        Ok(_) => match sniff(&file) {
            Ok(Bundle::Tar | Bundle::GzipTar | Bundle::Zstd) => return Some(file),
            Err(why) => format!(
                "{shown} is not an image bundle: {why}; preloadImages takes image archives (tar, or gzip/zstd-compressed tar) as written by `ctr images export` or `docker save`, and refuses anything else so no other file is uploaded to the hosts"
            ),
        },
    };
    ctx.err(at(img), path, problem);
    None
}
