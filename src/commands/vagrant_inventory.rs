//! `kubestrap vagrant-inventory`: `vagrant ssh-config` on stdin to an inventory on stdout.

use crate::app::{EXIT_INPUT, EXIT_OK};
use crate::cli::VagrantArgs;

pub fn vagrant_inventory(a: VagrantArgs) -> i32 {
    use std::io::Read;
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        crate::errln!("error: cannot read stdin: {e}");
        return EXIT_INPUT;
    }
    let mut ips = Vec::new();
    for ip in &a.ips {
        match ip.split_once('=') {
            Some((n, v)) => ips.push((n.to_string(), v.to_string())),
            None => {
                crate::errln!("error: --ip {ip}: expected NAME=ADDR");
                return EXIT_INPUT;
            }
        }
    }
    let hosts = crate::vagrant::parse_ssh_config(&input);
    let o = crate::vagrant::Options {
        cluster_name: a.name,
        version: a.version,
        control_plane: a.control_plane,
        ips,
        private_network: a.private_network,
    };
    match crate::vagrant::render(&hosts, &o) {
        Ok(y) => {
            crate::out!("{y}");
            EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            EXIT_INPUT
        }
    }
}
