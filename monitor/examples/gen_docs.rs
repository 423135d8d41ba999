//! Writes the monitor's man pages and shell completions into a directory, from the clap
//! definitions in `monitor::cli`, so they always match the binary: `cargo xtask deb` runs it
//! when it builds the Debian package.
//!
//! Output: `man/monitor.8` (section 8: a daemon in /usr/sbin run by the administrator) and
//! one page per subcommand (`monitor-run.8`, `monitor-rules-check.8`, ...), and
//! `completions/monitor.bash`, `completions/_monitor` (zsh), `completions/monitor.fish`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap_complete::Shell;

const SECTION: &str = "8";

fn main() -> Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: gen_docs OUT_DIR")?;
    let man = out.join("man");
    let completions = out.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut cmd = monitor::cli::command();
    cmd.build();
    write_pages(&cmd, "monitor", &man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd, "monitor", &completions)
            .with_context(|| format!("writing the {shell} completions"))?;
        eprintln!("gen_docs: {}", path.display());
    }
    Ok(())
}

/// `name.8` for `cmd`, then the same for each subcommand as `name-sub.8`, recursively.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path) -> Result<()> {
    // clap takes `&'static str` names without its `string` feature; a few short strings
    // leaked in a one-shot generator cost nothing.
    let page = cmd
        .clone()
        .name(&*Box::leak(name.to_string().into_boxed_str()));
    let mut text = Vec::new();
    clap_mangen::Man::new(page)
        .section(SECTION)
        .render(&mut text)
        .with_context(|| format!("rendering the man page of {name}"))?;
    let path = dir.join(format!("{name}.{SECTION}"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("gen_docs: {}", path.display());
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
