//! `palisade-cp`: the Palisade control plane.

fn main() -> std::process::ExitCode {
    palisade_control_plane::cli::main()
}
