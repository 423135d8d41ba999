//! The default rule set: the repository's `rules/`, embedded at build time so the binary
//! needs no files. `RuleSet::builtin()` and `--rules rules/` load the same text through
//! the same loader. A test checks that every `*.yml` under `rules/` is listed here.

use super::load::Source;

/// (path under `rules/`, contents)
pub(crate) const FILES: &[(&str, &str)] = &[
    (
        "lists/exclusions.yml",
        include_str!("../../../rules/lists/exclusions.yml"),
    ),
    (
        "lists/process_classes.yml",
        include_str!("../../../rules/lists/process_classes.yml"),
    ),
    (
        "t1043_commonly_used_port.yml",
        include_str!("../../../rules/t1043_commonly_used_port.yml"),
    ),
    (
        "t1046_fan_out.yml",
        include_str!("../../../rules/t1046_fan_out.yml"),
    ),
    (
        "t1046_port_scan.yml",
        include_str!("../../../rules/t1046_port_scan.yml"),
    ),
    (
        "t1071_004_dns_tunnel_long_labels.yml",
        include_str!("../../../rules/t1071_004_dns_tunnel_long_labels.yml"),
    ),
    (
        "t1505_web_shell_outbound.yml",
        include_str!("../../../rules/t1505_web_shell_outbound.yml"),
    ),
    (
        "t1571_bind_shell_listener.yml",
        include_str!("../../../rules/t1571_bind_shell_listener.yml"),
    ),
    (
        "t1571_non_standard_port.yml",
        include_str!("../../../rules/t1571_non_standard_port.yml"),
    ),
];

/// (path under `rules/`, contents): the samples of the built-in rules, for
/// `monitor rules test` without `--rules`. A test checks that every file under
/// `rules/samples/` is listed here.
pub(crate) const SAMPLES: &[(&str, &str)] = &[
    (
        "samples/t1043_commonly_used_port.jsonl",
        include_str!("../../../rules/samples/t1043_commonly_used_port.jsonl"),
    ),
    (
        "samples/t1046_fan_out.jsonl",
        include_str!("../../../rules/samples/t1046_fan_out.jsonl"),
    ),
    (
        "samples/t1046_port_scan.jsonl",
        include_str!("../../../rules/samples/t1046_port_scan.jsonl"),
    ),
    (
        "samples/t1071_004_dns_tunnel_long_labels.jsonl",
        include_str!("../../../rules/samples/t1071_004_dns_tunnel_long_labels.jsonl"),
    ),
    (
        "samples/t1505_web_shell_outbound.jsonl",
        include_str!("../../../rules/samples/t1505_web_shell_outbound.jsonl"),
    ),
    (
        "samples/t1571_bind_shell_listener.jsonl",
        include_str!("../../../rules/samples/t1571_bind_shell_listener.jsonl"),
    ),
    (
        "samples/t1571_non_standard_port.jsonl",
        include_str!("../../../rules/samples/t1571_non_standard_port.jsonl"),
    ),
];

/// The embedded samples of rule file `name` (a path under `rules/`): `DIR/foo.yml` has
/// `DIR/samples/foo.jsonl`, as on disk.
pub(crate) fn samples_of(name: &str) -> Option<(&'static str, &'static str)> {
    let want = super::samples::samples_path(std::path::Path::new(name))?;
    SAMPLES
        .iter()
        .find(|(n, _)| std::path::Path::new(n) == want)
        .copied()
}

pub(crate) fn sources() -> Vec<Source> {
    FILES
        .iter()
        .map(|(name, text)| Source {
            name: format!("rules/{name} (built in)"),
            ruleset: super::BUILTIN_RULESET.to_string(),
            text: (*text).to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every rule file in the repository's rules/ is embedded, and nothing else.
    #[test]
    fn every_rules_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
        let mut found = Vec::new();
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).expect("read rules/") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yml" | "yaml")) {
                    out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        walk(&root, &root, &mut found);
        found.sort();
        let embedded: Vec<String> = super::FILES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            found, embedded,
            "update FILES in monitor/src/rules/builtin.rs"
        );
    }

    /// Every file under rules/samples/ is embedded, and each belongs to a rule file.
    #[test]
    fn every_samples_file_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/samples");
        let mut found: Vec<String> = std::fs::read_dir(&dir)
            .expect("read rules/samples/")
            .map(|e| {
                format!(
                    "samples/{}",
                    e.expect("entry").file_name().to_string_lossy()
                )
            })
            .collect();
        found.sort();
        let embedded: Vec<String> = super::SAMPLES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            found, embedded,
            "update SAMPLES in monitor/src/rules/builtin.rs"
        );
        for (name, _) in super::FILES {
            if !name.starts_with("lists/") {
                assert!(super::samples_of(name).is_some(), "{name} has no samples");
            }
        }
    }
}
