use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = dialerd::cli::Cli::parse();
    match dialerd::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dialerd: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
