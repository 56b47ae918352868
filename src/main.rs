fn main() {
    std::process::exit(simdnet::cli::main());
}
