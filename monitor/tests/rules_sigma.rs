//! Sigma semantics of the rule engine: each feature with cases that tell the right
//! semantics from plausible wrong ones.

#[path = "fixtures/rules/support.rs"]
mod support;

use support::{ev, hit, rule_with};

fn sel(body: &str) -> String {
    rule_with(&format!("    selection:\n{body}    condition: selection\n"))
}

#[test]
fn string_equality_is_case_insensitive_and_whole_value() {
    let r = sel("        Image: '/usr/bin/CURL'\n");
    assert!(hit(&r, &ev().image("/usr/bin/curl").build()));
    assert!(hit(&r, &ev().image("/USR/BIN/curl").build()));
    // Equality, not containment.
    assert!(!hit(&r, &ev().image("/usr/bin/curl2").build()));
    assert!(!hit(&r, &ev().image("/x/usr/bin/curl").build()));
}

#[test]
fn cased_modifier_makes_equality_case_sensitive() {
    let r = sel("        Image|cased: '/usr/bin/curl'\n");
    assert!(hit(&r, &ev().image("/usr/bin/curl").build()));
    assert!(!hit(&r, &ev().image("/usr/bin/CURL").build()));
}

#[test]
fn wildcards_star_and_question_mark() {
    let r = sel("        Image: '/usr/bin/python3.??'\n");
    assert!(hit(&r, &ev().image("/usr/bin/python3.11").build()));
    assert!(!hit(&r, &ev().image("/usr/bin/python3.9").build()));
    assert!(!hit(&r, &ev().image("/usr/bin/python3.111").build()));
    let r = sel("        Image: '/usr/*/nc*'\n");
    assert!(hit(&r, &ev().image("/usr/bin/nc.openbsd").build()));
    assert!(hit(&r, &ev().image("/usr/local/sbin/nc").build()));
    assert!(!hit(&r, &ev().image("/opt/bin/nc").build()));
}

#[test]
fn escaped_wildcards_are_literal() {
    // `\*` is a literal star, `\?` a literal question mark, `\\` one backslash.
    let r = sel("        CommandLine: 'echo \\*'\n");
    assert!(hit(&r, &ev().cmdline("echo *").build()));
    assert!(!hit(&r, &ev().cmdline("echo x").build()));
    let r = sel("        CommandLine: 'what\\?'\n");
    assert!(hit(&r, &ev().cmdline("what?").build()));
    assert!(!hit(&r, &ev().cmdline("whatx").build()));
    let r = sel("        CommandLine: 'a\\\\*'\n");
    assert!(hit(&r, &ev().cmdline("a\\anything").build()));
    assert!(!hit(&r, &ev().cmdline("aanything").build()));
    // A backslash before an ordinary character stays a backslash.
    let r = sel("        CommandLine: 'C:\\Windows'\n");
    assert!(hit(&r, &ev().cmdline("c:\\windows").build()));
    // Regex metacharacters in values are literal.
    let r = sel("        CommandLine: 'a.b(c)+'\n");
    assert!(hit(&r, &ev().cmdline("a.b(c)+").build()));
    assert!(!hit(&r, &ev().cmdline("axb(c)+").build()));
}

#[test]
fn contains_startswith_endswith() {
    let c = sel("        CommandLine|contains: 'socket'\n");
    assert!(hit(&c, &ev().cmdline("python3 -c import SOCKET").build()));
    assert!(!hit(&c, &ev().cmdline("python3 -c import sock").build()));
    let s = sel("        CommandLine|startswith: 'python3 -c'\n");
    assert!(hit(&s, &ev().cmdline("python3 -c x").build()));
    assert!(!hit(&s, &ev().cmdline("/usr/bin/python3 -c x").build()));
    let e = sel("        Image|endswith: '/nc'\n");
    assert!(hit(&e, &ev().image("/bin/nc").build()));
    assert!(!hit(&e, &ev().image("/bin/nc.openbsd").build()));
    assert!(!hit(&e, &ev().image("/bin/sync").build()));
    // Wildcards inside a modifier value.
    let w = sel("        Image|endswith: '/python3.*'\n");
    assert!(hit(&w, &ev().image("/usr/bin/python3.12").build()));
}

#[test]
fn lists_are_or_and_all_makes_them_and() {
    let or = sel("        CommandLine|contains:\n            - 'alpha'\n            - 'beta'\n");
    assert!(hit(&or, &ev().cmdline("x alpha").build()));
    assert!(hit(&or, &ev().cmdline("x beta").build()));
    assert!(!hit(&or, &ev().cmdline("x gamma").build()));
    let and =
        sel("        CommandLine|contains|all:\n            - 'alpha'\n            - 'beta'\n");
    assert!(!hit(&and, &ev().cmdline("x alpha").build()));
    assert!(hit(&and, &ev().cmdline("beta x alpha").build()));
}

#[test]
fn map_entries_are_and_and_list_of_maps_is_or() {
    let and = sel("        Image|endswith: '/curl'\n        DestinationPort: 8088\n");
    assert!(hit(
        &and,
        &ev().image("/usr/bin/curl").dst("203.0.113.7", 8088).build()
    ));
    assert!(!hit(
        &and,
        &ev().image("/usr/bin/curl").dst("203.0.113.7", 443).build()
    ));
    assert!(!hit(
        &and,
        &ev().image("/usr/bin/wget").dst("203.0.113.7", 8088).build()
    ));
    let or = rule_with(
        "    selection:\n        - Image|endswith: '/curl'\n          DestinationPort: 8088\n        \
         - Image|endswith: '/wget'\n    condition: selection\n",
    );
    assert!(hit(
        &or,
        &ev().image("/usr/bin/curl").dst("203.0.113.7", 8088).build()
    ));
    assert!(hit(
        &or,
        &ev().image("/usr/bin/wget").dst("203.0.113.7", 1).build()
    ));
    // Not a flat OR of all entries: curl on another port matches neither map.
    assert!(!hit(
        &or,
        &ev().image("/usr/bin/curl").dst("203.0.113.7", 443).build()
    ));
}

#[test]
fn regex_modifier_and_its_flags() {
    let r = sel("        CommandLine|re: '^python3? -c .*socket'\n");
    assert!(hit(&r, &ev().cmdline("python3 -c import socket").build()));
    // Case-sensitive unless `i`.
    assert!(!hit(&r, &ev().cmdline("PYTHON3 -c import socket").build()));
    let ri = sel("        CommandLine|re|i: '^python3? -c .*socket'\n");
    assert!(hit(&ri, &ev().cmdline("PYTHON3 -c import SOCKET").build()));
    // `.` does not cross newlines unless `s`.
    let no_s = sel("        CommandLine|re: 'a.b'\n");
    assert!(!hit(&no_s, &ev().cmdline("a\nb").build()));
    let s = sel("        CommandLine|re|s: 'a.b'\n");
    assert!(hit(&s, &ev().cmdline("a\nb").build()));
    // `^` is the start of the value unless `m`.
    let no_m = sel("        CommandLine|re: '^b'\n");
    assert!(!hit(&no_m, &ev().cmdline("a\nb").build()));
    let m = sel("        CommandLine|re|m: '^b'\n");
    assert!(hit(&m, &ev().cmdline("a\nb").build()));
    // A regex is a search, not a whole-value match.
    let search = sel("        CommandLine|re: 'sock'\n");
    assert!(hit(&search, &ev().cmdline("import socket").build()));
}

#[test]
fn cidr_ipv4_ipv6_and_mapped_addresses() {
    let r = sel(
        "        DestinationIp|cidr:\n            - '10.0.0.0/8'\n            - '2001:db8::/32'\n",
    );
    assert!(hit(&r, &ev().dst("10.1.2.3", 80).build()));
    assert!(!hit(&r, &ev().dst("11.1.2.3", 80).build()));
    assert!(hit(&r, &ev().dst("2001:db8::5", 80).build()));
    assert!(!hit(&r, &ev().dst("2001:db9::5", 80).build()));
    // An IPv4-mapped IPv6 address is compared as the IPv4 address it carries.
    assert!(hit(&r, &ev().dst("::ffff:10.9.9.9", 80).build()));
}

#[test]
fn addresses_compare_by_value() {
    let r =
        sel("        DestinationIp:\n            - '2001:DB8:0::7'\n            - '203.0.113.7'\n");
    assert!(hit(&r, &ev().dst("2001:db8::7", 80).build()));
    assert!(hit(&r, &ev().dst("::ffff:203.0.113.7", 80).build()));
    assert!(!hit(&r, &ev().dst("203.0.113.70", 80).build()));
    // Text matching on an address field still works with modifiers.
    let t = sel("        DestinationIp|startswith: '203.0.113.'\n");
    assert!(hit(&t, &ev().dst("203.0.113.70", 80).build()));
    assert!(!hit(&t, &ev().dst("198.51.100.1", 80).build()));
}

#[test]
fn numeric_comparisons() {
    let gt = sel("        DestinationPort|gt: 1024\n");
    assert!(hit(&gt, &ev().dst("203.0.113.7", 1025).build()));
    assert!(!hit(&gt, &ev().dst("203.0.113.7", 1024).build()));
    let gte = sel("        DestinationPort|gte: 1024\n");
    assert!(hit(&gte, &ev().dst("203.0.113.7", 1024).build()));
    let lt = sel("        DestinationPort|lt: 1024\n");
    assert!(hit(&lt, &ev().dst("203.0.113.7", 1023).build()));
    assert!(!hit(&lt, &ev().dst("203.0.113.7", 1024).build()));
    let lte = sel("        DestinationPort|lte: '1024'\n");
    assert!(hit(&lte, &ev().dst("203.0.113.7", 1024).build()));
    assert!(!hit(&lte, &ev().dst("203.0.113.7", 1025).build()));
}

#[test]
fn numbers_and_booleans_compare_by_value() {
    let n = sel("        DestinationPort: '08088'\n");
    assert!(hit(&n, &ev().dst("203.0.113.7", 8088).build()));
    let n = sel("        DestinationPort:\n            - 80\n            - '8088'\n");
    assert!(hit(&n, &ev().dst("203.0.113.7", 8088).build()));
    assert!(!hit(&n, &ev().dst("203.0.113.7", 8089).build()));
    for v in ["true", "'true'", "True", "'TRUE'"] {
        let b = sel(&format!("        Initiated: {v}\n"));
        assert!(hit(&b, &ev().build()), "Initiated: {v}");
    }
    let f = sel("        Initiated: 'false'\n");
    assert!(!hit(&f, &ev().build()));
    // A wildcard on a number field matches its text.
    let w = sel("        DestinationPort: '80*'\n");
    assert!(hit(&w, &ev().dst("203.0.113.7", 8088).build()));
    assert!(!hit(&w, &ev().dst("203.0.113.7", 443).build()));
}

#[test]
fn null_values_and_exists() {
    let null = sel("        CommandLine: null\n");
    let mut without = ev().build();
    std::sync::Arc::make_mut(&mut without.process).command_line = None;
    assert!(hit(&null, &without));
    assert!(!hit(&null, &ev().build()));
    let ex = sel("        CommandLine|exists: true\n");
    assert!(hit(&ex, &ev().build()));
    assert!(!hit(&ex, &without));
    let nex = sel("        CommandLine|exists: false\n");
    assert!(hit(&nex, &without));
    // A field the monitor never fills is null, so it never matches a value.
    let host = sel("        DestinationHostname|endswith: '.example'\n");
    assert!(!hit(&host, &ev().build()));
}

#[test]
fn list_fields_match_when_any_element_matches() {
    let r = sel("        ProcessArgs: '-c'\n");
    assert!(hit(&r, &ev().args(&["python3", "-c", "print(1)"]).build()));
    assert!(!hit(&r, &ev().args(&["python3", "-cx"]).build()));
    // With |all, every value must match some element (not necessarily the same one).
    let all =
        sel("        ProcessArgs|contains|all:\n            - 'Socket'\n            - '$p='\n");
    assert!(hit(
        &all,
        &ev().args(&["perl", "-e", "use Socket;$p=4444"]).build()
    ));
    assert!(hit(&all, &ev().args(&["perl", "Socket", "x$p=1"]).build()));
    assert!(!hit(
        &all,
        &ev().args(&["perl", "-e", "use Socket"]).build()
    ));
}

#[test]
fn condition_precedence_not_and_or() {
    // a or b and not c == a or (b and (not c))
    let r = rule_with(
        "    a:\n        DestinationPort: 1\n    b:\n        DestinationPort: 2\n    c:\n        \
         Image|endswith: '/curl'\n    condition: a or b and not c\n",
    );
    // a alone: true under the right precedence; ((a or b) and not c) would be false.
    assert!(hit(
        &r,
        &ev().image("/usr/bin/curl").dst("203.0.113.7", 1).build()
    ));
    assert!(!hit(
        &r,
        &ev().image("/usr/bin/curl").dst("203.0.113.7", 2).build()
    ));
    assert!(hit(
        &r,
        &ev().image("/usr/bin/wget").dst("203.0.113.7", 2).build()
    ));
    let p = rule_with(
        "    a:\n        DestinationPort: 1\n    b:\n        DestinationPort: 2\n    c:\n        \
         Image|endswith: '/curl'\n    condition: (a or b) and not c\n",
    );
    assert!(!hit(
        &p,
        &ev().image("/usr/bin/curl").dst("203.0.113.7", 1).build()
    ));
    // not binds tighter than and.
    let n = rule_with(
        "    a:\n        DestinationPort: 1\n    c:\n        Image|endswith: '/curl'\n    \
         condition: not a and c\n",
    );
    assert!(hit(
        &n,
        &ev().image("/usr/bin/curl").dst("203.0.113.7", 2).build()
    ));
    assert!(!hit(
        &n,
        &ev().image("/usr/bin/curl").dst("203.0.113.7", 1).build()
    ));
}

#[test]
fn of_quantifiers_and_them() {
    let det = "    sel_a:\n        DestinationPort: 1\n    sel_b:\n        Image|endswith: '/curl'\n    \
               _helper:\n        User: nobody\n";
    let one = rule_with(&format!("{det}    condition: 1 of sel_*\n"));
    assert!(hit(
        &one,
        &ev().image("/usr/bin/wget").dst("203.0.113.7", 1).build()
    ));
    assert!(!hit(
        &one,
        &ev().image("/usr/bin/wget").dst("203.0.113.7", 2).build()
    ));
    let all = rule_with(&format!("{det}    condition: all of sel_*\n"));
    assert!(!hit(
        &all,
        &ev().image("/usr/bin/wget").dst("203.0.113.7", 1).build()
    ));
    assert!(hit(
        &all,
        &ev().image("/usr/bin/curl").dst("203.0.113.7", 1).build()
    ));
    // `them` leaves out `_`-prefixed selections: all of them holds without User nobody.
    let them = rule_with(&format!("{det}    condition: all of them\n"));
    assert!(hit(
        &them,
        &ev()
            .image("/usr/bin/curl")
            .dst("203.0.113.7", 1)
            .user("root")
            .build()
    ));
    let one_them = rule_with(&format!("{det}    condition: 1 of them and not _helper\n"));
    assert!(hit(&one_them, &ev().dst("203.0.113.7", 1).build()));
    assert!(!hit(
        &one_them,
        &ev().dst("203.0.113.7", 1).user("nobody").build()
    ));
}

#[test]
fn ecs_field_names_work_like_sigma_names() {
    let r = sel(
        "        process.executable|endswith: '/curl'\n        destination.port: 8088\n        \
         user.name: root\n        process.parent.executable: /usr/bin/bash\n        \
         network.transport: tcp\n        host.hostname: h1\n",
    );
    assert!(hit(&r, &ev().dst("203.0.113.7", 8088).build()));
    assert!(!hit(&r, &ev().dst("203.0.113.7", 8088).udp().build()));
    let p = sel("        Protocol: udp\n        process.name: curl\n");
    assert!(hit(&p, &ev().udp().build()));
}

#[test]
fn expand_placeholders_come_from_list_files() {
    let lists = "lists:\n  tools:\n    - /curl\n    - /wget\n  more:\n    - '%tools%'\n    - /nc\n";
    let rule = sel("        Image|endswith|expand: '%more%'\n");
    let set = monitor::rules::RuleSet::from_texts(&[("lists.yml", lists), ("r.yml", &rule)])
        .unwrap()
        .rules;
    let set = std::sync::Arc::new(set);
    for exe in ["/usr/bin/curl", "/usr/bin/wget", "/bin/nc"] {
        assert_eq!(
            support::matches(&set, &ev().image(exe).build()).len(),
            1,
            "{exe}"
        );
    }
    assert!(support::matches(&set, &ev().image("/bin/ncat").build()).is_empty());
    // Lists of one name in two files are joined: an operator adds, never edits.
    let local = "lists:\n  tools:\n    - /ncat\n";
    let set = monitor::rules::RuleSet::from_texts(&[
        ("lists.yml", lists),
        ("local.yml", local),
        ("r.yml", &rule),
    ])
    .unwrap()
    .rules;
    let set = std::sync::Arc::new(set);
    assert_eq!(
        support::matches(&set, &ev().image("/bin/ncat").build()).len(),
        1
    );
    // An empty list matches nothing (so an empty exclusion excludes nothing).
    let empty = "lists:\n  none: []\n";
    let r2 = rule_with(
        "    selection:\n        DestinationPort: 443\n    filter:\n        \
         Image|endswith|expand: '%none%'\n    condition: selection and not filter\n",
    );
    let set = monitor::rules::RuleSet::from_texts(&[("l.yml", empty), ("r.yml", &r2)])
        .unwrap()
        .rules;
    assert_eq!(
        support::matches(&std::sync::Arc::new(set), &ev().build()).len(),
        1
    );
}

#[test]
fn multiple_conditions_are_alternatives() {
    let r = rule_with(
        "    a:\n        DestinationPort: 1\n    b:\n        DestinationPort: 2\n    condition:\n        \
         - a\n        - b\n",
    );
    assert!(hit(&r, &ev().dst("203.0.113.7", 1).build()));
    assert!(hit(&r, &ev().dst("203.0.113.7", 2).build()));
    assert!(!hit(&r, &ev().dst("203.0.113.7", 3).build()));
}

#[test]
fn hashes_and_ancestors_match_the_executable_identity() {
    let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    // Sysmon style, matched as usual (case-insensitive, `contains` on the SHA256= part).
    let r = sel(&format!(
        "        Hashes|contains: 'SHA256={}'\n",
        sha.to_uppercase()
    ));
    assert!(hit(&r, &ev().sha256(sha).build()));
    assert!(!hit(&r, &ev().build()), "no hash yet: no match");
    let r = sel(&format!("        process.hash.sha256: '{sha}'\n"));
    assert!(hit(&r, &ev().sha256(sha).build()));
    assert!(!hit(&r, &ev().sha256(&"0".repeat(64)).build()));
    // A list: any ancestor.
    let r = sel("        AncestorImages|endswith: '/sshd'\n");
    assert!(hit(
        &r,
        &ev()
            .ancestors(&[
                "/usr/bin/bash",
                "/usr/sbin/sshd",
                "/usr/lib/systemd/systemd"
            ])
            .build()
    ));
    assert!(!hit(&r, &ev().ancestors(&["/usr/bin/bash"]).build()));
    assert!(!hit(&r, &ev().build()));
}

#[test]
fn sub_technique_tags_keep_the_full_id_in_alerts() {
    let text = rule_with(
        "    selection:\n        DestinationPort: 443\n    condition: selection\n",
    ) + "tags:\n    - attack.execution\n    - attack.t1059.004\n    - attack.t1571\n    - attack.t1059.004\n";
    let set = std::sync::Arc::new(support::rules(&text));
    assert_eq!(set.summaries()[0].techniques, vec!["T1059.004", "T1571"]);
    let a = support::alerts(&set, &ev().build());
    assert_eq!(a.len(), 1);
    let j: serde_json::Value = serde_json::from_str(&a[0].to_json_line()).unwrap();
    assert_eq!(
        j["threat"]["technique"]["id"],
        serde_json::json!(["T1059.004", "T1571"])
    );
    assert_eq!(
        j["threat"]["technique"]["subtechnique"]["id"],
        serde_json::json!(["T1059.004"])
    );
}

#[test]
fn address_family_fields_and_computer() {
    let v6 = sel("        DestinationIsIpv6: 'true'\n");
    assert!(hit(&v6, &ev().dst("2001:db8::7", 443).build()));
    assert!(!hit(&v6, &ev().build()));
    let v4 = sel("        DestinationIsIpv6: false\n");
    assert!(hit(&v4, &ev().build()));
    let src6 = sel("        SourceIsIpv6: true\n");
    assert!(hit(&src6, &ev().src("2001:db8::20", 40000).build()));
    assert!(!hit(&src6, &ev().build()));
    let host = sel("        Computer: 'WEB-01'\n");
    assert!(hit(&host, &ev().host("web-01").build()));
    assert!(!hit(&host, &ev().build()));
    // Like DestinationHostname: loads, is null, never matches a value.
    let src_host = sel("        SourceHostname|endswith: '.example'\n");
    assert!(!hit(&src_host, &ev().build()));
}
