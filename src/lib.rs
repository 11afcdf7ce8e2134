//! kubestrap: build a kubeadm Kubernetes cluster over SSH from one inventory file.
//!
//! `main` parses the command line (`cli`), `app` loads the inventory (`inventory`), derives the
//! plan (`plan`) and runs the phases in `cluster` over SSH sessions (`ssh`), rendering `templates`,
//! verifying tokens and CA pins (`pki`) and reporting through `progress`.
/// `println!`/`eprintln!` that never panic: with the output closed (`kubestrap check | head`),
/// the run goes on and keeps its exit code; only the text is lost.
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout().lock(), $($t)*);
    }};
}
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {{
        use ::std::io::Write as _;
        let mut o = ::std::io::stdout().lock();
        let _ = ::std::write!(o, $($t)*);
        let _ = o.flush();
    }};
}
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr().lock(), $($t)*);
    }};
}

pub mod app;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod inventory;
pub mod kubeconfig_merge;
pub mod pki;
pub mod plan;
pub mod progress;
pub mod redact;
pub mod ssh;
pub mod state;
pub mod stats;
pub mod templates;
pub mod vagrant;
