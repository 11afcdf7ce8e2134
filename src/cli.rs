//! Command-line types. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::progress::OutputFormat;

/// Build a kubeadm Kubernetes cluster over SSH from one inventory file.
#[derive(Debug, Parser)]
#[command(name = "kubestrap", version = env!("KUBESTRAP_VERSION"), about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log detail on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args)]
pub struct Common {
    /// The inventory file (YAML).
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// How many hosts to work on at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// text: live progress and a summary; json: one JSON event per line on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the cluster, or converge it: a second run changes nothing on a healthy cluster.
    Up(Common),
    /// Connect to every host and run the preflight checks; change nothing.
    Check(Common),
    /// Show what `up` would change on every host and in the cluster, changing nothing.
    /// Exit code 0: no changes; 3: changes pending; 1: a host failed; 2: bad input.
    Plan(Common),
    /// Upgrade the cluster to the inventory's kubernetesVersion, node by node in kubeadm's order:
    /// the first control plane (`kubeadm upgrade apply`), the other control planes one at a time,
    /// then the workers in batches; each node is drained, upgraded and uncordoned.
    Upgrade(UpgradeArgs),
    /// Print the admin kubeconfig (fetched from the control plane if not in the state folder).
    Kubeconfig(KubeconfigArgs),
    /// Take hosts out of the cluster and undo kubeadm on them (the whole cluster when no --host).
    Reset(ResetArgs),
    /// Run a command on hosts in parallel, as the SSH user.
    Exec(ExecArgs),
    /// Turn `vagrant ssh-config` output (on stdin) into an inventory (on stdout).
    VagrantInventory(VagrantArgs),
    /// Print a shell completion script for bash, zsh or fish (the README says where to put it).
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: crate::commands::completions::Shell,
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    pub common: Common,
    /// Merge into your kubeconfig ($KUBECONFIG's first file, else ~/.kube/config) instead of
    /// printing: other clusters and contexts are kept, the old file is backed up, and the new
    /// context becomes current.
    #[arg(long)]
    pub merge: bool,
    /// The context name for --merge (its cluster and user are named after it); default: the
    /// cluster's name.
    #[arg(long, requires = "merge", value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub common: Common,
    /// Workers upgraded at once: a number, or a percentage of the workers to upgrade (at least 1).
    #[arg(long, default_value = "10%", value_name = "N|N%")]
    pub batch: String,
    /// How long `kubectl drain` may take per node before the upgrade stops there.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub drain_timeout: String,
    /// Do not ask for confirmation (required when standard input is not a terminal).
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct VagrantArgs {
    /// Cluster name.
    #[arg(long, default_value = "vagrant")]
    pub name: String,
    /// Kubernetes version.
    #[arg(
        id = "kubernetes_version",
        long = "kubernetes-version",
        default_value = "1.31.2"
    )]
    pub version: String,
    /// The control-plane host (default: the first one).
    #[arg(long)]
    pub control_plane: Option<String>,
    /// A host's private-network address, NAME=ADDR (repeatable).
    #[arg(long = "ip", value_name = "NAME=ADDR")]
    pub ips: Vec<String>,
    /// The first host's private-network address; the next hosts get the following addresses.
    #[arg(long, value_name = "FIRST")]
    pub private_network: Option<std::net::Ipv4Addr>,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub common: Common,
    /// Only these hosts (repeatable); default: every host, workers first, the control plane last.
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Do not ask for confirmation (required when standard input is not a terminal).
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub common: Common,
    /// Only these hosts (repeatable).
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Only hosts with this role.
    #[arg(long, value_parser = ["control-plane", "worker"])]
    pub role: Option<String>,
    /// The command and its arguments (after --).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks (duplicate names, bad defaults), for every subcommand:
    /// they run only in debug builds, where a failure is a panic the first time a user runs it.
    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
