//! kubestrap: build a kubeadm Kubernetes cluster over SSH from one inventory file.
pub mod redact;
pub mod ssh;
