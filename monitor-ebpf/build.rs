//! Rebuild the programs when the bpf-linker binary changes (it is an undeclared tool dependency).
fn main() {
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(e) => println!(
            "cargo:warning=bpf-linker not found ({e}); run `cargo xtask bootstrap` to install it"
        ),
    }
}
