//! What the rule targets share: the records a loaded rule set is run on, and the check
//! that the rule index never changes which rules match.

use std::sync::{Arc, OnceLock};

use monitor::record::{ConnectionRecord, Endpoint, Transport};
use monitor::rules::{RuleEngine, RuleSet};

/// Real records (the beacon fixture's curl and python3) and variants that reach the other
/// field kinds: UDP to a resolver, IPv6, a source address, a container, no process names.
fn records() -> &'static [ConnectionRecord] {
    static RECORDS: OnceLock<Vec<ConnectionRecord>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        let fixture = include_str!("../../monitor/tests/fixtures/beacon_8088.jsonl");
        let mut recs: Vec<ConnectionRecord> = fixture
            .lines()
            .take(2)
            .map(|l| ConnectionRecord::from_json_line(l).unwrap().unwrap())
            .collect();
        let mut dns = recs[0].clone();
        dns.transport = Transport::Udp;
        dns.destination = Endpoint {
            ip: "192.0.2.53".parse().unwrap(),
            port: 53,
        };
        dns.dns_resolver = true;
        let mut v6 = recs[1].clone();
        v6.destination.ip = "2001:db8::7".parse().unwrap();
        v6.source = Some(Endpoint {
            ip: "2001:db8::1".parse().unwrap(),
            port: 40000,
        });
        let p = Arc::make_mut(&mut v6.process);
        p.container_id = Some("c0ffee".into());
        p.user_name = Some("nobody".into());
        let mut bare = recs[0].clone();
        bare.process = Arc::default();
        bare.partial = true;
        recs.extend([dns, v6, bare]);
        recs
    })
}

/// Runs `rules` on every record: the index must pick every rule that matches (the
/// unindexed evaluation is the reference), and alerting and grouping must not panic.
pub fn run_rules(rules: RuleSet) {
    let mut engine = RuleEngine::new(Arc::new(rules));
    let mut alerts = Vec::new();
    for rec in records() {
        let mut indexed = engine.matching_rule_ids(rec);
        let mut all = engine.matching_rule_ids_unindexed(rec);
        indexed.sort();
        all.sort();
        assert_eq!(indexed, all, "the index changed which rules match {rec:?}");
        engine.process(rec, &mut alerts);
    }
    engine.finish(&mut alerts);
}
