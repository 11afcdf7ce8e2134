//! What a lab host looks like from outside: a digest of its mutable state, the lab's call log.

use super::lab::Lab;

/// A digest of the host's mutable state: files under /etc, /var/lib and /opt (without the
/// lab's own bookkeeping), dpkg status and holds, unit states, images, hostname, sysctls, swaps.
pub fn digest(lab: &Lab, k: usize) -> String {
    lab.sh(
        k,
        "{ hostname; cat /proc/swaps; sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables 2>&1; \
           lsmod 2>/dev/null | awk '{print $1}' | sort; apt-mark showhold; dpkg-query -W 2>&1; \
           systemctl is-enabled kubelet containerd 2>&1; systemctl is-active kubelet containerd 2>&1; \
           find /etc /var/lib /opt -xdev \\( -type f -o -type l \\) ! -path '/var/lib/kubestrap-lab/*' \
             ! -path '/var/lib/dpkg/lock*' ! -path '/var/lib/apt/lists/lock' -print0 2>/dev/null \
             | sort -z | xargs -0 sha256sum 2>&1; \
           find /etc /var/lib /opt -xdev -printf '%p %m %u\\n' 2>/dev/null | grep -v '^/var/lib/kubestrap-lab' | sort; \
         } | sha256sum",
    )
}

/// The lab's record of the commands run on host K (one line each).
pub fn calls(lab: &Lab, k: usize) -> Vec<String> {
    lab.sh(
        k,
        "cat /var/log/kubestrap-lab/calls.log 2>/dev/null || true",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// `digest` once the host has settled: a node agent still writes its CNI config (and a restarted
/// runtime its state) for some seconds after `up`; two equal digests 3 s apart (at most ~45 s).
pub fn settled_digest(lab: &Lab, k: usize) -> String {
    let mut last = digest(lab, k);
    for _ in 0..15 {
        std::thread::sleep(std::time::Duration::from_secs(3));
        let now = digest(lab, k);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("host {k} did not settle: its state digest still changes")
}
