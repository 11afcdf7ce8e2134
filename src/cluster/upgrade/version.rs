//! Kubernetes release versions (`v1.31.2`, `1.31.2-1.1` from a package) and kubeadm's upgrade
//! policy (cmd/kubeadm/app/phases/upgrade/policy.go): one minor at a time, no downgrade.

use std::cmp::Ordering;

pub use crate::inventory::Version;

/// The release in a version string from the API (`v1.31.2`, `v1.31.2+k3s1`, `v1.32.0-rc.1`) or a
/// package (`1.31.2-1.1`): the inventory's `Version` of its `major.minor.patch` part.
pub fn release(s: &str) -> Option<Version> {
    Version::parse(s.trim().split(['-', '+']).next()?)
}

/// What upgrading the cluster from `running` to `target` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// Already there: nothing to do for the control plane (nodes may still lag).
    Same,
    /// A patch release of the same minor.
    Patch,
    /// The next minor.
    Minor,
    /// Refused, with the reason to show.
    Refused(String),
}

/// kubeadm's rules, in the words a user needs: which hop is allowed and what to do otherwise.
pub fn path(running: Version, target: Version) -> Path {
    match target.cmp(&running) {
        Ordering::Equal => Path::Same,
        Ordering::Less => Path::Refused(format!(
            "the cluster runs v{running} and the inventory says v{target}: kubeadm cannot downgrade a cluster; \
             set kubernetesVersion back to \"{running}\""
        )),
        Ordering::Greater if target.major != running.major => Path::Refused(format!(
            "the cluster runs v{running} and the inventory says v{target}: a major version change is not supported"
        )),
        Ordering::Greater if target.minor == running.minor => Path::Patch,
        Ordering::Greater if target.minor == running.minor + 1 => Path::Minor,
        Ordering::Greater => {
            let hops: Vec<String> = (running.minor + 1..target.minor)
                .map(|m| format!("v{}.{m}.x", running.major))
                .collect();
            Path::Refused(format!(
                "the cluster runs v{running} and the inventory says v{target}: kubeadm upgrades one minor version at a time \
                 (\"Skipping MINOR versions when upgrading is unsupported\"); upgrade through {} first: set kubernetesVersion \
                 to the newest {} patch and its packageRepository, run `kubestrap upgrade`, then go on to v{target}",
                hops.join(", then "),
                hops[0].trim_end_matches(".x")
            ))
        }
    }
}

/// The package repository of `target`'s minor, when `repo` is laid out like pkgs.k8s.io
/// (`.../core:/stable:/v1.31/deb/`) for another minor. None when it already names the target's
/// minor or has no minor in it (a flat mirror: it is taken as it is).
pub fn repository_for(repo: &str, target: Version) -> Option<String> {
    let re = regex::Regex::new(r"/v(\d+)\.(\d+)/").ok()?;
    let m = re.captures(repo)?;
    let (maj, min): (u32, u32) = (m[1].parse().ok()?, m[2].parse().ok()?);
    if (maj, min) == (target.major, target.minor) {
        return None;
    }
    let whole = m.get(0)?;
    Some(format!(
        "{}/v{}.{}/{}",
        &repo[..whole.start()],
        target.major,
        target.minor,
        &repo[whole.end()..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        release(s).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn versions_parse_from_the_api_and_from_packages() {
        assert_eq!(
            v("v1.31.2"),
            Version {
                major: 1,
                minor: 31,
                patch: 2
            }
        );
        assert_eq!(v("1.32.1-1.1"), v("v1.32.1"));
        assert_eq!(v("v1.32.0-rc.1"), v("1.32.0"));
        for bad in ["", "v1.31", "1.31.2.3", "x1.2.3", "1..2", "v1.31.-1"] {
            assert_eq!(release(bad), None, "{bad:?}");
        }
        assert!(v("1.31.10") > v("1.31.9"));
        assert_eq!(v("1.31.2").with_v(), "v1.31.2");
    }

    #[test]
    fn one_minor_at_a_time_and_never_down() {
        assert_eq!(path(v("1.31.2"), v("1.31.2")), Path::Same);
        assert_eq!(path(v("1.31.2"), v("1.31.5")), Path::Patch);
        assert_eq!(path(v("1.31.2"), v("1.32.0")), Path::Minor);
        match path(v("1.30.4"), v("1.32.1")) {
            Path::Refused(m) => {
                assert!(m.contains("one minor version at a time"), "{m}");
                assert!(m.contains("upgrade through v1.31.x first"), "{m}");
                assert!(m.contains("newest v1.31 patch"), "{m}");
            }
            p => panic!("{p:?}"),
        }
        match path(v("1.30.4"), v("1.33.0")) {
            Path::Refused(m) => assert!(m.contains("v1.31.x, then v1.32.x"), "{m}"),
            p => panic!("{p:?}"),
        }
        match path(v("1.32.1"), v("1.31.2")) {
            Path::Refused(m) => {
                assert!(m.contains("cannot downgrade"), "{m}");
                assert!(m.contains("back to \"1.32.1\""), "{m}");
            }
            p => panic!("{p:?}"),
        }
        // A patch downgrade is a downgrade too.
        assert!(matches!(path(v("1.32.1"), v("1.32.0")), Path::Refused(_)));
    }

    #[test]
    fn the_repository_follows_the_minor_like_pkgs_k8s_io() {
        let t = v("1.32.1");
        assert_eq!(
            repository_for("https://pkgs.k8s.io/core:/stable:/v1.31/deb/", t).as_deref(),
            Some("https://pkgs.k8s.io/core:/stable:/v1.32/deb/")
        );
        assert_eq!(
            repository_for("https://pkgs.k8s.io/core:/stable:/v1.32/deb/", t),
            None
        );
        assert_eq!(repository_for("http://mirror.example/k8s/", t), None);
        assert_eq!(
            repository_for("http://10.77.0.1:8080/k8s/core:/stable:/v1.31/deb/", t).as_deref(),
            Some("http://10.77.0.1:8080/k8s/core:/stable:/v1.32/deb/")
        );
    }
}
