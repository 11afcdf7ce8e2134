//! `kubestrap check -i FILE`: connect and run the preflight; change nothing.

use serde_json::json;

use crate::app::{finish, load};
use crate::cli::Common;
use crate::cluster::{self, preflight, Outcome};
use crate::progress::OutputFormat;

pub async fn check(c: Common) -> i32 {
    let mut run = match load(&c, None) {
        Ok(r) => r,
        Err(code) => return code,
    };
    // What a reviewer of the inventory should know before running it: where secrets come from.
    match run.progress.format() {
        OutputFormat::Json => run.progress.json(json!({
            "event": "inventory",
            "secrets_from_env": run.plan.secret_envs,
        })),
        OutputFormat::Text => {
            crate::outln!("secrets from environment: {}", run.plan.secrets_summary)
        }
    }
    cluster::connect::run(&mut run).await;
    preflight::gather(&mut run, false).await;
    let findings = preflight::check(&run, false);
    preflight::apply(&mut run, &findings);
    for h in run.hosts.iter_mut() {
        if matches!(h.outcome, Outcome::Pending) {
            h.outcome = Outcome::Ok;
        }
    }
    finish(&run, None, "").await
}
