//! Inputs the fuzz targets (fuzz/, fuzz/README.md) found faults with, kept as tests once
//! fixed.

use std::sync::mpsc;
use std::time::Duration;

use monitor::rules::RuleSet;

/// Loads one rule with three selections and `condition`, on another thread: a load that
/// hangs fails the test after a while instead of hanging it.
fn load_condition(condition: &str) -> Result<usize, String> {
    let rule = format!(
        "title: t
id: r1
logsource:
    category: network_connection
    product: linux
level: high
detection:
    selection:
        Image|endswith: /curl
    selection_port:
        DestinationPort: 8088
    filter_main:
        User: root
    condition: '{condition}'
"
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = RuleSet::from_texts(&[("r.yml", &rule)])
            .map(|rep| rep.rules.len())
            .map_err(|e| e.to_string());
        let _ = tx.send(r);
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("loading `{condition}` takes more than 20 s"))
}

/// rules_condition: a selection-name pattern with many `*` took time exponential in their
/// number to match (`1 of` + 40 `*` + `zz` ran for hours).
#[test]
fn patterns_with_many_wildcards_resolve_quickly() {
    let stars = "*".repeat(40);
    let e = load_condition(&format!("1 of {stars}zz")).unwrap_err();
    assert!(e.contains("matches no selection"), "{e}");
    assert_eq!(load_condition(&format!("1 of {stars}ion")), Ok(1));
    assert_eq!(load_condition(&format!("all of {stars}_{stars}")), Ok(1));
    // The matching itself is unchanged: `*` takes any run of bytes, other bytes match
    // themselves, and the whole name must match.
    assert_eq!(load_condition("1 of s*l*c*t*n*"), Ok(1));
    assert_eq!(load_condition("1 of *_port and 1 of filter_*"), Ok(1));
    assert!(load_condition("1 of *_*_*").is_err());
    assert!(load_condition("1 of selectio").is_err());
    assert!(load_condition("1 of election*").is_err());
}
