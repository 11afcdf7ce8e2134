use clap::Parser;

fn main() {
    let cli = kubestrap::cli::Cli::parse();
    std::process::exit(kubestrap::app::main(cli));
}
