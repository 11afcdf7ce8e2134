//! `kubestrap kubeconfig -i FILE`: print the admin kubeconfig (fetched when missing).

use crate::app::{close_all, load, EXIT_FAILED, EXIT_INPUT, EXIT_OK};
use crate::cli::Common;
use crate::cluster::{self, Outcome};
use crate::plan::Role;

pub async fn kubeconfig(c: Common) -> i32 {
    let mut run = match load(
        &c,
        Some(&|n: &crate::plan::Node| n.role == Role::ControlPlane),
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let path = cluster::kubeconfig::path(&run.plan);
    match crate::state::read_string(&path) {
        Ok(text) => {
            run.progress.finish();
            crate::out!("{text}");
            return EXIT_OK;
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
        Some(text) => {
            crate::out!("{text}");
            EXIT_OK
        }
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
