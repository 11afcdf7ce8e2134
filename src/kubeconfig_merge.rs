//! `kubestrap kubeconfig --merge`: put this cluster's admin credentials into the user's kubeconfig
//! (`$KUBECONFIG`'s first file, else `~/.kube/config`) as kubectl would, keeping every other
//! cluster, user and context. kubeadm names them all `kubernetes` / `kubernetes-admin`, so two
//! clusters would collide: they are renamed after the context (default: the cluster name).
//! The old file is kept as `<file>.kubestrap-backup`; both are 0600.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

#[derive(Debug)]
pub struct Merged {
    pub path: PathBuf,
    pub context: String,
    pub backup: Option<PathBuf>,
}

/// Where kubectl reads its configuration: the first entry of `$KUBECONFIG`, else ~/.kube/config.
pub fn target() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KUBECONFIG") {
        if let Some(first) = std::env::split_paths(&k).find(|p| !p.as_os_str().is_empty()) {
            return Some(first);
        }
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config"))
}

fn parse(text: &str, what: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    let v: Value =
        serde_saphyr::from_str(text).map_err(|e| format!("{what} is not valid YAML: {e}"))?;
    if !v.is_object() {
        return Err(format!("{what} is not a kubeconfig (not a mapping)"));
    }
    Ok(v)
}

fn one<'a>(v: &'a Value, list: &str) -> Result<&'a Value, String> {
    match v[list].as_array().map(Vec::as_slice) {
        Some([x]) => Ok(x),
        _ => Err(format!(
            "the admin kubeconfig should have exactly one entry in {list}"
        )),
    }
}

/// Replace (by name) or add `entry` in `doc[list]`.
fn upsert(doc: &mut Value, list: &str, entry: Value) {
    let name = entry["name"].clone();
    let arr = doc
        .as_object_mut()
        .unwrap()
        .entry(list)
        .or_insert_with(|| json!([]));
    if !arr.is_array() {
        *arr = json!([]);
    }
    let arr = arr.as_array_mut().unwrap();
    match arr.iter_mut().find(|e| e["name"] == name) {
        Some(e) => *e = entry,
        None => arr.push(entry),
    }
}

/// The merged document: `existing` with `admin`'s cluster, user and context under `context`'s
/// names, and `current-context` set to it.
pub fn merge(existing: &str, admin: &str, context: &str) -> Result<String, String> {
    let mut doc = parse(existing, "the existing kubeconfig")?;
    let admin = parse(admin, "the admin kubeconfig")?;
    let cluster = one(&admin, "clusters")?;
    let user = one(&admin, "users")?;
    let (cluster_name, user_name) = (context.to_string(), format!("{context}-admin"));
    let obj = doc.as_object_mut().unwrap();
    obj.entry("apiVersion").or_insert_with(|| json!("v1"));
    obj.entry("kind").or_insert_with(|| json!("Config"));
    obj.entry("preferences").or_insert_with(|| json!({}));
    upsert(
        &mut doc,
        "clusters",
        json!({"name": cluster_name, "cluster": cluster["cluster"]}),
    );
    upsert(
        &mut doc,
        "users",
        json!({"name": user_name, "user": user["user"]}),
    );
    upsert(
        &mut doc,
        "contexts",
        json!({"name": context, "context": {"cluster": cluster_name, "user": user_name}}),
    );
    doc["current-context"] = json!(context);
    serde_saphyr::to_string(&doc).map_err(|e| format!("cannot write the merged kubeconfig: {e}"))
}

/// Merge into `path` (made with its folder if missing), keeping a backup of what was there.
pub fn merge_into(path: &Path, admin: &str, context: &str) -> Result<Merged, String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let merged = merge(existing.as_deref().unwrap_or(""), admin, context)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut backup = None;
    if let Some(old) = &existing {
        let b = PathBuf::from(format!("{}.kubestrap-backup", path.display()));
        let _ = std::fs::remove_file(&b);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&b)
            .map_err(|e| format!("cannot write the backup {}: {e}", b.display()))?;
        std::io::Write::write_all(&mut f, old.as_bytes())
            .map_err(|e| format!("cannot write the backup {}: {e}", b.display()))?;
        backup = Some(b);
    }
    let tmp = dir.join(format!(".kubeconfig.kubestrap.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    std::io::Write::write_all(&mut f, merged.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    drop(f);
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    Ok(Merged {
        path: path.to_path_buf(),
        context: context.to_string(),
        backup,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: https://10.0.0.1:6443\n    certificate-authority-data: Q0E=\ncontexts:\n- name: kubernetes-admin@kubernetes\n  context:\n    cluster: kubernetes\n    user: kubernetes-admin\ncurrent-context: kubernetes-admin@kubernetes\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n";

    #[test]
    fn merging_keeps_other_entries_and_replaces_its_own() {
        let other = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://prod:6443\ncontexts:\n- name: prod\n  context:\n    cluster: prod\n    user: prod\ncurrent-context: prod\nusers:\n- name: prod\n  user:\n    token: abc\n";
        let m = merge(other, ADMIN, "lab").unwrap();
        let v: Value = serde_saphyr::from_str(&m).unwrap();
        assert_eq!(v["current-context"], "lab");
        let names = |l: &str| -> Vec<String> {
            v[l].as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names("clusters"), ["prod", "lab"]);
        assert_eq!(names("users"), ["prod", "lab-admin"]);
        assert_eq!(names("contexts"), ["prod", "lab"]);
        assert_eq!(
            v["clusters"][1]["cluster"]["server"],
            "https://10.0.0.1:6443"
        );
        assert_eq!(v["users"][1]["user"]["client-key-data"], "S0VZ");
        // Merging again replaces, never duplicates.
        let again = merge(&m, &ADMIN.replace("10.0.0.1", "10.0.0.2"), "lab").unwrap();
        let v: Value = serde_saphyr::from_str(&again).unwrap();
        assert_eq!(v["clusters"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["clusters"][1]["cluster"]["server"],
            "https://10.0.0.2:6443"
        );
    }

    #[test]
    fn a_broken_existing_file_is_an_error_not_overwritten() {
        assert!(merge("- a list", ADMIN, "lab")
            .unwrap_err()
            .contains("not a kubeconfig"));
        assert!(merge("a: [", ADMIN, "lab")
            .unwrap_err()
            .contains("not valid YAML"));
    }
}
