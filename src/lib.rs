//! kubestrap: build a kubeadm Kubernetes cluster over SSH from one inventory file.
//!
//! `main` parses the command line (`cli`), `app` loads the inventory (`inventory`), derives the
//! plan (`plan`) and runs the phases in `cluster` over SSH sessions (`ssh`), rendering `templates`,
//! verifying tokens and CA pins (`pki`) and reporting through `progress`.
pub mod app;
pub mod cli;
pub mod cluster;
pub mod inventory;
pub mod pki;
pub mod plan;
pub mod progress;
pub mod redact;
pub mod ssh;
pub mod state;
pub mod stats;
pub mod templates;
pub mod vagrant;
