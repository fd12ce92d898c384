//! `palisade-agent`: the node agent.

fn main() -> std::process::ExitCode {
    palisade_agent::cli::main()
}
