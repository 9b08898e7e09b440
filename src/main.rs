#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hookd::cli::main()
}
