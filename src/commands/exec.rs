//! `kubestrap exec -i FILE -- CMD`: run a command on hosts in parallel.

use crate::app::{close_all, load, EXIT_FAILED, EXIT_INPUT, EXIT_OK};
use crate::cli::ExecArgs;
use crate::cluster::phase::Step;
use crate::cluster::{self, Outcome};

pub async fn exec(a: ExecArgs) -> i32 {
    let hosts = a.hosts.clone();
    let role = a.role.clone();
    let filter = move |n: &crate::plan::Node| {
        (hosts.is_empty() || hosts.contains(&n.name))
            && role.as_deref().is_none_or(|r| r == n.role.as_str())
    };
    let mut run = match load(&a.common, Some(&filter)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if run.hosts.is_empty() {
        crate::errln!(
            "error: no host matches --host {:?} --role {:?}",
            a.hosts,
            a.role
        );
        return EXIT_INPUT;
    }
    cluster::connect::run(&mut run).await;
    let cmd = a
        .command
        .iter()
        .map(|s| crate::ssh::shell_quote(s))
        .collect::<Vec<_>>()
        .join(" ");
    let timeout = run.plan.timeouts.command;
    let outputs: std::sync::Mutex<Vec<(String, crate::ssh::Output)>> = Default::default();
    run.each(
        Step::Exec,
        |_| true,
        |_, node, sess| {
            let cmd = cmd.clone();
            let outputs = &outputs;
            async move {
                let out = sess
                    .exec_user(&cmd, None, timeout)
                    .await
                    .map_err(|e| cluster::StepError::from_ssh(Step::Exec, e))?;
                let code = out.code;
                outputs.lock().unwrap().push((node.name.clone(), out));
                if code == Some(0) {
                    Ok(vec![])
                } else {
                    Err(cluster::StepError::new(
                        Step::Exec,
                        format!(
                            "exit code {}",
                            code.map(|c| c.to_string()).unwrap_or("?".into())
                        ),
                    ))
                }
            }
        },
    )
    .await;
    close_all(&run).await;
    run.progress.finish();
    let mut outputs = outputs.into_inner().unwrap();
    outputs.sort_by(|a, b| a.0.cmp(&b.0));
    for (host, out) in &outputs {
        for l in out.stdout.lines() {
            crate::outln!("{host}: {l}");
        }
        for l in out.stderr.lines() {
            crate::errln!("{host}: {l}");
        }
    }
    let mut code = EXIT_OK;
    for h in &run.hosts {
        if let Outcome::Failed(e) = &h.outcome {
            crate::errln!("{}: failed: {}", h.node.name, e.message);
            code = EXIT_FAILED;
        }
    }
    code
}
