//! The inventory exactly as written: every field optional and carrying its source location, so the
//! validation pass can report *all* problems with `file:line:column`. Unknown fields are rejected by
//! serde (`deny_unknown_fields`); wrong YAML types fail here too (one error, with its location).

use serde::Deserialize;
use serde_saphyr::Spanned;

pub(crate) type S<T> = Option<Spanned<T>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawInventory {
    pub cluster: S<RawCluster>,
    pub ssh: S<RawSsh>,
    pub hosts: S<Vec<Spanned<RawHost>>>,
    pub timeouts: S<RawTimeouts>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawCluster {
    pub name: S<String>,
    pub kubernetes_version: S<String>,
    pub pod_subnet: S<String>,
    pub service_subnet: S<String>,
    pub container_runtime: S<String>,
    pub cni: S<String>,
    pub image_repository: S<String>,
    pub package_repository: S<String>,
    pub preload_images: S<Vec<Spanned<String>>>,
    pub pki: S<String>,
    pub control_plane_endpoint: S<String>,
    pub load_balancer: S<String>,
    pub control_plane_schedulable: S<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawSsh {
    pub user: S<String>,
    pub port: S<u16>,
    pub identity_file: S<String>,
    pub known_hosts_file: S<String>,
    pub host_key_policy: S<String>,
    pub password_env: S<String>,
    pub passphrase_env: S<String>,
    pub sudo_password_env: S<String>,
    pub bastion: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawHost {
    pub name: S<String>,
    pub address: S<String>,
    pub internal_address: S<String>,
    pub role: S<String>,
    pub ssh: S<RawSsh>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawTimeouts {
    pub connect: S<String>,
    pub command: S<String>,
    pub package_install: S<String>,
    pub image_pull: S<String>,
    pub kubeadm_init: S<String>,
    pub kubeadm_join: S<String>,
    pub node_ready: S<String>,
}
