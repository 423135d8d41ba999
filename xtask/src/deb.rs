//! `cargo xtask deb`: the Debian package, with cargo-deb (bootstrapped like bpf-linker).
//!
//! Before cargo-deb runs, this writes what the package ships but the tree does not hold:
//! the man pages and shell completions, generated from the clap definitions by
//! `monitor/examples/gen_docs.rs` (so they match the binary), and the copyright file, from
//! `packaging/debian/copyright.in` plus the Rust crates linked into the binary with their
//! licences. Everything else (assets, conffiles, the unit, maintainer scripts) is in
//! `[package.metadata.deb]` of monitor/Cargo.toml.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};

use crate::{bootstrap, build_release, cargo, check, target_dir};

/// Where the generated assets go, under the target directory; monitor/Cargo.toml's
/// `assets` name it `target/release/deb-docs/`, which cargo-deb maps to the real target
/// directory (also with CARGO_TARGET_DIR).
const DOCS_DIR: &str = "release/deb-docs";

/// Licences the copyright template has a `License:` paragraph for, besides MIT and
/// Apache-2.0 (which every crate offering them is used under).
const OTHER_LICENCES: &[(&str, &str)] = &[
    ("LGPL-2.1-or-later", "LGPL-2.1+"),
    ("Zlib", "Zlib"),
    ("ISC", "ISC"),
    ("BSD-3-Clause", "BSD-3-clause"),
    // ring: both apply (its own code Apache-2.0, BoringSSL-derived code ISC).
    ("Apache-2.0 AND ISC", "Apache-2.0 and ISC"),
];

/// Builds the package; `version` replaces the Debian version (e.g. `0.1.0-2` to test an
/// upgrade). Returns the .deb's path.
pub fn build(root: &Path, version: Option<&str>) -> Result<PathBuf> {
    bootstrap::run(false)?;
    bootstrap::ensure_cargo_deb()?;
    build_release(root)?;
    check(cargo().args([
        "build",
        "--release",
        "-p",
        "monitor",
        "--example",
        "gen_docs",
    ]))?;
    let docs = target_dir(root).join(DOCS_DIR);
    if docs.exists() {
        std::fs::remove_dir_all(&docs).with_context(|| format!("clearing {}", docs.display()))?;
    }
    check(Command::new(target_dir(root).join("release/examples/gen_docs")).arg(&docs))?;
    // Man pages go in compressed (Debian policy 12.1); cargo-deb leaves files it takes from
    // the target directory as they are. -n: no name or time stamp, the same bytes each build.
    let pages: Vec<PathBuf> = std::fs::read_dir(docs.join("man"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    ensure!(!pages.is_empty(), "gen_docs wrote no man pages");
    check(Command::new("gzip").args(["-9", "-n", "-f"]).args(&pages))?;
    let template = root.join("packaging/debian/copyright.in");
    let template = std::fs::read_to_string(&template)
        .with_context(|| format!("reading {}", template.display()))?;
    let copyright = copyright(&template, &linked_crates()?)?;
    std::fs::write(docs.join("copyright"), copyright)?;

    let out_dir = target_dir(root).join("debian");
    let mut cmd = cargo();
    cmd.args(["deb", "-p", "monitor", "--no-build", "-o"])
        .arg(&out_dir);
    if let Some(v) = version {
        cmd.args(["--deb-version", v]);
    }
    eprintln!("xtask: {cmd:?}");
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "{cmd:?} failed ({})", out.status);
    // cargo-deb prints the package's path as its last line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .with_context(|| format!("cargo deb named no .deb: {stdout}"))?;
    ensure!(deb.is_file(), "{} was not written", deb.display());
    eprintln!("deb: {}", deb.display());
    Ok(deb)
}

/// (crate and version, declared licence) of every crate linked into the monitor binary:
/// normal dependencies, not build scripts or proc-macros, the workspace's own left out.
fn linked_crates() -> Result<Vec<(String, String)>> {
    let out = cargo()
        .args([
            "tree",
            "-p",
            "monitor",
            "-e",
            "normal,no-proc-macro",
            "--prefix",
            "none",
            "--format",
            "{p}\t{l}",
        ])
        .output()
        .context("running cargo tree")?;
    ensure!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut crates = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.replace(" (*)", "");
        let Some((package, licence)) = line.split_once('\t') else {
            continue;
        };
        // "name v1.2.3" or "name v1.2.3 (/path)" for path dependencies (ours).
        if package.contains(" (/") {
            continue;
        }
        crates.insert((package.trim().to_string(), licence.trim().to_string()));
    }
    ensure!(!crates.is_empty(), "cargo tree listed no crates");
    Ok(crates.into_iter().collect())
}

/// The template with `@CRATES@` replaced by one line per crate. A crate whose licence the
/// template has no paragraph for stops the build: the copyright file must name every
/// licence the package carries.
fn copyright(template: &str, crates: &[(String, String)]) -> Result<String> {
    ensure!(
        template.contains("@CRATES@"),
        "copyright.in has no @CRATES@ line"
    );
    let mut lines = Vec::new();
    for (package, licence) in crates {
        let Some(used) = licence_used(licence) else {
            bail!(
                "crate {package} is licensed {licence:?}, which packaging/debian/copyright.in \
                 has no License paragraph for; add one (and to OTHER_LICENCES in xtask/src/deb.rs)"
            );
        };
        lines.push(format!(" {package}: {licence} (used under {used})"));
    }
    Ok(template.replace("@CRATES@", &lines.join("\n")))
}

/// The licence a crate is used under: MIT or Apache-2.0 when its expression offers one of
/// them as an alternative, else one of `OTHER_LICENCES`.
fn licence_used(expr: &str) -> Option<&'static str> {
    let alternatives: Vec<&str> = expr
        .split(" OR ")
        .flat_map(|a| a.split('/'))
        .map(|a| a.trim_matches(|c| c == '(' || c == ')' || c == ' '))
        .collect();
    for a in &alternatives {
        match *a {
            "MIT" => return Some("MIT"),
            "Apache-2.0" => return Some("Apache-2.0"),
            _ => {}
        }
    }
    OTHER_LICENCES
        .iter()
        .find(|(spdx, _)| alternatives.len() == 1 && alternatives[0] == *spdx)
        .map(|(_, para)| *para)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licences_map_to_the_templates_paragraphs() {
        assert_eq!(licence_used("MIT OR Apache-2.0"), Some("MIT"));
        assert_eq!(licence_used("Apache-2.0 OR MIT"), Some("Apache-2.0"));
        assert_eq!(licence_used("MIT/Apache-2.0"), Some("MIT"));
        assert_eq!(licence_used("Unlicense OR MIT"), Some("MIT"));
        assert_eq!(
            licence_used("BSD-3-Clause OR MIT OR Apache-2.0"),
            Some("MIT")
        );
        assert_eq!(licence_used("LGPL-2.1-or-later"), Some("LGPL-2.1+"));
        assert_eq!(licence_used("Zlib"), Some("Zlib"));
        assert_eq!(licence_used("ISC"), Some("ISC"));
        assert_eq!(licence_used("BSD-3-Clause"), Some("BSD-3-clause"));
        assert_eq!(
            licence_used("Apache-2.0 AND ISC"),
            Some("Apache-2.0 and ISC")
        );
        assert_eq!(licence_used("GPL-3.0-only"), None);
        assert_eq!(licence_used("Zlib AND GPL-3.0-only"), None);
        let template = "Files: *\n@CRATES@\n";
        let err = copyright(template, &[("x v1".into(), "GPL-3.0-only".into())]).unwrap_err();
        assert!(err.to_string().contains("x v1"), "{err}");
        let text = copyright(template, &[("y v2".into(), "Zlib".into())]).unwrap();
        assert_eq!(text, "Files: *\n y v2: Zlib (used under Zlib)\n");
    }
}
