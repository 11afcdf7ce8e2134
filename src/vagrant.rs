//! `kubestrap vagrant-inventory`: turn `vagrant ssh-config` output into an inventory.
//!
//! Vagrant's SSH goes to 127.0.0.1 through a forwarded port, and every VM has the NAT address
//! 10.0.2.15, so the node IP must come from the private network: `--ip NAME=ADDR` or
//! `--private-network FIRST` (host i gets FIRST + i, as in the shipped Vagrantfile).

use std::fmt::Write;
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
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Made by `kubestrap vagrant-inventory` from `vagrant ssh-config`."
    );
    let _ = writeln!(
        out,
        "cluster:\n  name: {}\n  kubernetesVersion: \"{}\"",
        o.cluster_name, o.version
    );
    let _ = writeln!(out, "ssh:\n  # Vagrant rebuilds VMs on the same ports: known keys live beside the state, and a\n  # rebuilt VM is refused with the line to remove.\n  hostKeyPolicy: accept-new\n  knownHostsFile: .kubestrap/known_hosts");
    let _ = writeln!(out, "hosts:");
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
        let role = if h.name == cp {
            "control-plane"
        } else {
            "worker"
        };
        let _ = writeln!(
            out,
            "  - name: {}\n    address: {}\n    internalAddress: {ip}\n    role: {role}",
            h.name, h.host_name
        );
        let _ = writeln!(
            out,
            "    ssh: {{ user: {}, port: {}, identityFile: \"{}\" }}",
            if h.user.is_empty() {
                "vagrant"
            } else {
                &h.user
            },
            h.port,
            h.identity_file
        );
    }
    Ok(out)
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
        assert!(y.contains("internalAddress: 192.168.56.11"), "{y}");
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
}
