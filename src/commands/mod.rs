//! One command per file; what they share (loading a run, locks, the summary) is in `app`.

pub mod check;
pub mod completions;
pub mod exec;
pub mod kubeconfig;
pub mod plan;
pub mod reset;
pub mod up;
pub mod upgrade;
pub mod vagrant_inventory;
