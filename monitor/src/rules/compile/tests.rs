//! Hostile input (issue #18): each case failed before the budgets, by aborting (stack
//! overflow, allocation failure), panicking, taking seconds to minutes, or loading a
//! rule that silently did not work.

use std::time::{Duration, Instant};

use super::*;

fn src(name: &str, text: String) -> Source {
    Source {
        name: name.into(),
        ruleset: "t".into(),
        text,
    }
}

/// A rule with `detection` (indented under `detection:`) and `extra` top-level keys.
fn rule(detection: &str, extra: &str) -> String {
    format!(
        "title: hostile\nid: hostile-1\nlevel: low\nlogsource:\n  category: \
         network_connection\n  product: linux\ndetection:\n{detection}{extra}"
    )
}

/// The errors of compiling `sources` under `limits`, and how long it took.
fn errors_with(sources: &[Source], limits: Limits) -> (Vec<String>, Duration) {
    let t = Instant::now();
    let c = compile_with(sources, limits);
    let took = t.elapsed();
    // What `rules check` does next with a failed set: it must not panic either.
    let _ = crate::rules::RuleSet::new(c.rules, c.tests, c.correlations);
    (c.errors.iter().map(|e| e.to_string()).collect(), took)
}

fn errors(sources: &[Source]) -> Vec<String> {
    let (e, took) = errors_with(sources, Limits::default());
    // Bounds for blow-ups (these inputs took minutes before the budgets), generous enough
    // for an unoptimized build on a loaded two-core machine.
    assert!(took < Duration::from_secs(10), "took {took:?}: {e:?}");
    e
}

fn one_error(sources: &[Source], words: &str) -> String {
    let e = errors(sources);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].contains(words), "`{words}` not in: {}", e[0]);
    e.into_iter().next().expect("one")
}

#[test]
fn technique_tags_keep_their_sub_technique() {
    assert_eq!(technique_id("1059"), Some("T1059".to_string()));
    assert_eq!(technique_id("1059.004"), Some("T1059.004".to_string()));
    for bad in [
        "105",
        "10590",
        "1059.04",
        "1059.0041",
        "1059.",
        "abcd",
        "1059.004.1",
    ] {
        assert_eq!(technique_id(bad), None, "{bad}");
    }
}

fn list_rule() -> Source {
    src(
        "r.yml",
        rule(
            "  sel:\n    Image|endswith|expand: '%l0%'\n  condition: sel\n",
            "",
        ),
    )
}

#[test]
fn a_long_chain_of_lists_is_refused_without_recursion() {
    // 30,000 lists each including the previous one overflowed the stack.
    let mut lists = String::from("lists:\n  l29999: [/x]\n");
    for i in (0..29_999).rev() {
        lists.push_str(&format!("  l{i}: ['%l{}%', /y{i}]\n", i + 1));
    }
    let e = one_error(
        &[src("lists.yml", lists), list_rule()],
        "more than 64 levels deep",
    );
    assert!(
        e.starts_with("r.yml:9: rule hostile-1: placeholder `%l0%`"),
        "{e}"
    );
    assert!(e.contains("l0 -> l1 -> l2 -> ... ->"), "{e}");
}

#[test]
fn lists_that_double_per_level_are_refused_before_expanding() {
    // Each list including the previous one twice: 771 bytes, 2^31 values.
    let mut lists = String::from("lists:\n  l30: [/a]\n");
    for i in (0..30).rev() {
        lists.push_str(&format!("  l{i}: ['%l{n}%', '%l{n}%']\n", n = i + 1));
    }
    let e = one_error(&[src("lists.yml", lists), list_rule()], "1073741824 values");
    assert!(e.contains("more than the budget of 100000"), "{e}");
    assert!(e.starts_with("r.yml:9:"), "{e}");
    // Lists that double per level but expand to nothing are not walked 2^30 times.
    let mut lists = String::from("lists:\n  l30: []\n  l0: ['%l1%', /v]\n");
    for i in (1..30).rev() {
        lists.push_str(&format!("  l{i}: ['%l{n}%', '%l{n}%']\n", n = i + 1));
    }
    let e = errors(&[src("lists.yml", lists), list_rule()]);
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn list_cycles_are_still_named() {
    let lists = "lists:\n  l0: ['%l1%']\n  l1: [/a, '%l2%']\n  l2: ['%l1%']\n".to_string();
    one_error(
        &[src("lists.yml", lists), list_rule()],
        "cycle: l0 -> l1 -> l2 -> l1",
    );
}

#[test]
fn deep_conditions_are_errors_with_file_and_line() {
    let parens = format!("{}sel{}", "(".repeat(20_000), ")".repeat(20_000));
    let e = one_error(
        &[src(
            "r.yml",
            rule(
                &format!("  sel:\n    Image: /x\n  condition: {parens}\n"),
                "",
            ),
        )],
        "nested deeper than 64 levels",
    );
    assert!(e.starts_with("r.yml:10: rule hostile-1: condition:"), "{e}");
    assert!(e.len() < 1000, "the message quotes an excerpt: {e}");
    let nots = format!("{}sel", "not ".repeat(10_000));
    one_error(
        &[src(
            "r.yml",
            rule(&format!("  sel:\n    Image: /x\n  condition: {nots}\n"), ""),
        )],
        "nested deeper than 64 levels",
    );
    // 200,000 `not`s: past the length budget before any parsing.
    let nots = format!("{}sel", "not ".repeat(200_000));
    one_error(
        &[src(
            "r.yml",
            rule(&format!("  sel:\n    Image: /x\n  condition: {nots}\n"), ""),
        )],
        "a condition of 800003 bytes, longer than the budget of 65536",
    );
}

#[test]
fn of_patterns_with_many_stars_resolve_quickly() {
    // YAML keys are at most 1024 characters.
    let name = format!("{}c", "a".repeat(1_000));
    let det = format!(
        "  {name}:\n    Image: /x\n  condition: 1 of {}*b\n",
        "*a".repeat(10)
    );
    one_error(&[src("r.yml", rule(&det, ""))], "matches no selection");
}

#[test]
fn window_with_a_non_ascii_unit_is_an_error_not_a_panic() {
    let det = "  sel:\n    Image: /x\n  condition: sel\n";
    for (w, words) in [
        ("'1é'", "`1é` is not a duration"),
        ("'é'", "`é` is not a duration"),
        ("''", "is not a duration"),
        ("200000d", "longer than the longest window, 365d"),
        ("9223372036854775807s", "longer than the longest window"),
    ] {
        let e = one_error(
            &[src(
                "r.yml",
                rule(
                    det,
                    &format!("monitor:\n  group_by: [Image]\n  window: {w}\n"),
                ),
            )],
            words,
        );
        assert!(
            e.starts_with("r.yml:13: rule hostile-1: monitor.window:"),
            "{e}"
        );
    }
    assert_eq!(parse_duration("365d"), Ok(365 * 86_400 * 1_000_000_000));
    assert_eq!(parse_duration("90s"), Ok(90_000_000_000));
}

#[test]
fn long_values_are_refused_and_values_at_the_budget_compile_quickly() {
    let det = |v: &str| format!("  sel:\n    CommandLine|contains: '{v}'\n  condition: sel\n");
    let e = one_error(
        &[src("r.yml", rule(&det(&"ab".repeat(25_000)), ""))],
        "a value of 50000 bytes, longer than the budget of 4096",
    );
    assert!(e.starts_with("r.yml:9:"), "{e}");
    assert!(errors(&[src("r.yml", rule(&det(&"ab".repeat(2048)), ""))]).is_empty());
}

#[test]
fn many_values_for_one_field_compile_in_linear_time() {
    // 20,000 `contains` values took 4 s (a linear search per value for its key).
    let mut det = String::from("  sel:\n    CommandLine|contains:\n");
    for i in 0..20_000 {
        det.push_str(&format!("      - 'v{i}x'\n"));
    }
    det.push_str("  condition: sel\n");
    assert_eq!(
        errors(&[src("r.yml", rule(&det, ""))]),
        Vec::<String>::new()
    );
}

#[test]
fn the_compile_deadline_stops_a_load_with_file_and_line() {
    let det = "  sel:\n    Image: /x\n  condition: sel\n";
    let limits = Limits {
        max_compile_time: Duration::ZERO,
        ..Limits::default()
    };
    let (e, _) = errors_with(&[src("r.yml", rule(det, ""))], limits);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("r.yml:1: compiling the rule set took longer"),
        "{e:?}"
    );
}

#[test]
fn the_compiled_size_budget_counts_values_and_condition_operands() {
    let det = "  sel:\n    Image: [/a, /b, /c]\n  condition: sel or sel or sel\n";
    let limits = |n| Limits {
        max_compiled_items: n,
        ..Limits::default()
    };
    let (e, _) = errors_with(&[src("r.yml", rule(det, ""))], limits(5));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("r.yml:10: rule hostile-1: condition: the rule set grows past 5"),
        "{e:?}"
    );
    let (e, _) = errors_with(&[src("r.yml", rule(det, ""))], limits(2));
    assert!(
        e[0].contains("r.yml:9: rule hostile-1: `Image`: the rule set grows past 2"),
        "{e:?}"
    );
    // The test's mask over the string set (one word) counts too.
    let (e, _) = errors_with(&[src("r.yml", rule(det, ""))], limits(6));
    assert_eq!(
        e,
        [
            "all rules, field process.executable: the rule set grows past 6 compiled values \
          and condition operands here (rules/README.md, Limits)"
        ]
    );
    let (e, _) = errors_with(&[src("r.yml", rule(det, ""))], limits(7));
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn values_per_field_are_counted_after_expansion() {
    let mut lists = String::from("lists:\n  big:\n");
    for i in 0..60_000 {
        lists.push_str(&format!("    - /v{i}\n"));
    }
    let det = "  sel:\n    Image|endswith|expand: ['%big%', '%big%']\n  condition: sel\n";
    one_error(
        &[src("lists.yml", lists), src("r.yml", rule(det, ""))],
        "more than 100000 values for one field",
    );
}

#[test]
fn a_selection_of_many_maps_compiles_in_linear_time_and_space() {
    // Maps of two fields: each test's mask spanned the whole string set (tests x
    // patterns words: 700 MB at 50,000 maps), and the rule index re-sorted its anchor
    // once per map.
    let mut det = String::from("  sel:\n");
    for i in 0..5_000 {
        det.push_str(&format!("    - Image: /x{i}\n      User: u{i}\n"));
    }
    det.push_str("  condition: sel\n");
    let t = Instant::now();
    let c = compile_with(&[src("r.yml", rule(&det, ""))], Limits::default());
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let words: usize = c
        .tests
        .tests
        .iter()
        .map(|t| match t {
            Test::Patterns { mask, .. } => mask.len(),
            _ => 0,
        })
        .sum();
    assert!(words <= 2 * c.tests.tests.len(), "{words} mask words");
    let set = crate::rules::RuleSet::new(c.rules, c.tests, c.correlations);
    assert_eq!(set.len(), 1);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn the_deadline_stops_a_long_run_of_regular_expressions_promptly() {
    // 3,000 `re` values took 27 s in a debug build, with no deadline check inside.
    let mut det = String::from("  sel:\n    CommandLine|re:\n");
    for i in 0..3_000 {
        det.push_str(&format!("      - 'a{i}.*b[0-9]+c'\n"));
    }
    det.push_str("  condition: sel\n");
    let limits = Limits {
        max_compile_time: Duration::from_millis(300),
        ..Limits::default()
    };
    let (e, took) = errors_with(&[src("r.yml", rule(&det, ""))], limits);
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("r.yml:"), "{e:?}");
    assert!(
        e[0].contains("took longer than its budget of 0.3 s"),
        "{e:?}"
    );
}
