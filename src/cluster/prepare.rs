//! Phase 3: prepare every host in parallel. Each step is one remote script that rewrites a file
//! only when its content differs and reports what it changed.

use std::sync::Arc;

use minijinja::context;

use super::{run_script, Run, StepError};
use crate::plan::{Plan, Runtime};
use crate::ssh::Session;

fn hosts_ctx(plan: &Plan) -> Vec<minijinja::Value> {
    plan.nodes
        .iter()
        .map(
            |n| context! { name => n.name.clone(), internal_address => n.internal_address.clone() },
        )
        .collect()
}

pub async fn run(run: &mut Run) {
    let plan = Arc::new(run.plan.clone());

    let p = plan.clone();
    run.each(
        "system",
        |_| true,
        |_, node, sess| {
            let p = p.clone();
            async move {
                let script = crate::templates::script(
                "scripts/system.sh.j2",
                context! { host => context!{ name => node.name.clone() }, hosts => hosts_ctx(&p) },
            )
            .map_err(|e| StepError::new("system", e.to_string()))?;
                Ok(run_script(&sess, "system", &script, p.timeouts.command)
                    .await?
                    .0)
            }
        },
    )
    .await;

    let p = plan.clone();
    run.each(
        "packages",
        |_| true,
        |_, _node, sess| {
            let p = p.clone();
            async move {
                let script = crate::templates::script(
                    "scripts/packages.sh.j2",
                    context! {
                        package_repository => p.package_repository.clone(),
                        version => p.version.clone(),
                        runtime => runtime_name(p.runtime),
                    },
                )
                .map_err(|e| StepError::new("packages", e.to_string()))?;
                Ok(run_script(&sess, "packages", &script, p.timeouts.packages)
                    .await?
                    .0)
            }
        },
    )
    .await;

    let p = plan.clone();
    run.each(
        "runtime",
        |_| true,
        |_, _node, sess| {
            let p = p.clone();
            async move {
                let name = match p.runtime {
                    Runtime::Containerd => "scripts/runtime-containerd.sh.j2",
                    Runtime::Docker => "scripts/runtime-docker.sh.j2",
                };
                let script = crate::templates::script(
                    name,
                    context! { pause_image => p.pause_image.clone() },
                )
                .map_err(|e| StepError::new("runtime", e.to_string()))?;
                Ok(run_script(&sess, "runtime", &script, p.timeouts.command)
                    .await?
                    .0)
            }
        },
    )
    .await;

    if !plan.preload.is_empty() {
        let p = plan.clone();
        run.each(
            "images",
            |_| true,
            |_, _node, sess| {
                let p = p.clone();
                async move { preload(&p, &sess).await }
            },
        )
        .await;
    }
}

pub fn runtime_name(r: Runtime) -> &'static str {
    match r {
        Runtime::Containerd => "containerd",
        Runtime::Docker => "docker",
    }
}

/// Upload each bundle unless the host already has the same bytes, then import it once.
async fn preload(p: &Plan, sess: &Session) -> Result<Vec<String>, StepError> {
    let mut changes = Vec::new();
    for img in &p.preload {
        let q = crate::ssh::shell_quote(&img.remote);
        let have = sess
            .root_with_stdin(
                &format!("sha256sum {q} 2>/dev/null | cut -d' ' -f1"),
                b"",
                p.timeouts.command,
            )
            .await
            .map_err(|e| StepError::from_ssh("images", e))?;
        if have.stdout.trim() != img.sha256 {
            let data = tokio::fs::read(&img.local).await.map_err(|e| {
                StepError::new(
                    "images",
                    format!("cannot read {}: {e}", img.local.display()),
                )
            })?;
            sess.put_file(&img.remote, &data, 0o644, p.timeouts.images)
                .await
                .map_err(|e| StepError::from_ssh("images", e))?;
            changes.push(format!("uploaded {} ({} bytes)", img.remote, img.size));
        }
        let script = crate::templates::script(
            "scripts/images.sh.j2",
            context! { path => img.remote.clone(), sha256 => img.sha256.clone(), runtime => runtime_name(p.runtime) },
        )
        .map_err(|e| StepError::new("images", e.to_string()))?;
        changes.extend(
            run_script(sess, "images", &script, p.timeouts.images)
                .await?
                .0,
        );
    }
    Ok(changes)
}
