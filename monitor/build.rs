//! Compiles `monitor-ebpf` for the BPF target with aya-build and places the object in OUT_DIR,
//! from where `capture::probes` embeds it with `include_bytes_aligned!`.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let package = aya_build::Package {
        name: "monitor-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../monitor-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default()).context(
        "building monitor-ebpf failed; `cargo xtask bootstrap` installs rust-src and bpf-linker",
    )
}
