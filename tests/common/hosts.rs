//! What a lab host looks like from outside: a digest of its mutable state, the lab's call log.

use super::lab::Lab;

/// A digest of the host's mutable state: files under /etc, /var/lib and /opt (without the
/// lab's own bookkeeping), dpkg status and holds, unit states, images, hostname, sysctls, swaps.
pub fn digest(lab: &Lab, k: usize) -> String {
    hash_of(&listing(lab, k))
}

fn hash_of(l: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&l, &mut h);
    format!(
        "{:016x} ({} lines)",
        std::hash::Hasher::finish(&h),
        l.lines().count()
    )
}

/// The lines `digest` hashes, for naming what changed: `changed_lines(before, after)`.
pub fn listing(lab: &Lab, k: usize) -> String {
    lab.sh(
        k,
        "{ hostname; cat /proc/swaps; sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables 2>&1; \
           lsmod 2>/dev/null | awk '{print $1}' | sort; apt-mark showhold; dpkg-query -W 2>&1; \
           systemctl is-enabled kubelet containerd 2>&1; systemctl is-active kubelet containerd 2>&1; \
           find /etc /var/lib /opt -xdev \\( -type f -o -type l \\) ! -path '/var/lib/kubestrap-lab/*' \
             ! -path '/var/lib/dpkg/lock*' ! -path '/var/lib/apt/lists/lock' -print0 2>/dev/null \
             | sort -z | xargs -0 sha256sum 2>&1; \
           find /etc /var/lib /opt -xdev -printf '%p %m %u\\n' 2>/dev/null | grep -v '^/var/lib/kubestrap-lab' | sort; \
         }",
    )
}

/// Lines only in `a` (-) or only in `b` (+).
pub fn changed_lines(a: &str, b: &str) -> Vec<String> {
    let (sa, sb): (
        std::collections::BTreeSet<&str>,
        std::collections::BTreeSet<&str>,
    ) = (a.lines().collect(), b.lines().collect());
    let mut out: Vec<String> = sa.difference(&sb).map(|l| format!("- {l}")).collect();
    out.extend(sb.difference(&sa).map(|l| format!("+ {l}")));
    out
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
/// runtime its state) for some seconds after `up`: the CNI config is there (nodes), then two
/// equal listings 3 s apart (at most ~45 s).
pub fn settled_digest(lab: &Lab, k: usize) -> String {
    settled_listing(lab, k).1
}

/// `listing` and `digest` once the host has settled (see `settled_digest`).
pub fn settled_listing(lab: &Lab, k: usize) -> (String, String) {
    // A node's CNI config appears within a heartbeat or two of the pod network (as on a real
    // node, where the flannel pod writes it); the API's record of it changes with it.
    lab.sh(
        k,
        "[ -f /etc/kubernetes/kubelet.conf ] || exit 0; i=0; \
         while [ ! -f /etc/cni/net.d/10-flannel.conflist ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done",
    );
    let mut last = listing(lab, k);
    for _ in 0..15 {
        std::thread::sleep(std::time::Duration::from_secs(3));
        let now = listing(lab, k);
        if now == last {
            let d = hash_of(&now);
            return (now, d);
        }
        last = now;
    }
    panic!("host {k} did not settle: its state still changes")
}
