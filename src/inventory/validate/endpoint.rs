//! `cluster.loadBalancer`: who serves `controlPlaneEndpoint`, decided once the hosts are known.

use std::net::IpAddr;

use super::super::{Host, LoadBalancer};
use super::address::split_host_port;
use super::cluster::ClusterParts;
use super::Ctx;

/// The load balancer for the endpoint: as written, else kube-vip when the endpoint's address is
/// an IP that no host has (a virtual IP someone must hold), else external (a DNS name, or a host's
/// own address). None without an endpoint; `loadBalancer` alone is an error. kube-vip is refused
/// until kubestrap deploys it: accepting it would build a cluster whose endpoint nobody answers.
pub(crate) fn load_balancer(
    ctx: &mut Ctx,
    c: &ClusterParts,
    hosts: &[Host],
) -> Option<LoadBalancer> {
    let Some(ep) = &c.endpoint else {
        if let Some((_, pos)) = c.load_balancer {
            ctx.err(
                pos,
                "cluster.loadBalancer",
                "a load balancer needs `controlPlaneEndpoint` (the address it serves); set one, or remove loadBalancer",
            );
        }
        return None;
    };
    let host = split_host_port(ep).map(|(h, _)| h).unwrap_or_default();
    let ip: Option<IpAddr> = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok();
    let owner = ip.and_then(|ip| {
        hosts
            .iter()
            .find(|h| h.internal_address == ip || h.address.parse::<IpAddr>().ok() == Some(ip))
    });
    let lb = match c.load_balancer {
        Some((lb, _)) => lb,
        None if ip.is_some() && owner.is_none() => LoadBalancer::KubeVip,
        None => LoadBalancer::External,
    };
    if lb == LoadBalancer::KubeVip {
        let (pos, field, why) = match c.load_balancer {
            Some((_, pos)) => (pos, "cluster.loadBalancer", String::new()),
            None => (
                c.endpoint_pos,
                "cluster.controlPlaneEndpoint",
                format!(
                    " ({host} is no host's address, so the load balancer defaults to kube-vip)"
                ),
            ),
        };
        ctx.err(
            pos,
            field,
            format!(
                "kube-vip is not supported yet{why}: nothing would answer at {ep}; if a load balancer of yours serves {ep}, set `loadBalancer: external`, or use the control plane's own address as controlPlaneEndpoint"
            ),
        );
    }
    Some(lb)
}
