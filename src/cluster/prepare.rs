//! Phase 3: prepare every host in parallel. Each step is one remote script that rewrites a file
//! only when its content differs and reports what it changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use minijinja::context;

use super::{run_script, Run, StepError};
use crate::plan::{Node, Plan, Runtime};
use crate::ssh::Session;

fn hosts_ctx(plan: &Plan) -> Vec<minijinja::Value> {
    plan.nodes
        .iter()
        .map(
            |n| context! { name => n.name.clone(), internal_address => n.internal_address.clone() },
        )
        .collect()
}

/// One rendered script per host for `step`; `ctx` gives a host's template context. Scripts are
/// rendered on the console before any host starts, so a template error names the template.
async fn script_step(
    run: &mut Run,
    step: &'static str,
    template: &'static str,
    timeout: Duration,
    ctx: impl Fn(&Node) -> minijinja::Value,
) {
    let scripts: Arc<HashMap<String, Result<String, String>>> = Arc::new(
        run.plan
            .nodes
            .iter()
            .map(|n| {
                let s = crate::templates::script(template, ctx(n)).map_err(|e| e.to_string());
                (n.name.clone(), s)
            })
            .collect(),
    );
    run.each(
        step,
        |_| true,
        |_, node, sess| {
            let scripts = scripts.clone();
            async move {
                let script = scripts[&node.name]
                    .clone()
                    .map_err(|e| StepError::new(step, e))?;
                Ok(run_script(&sess, step, &script, timeout).await?.0)
            }
        },
    )
    .await;
}

pub async fn run(run: &mut Run) {
    let plan = Arc::new(run.plan.clone());
    let t = plan.timeouts.clone();

    let hosts = hosts_ctx(&plan);
    script_step(run, "system", "scripts/system.sh.j2", t.command, |n| {
        context! { host => context!{ name => n.name.clone() }, hosts => hosts.clone() }
    })
    .await;

    let packages = context! {
        package_repository => plan.package_repository.clone(),
        version => plan.version.clone(),
        runtime => plan.runtime.as_str(),
    };
    script_step(
        run,
        "packages",
        "scripts/packages.sh.j2",
        t.packages,
        |_| packages.clone(),
    )
    .await;

    let runtime_template = match plan.runtime {
        Runtime::Containerd => "scripts/runtime-containerd.sh.j2",
        Runtime::Docker => "scripts/runtime-docker.sh.j2",
    };
    let runtime = context! { pause_image => plan.pause_image.clone() };
    script_step(run, "runtime", runtime_template, t.command, |_| {
        runtime.clone()
    })
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
            context! { path => img.remote.clone(), sha256 => img.sha256.clone(), runtime => p.runtime.as_str() },
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
