//! `kubestrap kubeconfig -i FILE [--merge [--context NAME]]`: print the admin kubeconfig
//! (fetched when missing), or merge it into the user's kubeconfig.

use crate::app::{close_all, load, EXIT_FAILED, EXIT_INPUT, EXIT_OK};
use crate::cli::KubeconfigArgs;
use crate::cluster::{self, Outcome};
use crate::plan::Role;

pub async fn kubeconfig(a: KubeconfigArgs) -> i32 {
    let c = &a.common;
    if let Some(ctx) = &a.context {
        if ctx.is_empty()
            || !ctx
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._@:".contains(&b))
        {
            crate::errln!("error: --context {ctx:?}: use letters, digits and - . _ @ : only");
            return EXIT_INPUT;
        }
    }
    let out = |text: &str, cluster: &str| -> i32 {
        if !a.merge {
            crate::out!("{text}");
            return EXIT_OK;
        }
        let ctx = a.context.clone().unwrap_or_else(|| cluster.to_string());
        let Some(path) = crate::kubeconfig_merge::target() else {
            crate::errln!("error: neither KUBECONFIG nor HOME is set: nowhere to merge into");
            return EXIT_INPUT;
        };
        match crate::kubeconfig_merge::merge_into(&path, text, &ctx) {
            Ok(m) => {
                crate::outln!(
                    "Merged context {} into {}{}; it is the current context now (kubectl config use-context to switch).",
                    m.context,
                    m.path.display(),
                    m.backup.map(|b| format!(" (the previous file is kept as {})", b.display())).unwrap_or_default()
                );
                EXIT_OK
            }
            Err(e) => {
                crate::errln!("error: {e}");
                EXIT_FAILED
            }
        }
    };
    let mut run = match load(
        c,
        Some(&|n: &crate::plan::Node| n.role == Role::ControlPlane),
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let path = cluster::kubeconfig::path(&run.plan);
    match crate::state::read_string(&path) {
        Ok(text) => {
            run.progress.finish();
            return out(&text, &run.plan.cluster_name);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            run.progress.finish();
            crate::errln!(
                "error: cannot read {}: {e} (kubestrap never reads state files through a symlink); remove it and run `kubestrap kubeconfig` again to fetch a fresh one",
                path.display()
            );
            return EXIT_INPUT;
        }
    }
    cluster::connect::run(&mut run).await;
    let got = cluster::kubeconfig::fetch(&mut run).await;
    close_all(&run).await;
    run.progress.finish();
    match got.and_then(|p| crate::state::read_string(&p).ok()) {
        Some(text) => out(&text, &run.plan.cluster_name),
        None => {
            for h in &run.hosts {
                if let Outcome::Failed(e) = &h.outcome {
                    crate::errln!("error: {}: {}: {}", h.node.name, e.step, e.message);
                }
            }
            crate::errln!("error: no kubeconfig; has `kubestrap up` finished on this cluster?");
            EXIT_FAILED
        }
    }
}
