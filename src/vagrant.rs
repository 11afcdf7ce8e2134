//! `kubestrap vagrant-inventory`: turn `vagrant ssh-config` output into an inventory.
//!
//! Vagrant's SSH goes to 127.0.0.1 through a forwarded port, and every VM has the NAT address
//! 10.0.2.15, so the node IP must come from the private network: `--ip NAME=ADDR` or
//! `--private-network FIRST` (host i gets FIRST + i, as in the shipped Vagrantfile).

use std::net::Ipv4Addr;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct SshHost {
    pub name: String,
    pub host_name: String,
    pub user: String,
    pub port: u16,
    pub identity_file: String,
}

/// Parse the `Host` blocks of an ssh_config-style text.
pub fn parse_ssh_config(text: &str) -> Vec<SshHost> {
    let mut hosts: Vec<SshHost> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(|c: char| c.is_whitespace() || c == '=') {
            Some((k, v)) => (
                k.to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ),
            None => continue,
        };
        if key == "host" {
            hosts.push(SshHost {
                name: value,
                port: 22,
                ..Default::default()
            });
            continue;
        }
        let Some(h) = hosts.last_mut() else { continue };
        match key.as_str() {
            "hostname" => h.host_name = value,
            "user" => h.user = value,
            "port" => h.port = value.parse().unwrap_or(22),
            "identityfile" if h.identity_file.is_empty() => h.identity_file = value,
            _ => {}
        }
    }
    hosts
}

pub struct Options {
    pub cluster_name: String,
    pub version: String,
    pub control_plane: Option<String>,
    pub ips: Vec<(String, String)>,
    pub private_network: Option<Ipv4Addr>,
}

/// Render the inventory, or say which host has no internal address.
pub fn render(hosts: &[SshHost], o: &Options) -> Result<String, String> {
    if hosts.is_empty() {
        return Err(
            "no `Host` entries in the input; pipe `vagrant ssh-config` into this command".into(),
        );
    }
    let cp = o
        .control_plane
        .clone()
        .unwrap_or_else(|| hosts[0].name.clone());
    if !hosts.iter().any(|h| h.name == cp) {
        return Err(format!(
            "--control-plane {cp}: no such host in the ssh config"
        ));
    }
    let mut out_hosts = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let ip = match o.ips.iter().find(|(n, _)| *n == h.name) {
            Some((_, ip)) => ip.clone(),
            None => match o.private_network {
                Some(first) => Ipv4Addr::from(u32::from(first) + i as u32).to_string(),
                None => {
                    return Err(format!(
                        "host {} has no internal address: pass --ip {}=ADDR (its private_network address) or --private-network FIRST; \
                         10.0.2.15, Vagrant's NAT address, cannot be a node IP",
                        h.name, h.name
                    ))
                }
            },
        };
        if ip == "10.0.2.15" {
            return Err(format!("host {}: 10.0.2.15 is Vagrant's NAT address on every VM; use the private_network address", h.name));
        }
        out_hosts.push(OutHost {
            name: &h.name,
            address: &h.host_name,
            internal_address: ip,
            role: if h.name == cp {
                "control-plane"
            } else {
                "worker"
            },
            ssh: OutHostSsh {
                user: if h.user.is_empty() {
                    "vagrant"
                } else {
                    &h.user
                },
                port: h.port,
                identity_file: &h.identity_file,
            },
        });
    }
    let doc = Out {
        cluster: OutCluster {
            name: &o.cluster_name,
            kubernetes_version: &o.version,
        },
        ssh: OutSsh {
            host_key_policy: "accept-new",
            known_hosts_file: ".kubestrap/known_hosts",
        },
        hosts: out_hosts,
    };
    // Every value is written by the YAML serializer, which quotes and escapes whatever
    // `vagrant ssh-config` (a Vagrantfile's choice) put in it; never by string formatting.
    let mut opts = serde_saphyr::SerializerOptions::default();
    // One line per value: a newline in a value is written as `\n` in a double-quoted string.
    opts.prefer_block_scalars = false;
    let yaml = serde_saphyr::to_string_with_options(&doc, opts)
        .map_err(|e| format!("cannot write the inventory as YAML: {e}"))?;
    Ok(format!(
        "# Made by `kubestrap vagrant-inventory` from `vagrant ssh-config`.\n\
         # Vagrant rebuilds VMs on the same ports: known keys live beside the state (ssh.knownHostsFile),\n\
         # and a rebuilt VM is refused with the line to remove.\n{yaml}"
    ))
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Out<'a> {
    cluster: OutCluster<'a>,
    ssh: OutSsh,
    hosts: Vec<OutHost<'a>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct OutCluster<'a> {
    name: &'a str,
    kubernetes_version: &'a str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct OutSsh {
    host_key_policy: &'static str,
    known_hosts_file: &'static str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct OutHost<'a> {
    name: &'a str,
    address: &'a str,
    internal_address: String,
    role: &'static str,
    ssh: OutHostSsh<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct OutHostSsh<'a> {
    user: &'a str,
    port: u16,
    identity_file: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Host cp1\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  PasswordAuthentication no\n  IdentityFile /home/u/lab/.vagrant/machines/cp1/virtualbox/private_key\n  IdentitiesOnly yes\n  LogLevel FATAL\n  PubkeyAcceptedKeyTypes +ssh-rsa\n  HostKeyAlgorithms +ssh-rsa\n\nHost w1\n  HostName 127.0.0.1\n  User vagrant\n  Port 2200\n  IdentityFile \"/home/u/my lab/.vagrant/machines/w1/virtualbox/private_key\"\n";

    #[test]
    fn parses_vagrant_ssh_config() {
        let h = parse_ssh_config(SAMPLE);
        assert_eq!(h.len(), 2);
        assert_eq!(
            h[0],
            SshHost {
                name: "cp1".into(),
                host_name: "127.0.0.1".into(),
                user: "vagrant".into(),
                port: 2222,
                identity_file: "/home/u/lab/.vagrant/machines/cp1/virtualbox/private_key".into()
            }
        );
        assert_eq!(h[1].port, 2200);
        assert_eq!(
            h[1].identity_file,
            "/home/u/my lab/.vagrant/machines/w1/virtualbox/private_key"
        );
    }

    #[test]
    fn renders_a_valid_inventory() {
        let h = parse_ssh_config(SAMPLE);
        let o = Options {
            cluster_name: "lab".into(),
            version: "1.31.2".into(),
            control_plane: None,
            ips: vec![],
            private_network: Some("192.168.56.10".parse().unwrap()),
        };
        let y = render(&h, &o).unwrap();
        assert!(y.contains("internalAddress: \"192.168.56.11\""), "{y}");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("inventory.yaml");
        // Identity files must exist for the inventory to validate; point them at real files.
        let key = d.path().join("key");
        std::fs::write(&key, "x").unwrap();
        let y = y
            .replace(
                "/home/u/lab/.vagrant/machines/cp1/virtualbox/private_key",
                key.to_str().unwrap(),
            )
            .replace(
                "/home/u/my lab/.vagrant/machines/w1/virtualbox/private_key",
                key.to_str().unwrap(),
            );
        std::fs::write(&p, &y).unwrap();
        let inv = crate::inventory::load(&p).unwrap_or_else(|e| panic!("{e}\n{y}"));
        assert_eq!(inv.hosts.len(), 2);
        assert_eq!(inv.hosts[1].ssh.port, 2200);
        assert_eq!(inv.hosts[1].internal_address.to_string(), "192.168.56.11");
    }

    #[test]
    fn refuses_without_internal_addresses() {
        let h = parse_ssh_config(SAMPLE);
        let o = Options {
            cluster_name: "lab".into(),
            version: "1.31.2".into(),
            control_plane: None,
            ips: vec![("cp1".into(), "10.0.2.15".into())],
            private_network: None,
        };
        let e = render(&h, &o).unwrap_err();
        assert!(e.contains("10.0.2.15"), "{e}");
    }

    /// The YAML as a parser sees it (the inventory's own raw types are private to it).
    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Back {
        cluster: BackCluster,
        ssh: serde_json::Value,
        hosts: Vec<BackHost>,
    }
    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct BackCluster {
        name: String,
        kubernetes_version: String,
    }
    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct BackHost {
        name: String,
        address: String,
        internal_address: String,
        role: String,
        ssh: BackSsh,
    }
    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct BackSsh {
        user: String,
        port: u16,
        identity_file: String,
    }

    /// Values from a hostile `vagrant ssh-config` (or Vagrantfile) come back from the YAML parser
    /// exactly as they went in: no injected keys, hosts, anchors or documents.
    #[test]
    fn hostile_values_round_trip_through_the_yaml_parser() {
        let hostile = [
            "cp1\nrole: control-plane",
            "x\": y",
            "a: b",
            "&anchor x",
            "*alias",
            "- item",
            "---",
            "...",
            "#comment",
            "x #comment",
            "'single'",
            "\"double\"",
            "{flow: map}",
            "[flow, seq]",
            "|e",
            "r.io|;s|.*|echo\\x20x>>/tmp/p|e;#",
            "$(id)",
            "`id`",
            "a;b",
            "line\nbreak",
            "cr\rhere",
            "nul\0here",
            "esc\x1bhere",
            "tab\there",
            "sep\u{2028}here",
            "nel\u{85}here",
            "null",
            "~",
            "true",
            "0x1f",
            "1e3",
            "",
            " leading space",
            "trailing space ",
            "%TAG",
            "@at",
            "!tag x",
            "? key",
        ];
        for v in hostile {
            let hosts = vec![SshHost {
                name: v.to_string(),
                host_name: v.to_string(),
                user: v.to_string(),
                port: 2222,
                identity_file: v.to_string(),
            }];
            let o = Options {
                cluster_name: v.to_string(),
                version: v.to_string(),
                control_plane: None,
                ips: vec![(v.to_string(), v.to_string())],
                private_network: None,
            };
            let y = render(&hosts, &o).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            let back: Back =
                serde_saphyr::from_str(&y).unwrap_or_else(|e| panic!("{v:?}: {e}\n{y}"));
            assert_eq!(back.cluster.name, v, "{y}");
            assert_eq!(back.cluster.kubernetes_version, v, "{y}");
            assert_eq!(back.hosts.len(), 1, "{y}");
            let h = &back.hosts[0];
            assert_eq!(
                (
                    h.name.as_str(),
                    h.address.as_str(),
                    h.internal_address.as_str()
                ),
                (v, v, v),
                "{y}"
            );
            assert_eq!(h.role, "control-plane", "{y}");
            let user = if v.is_empty() { "vagrant" } else { v };
            assert_eq!(
                (
                    h.ssh.user.as_str(),
                    h.ssh.port,
                    h.ssh.identity_file.as_str()
                ),
                (user, 2222, v),
                "{y}"
            );
            assert_eq!(back.ssh["hostKeyPolicy"], "accept-new", "{y}");
        }
    }
}
