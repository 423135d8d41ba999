//! Runs a compiled `RuleSet` on records and groups alerts of rules that ask for it.
//!
//! Length: just over 800 lines (807) with the DNS category check and the per-process
//! rule cache; the grouping windows are the part to move out next (issue #16).
//!
//! Grouping (the `monitor.group_by` / `monitor.window` extension): the first match of a
//! group (rule + values of the group-by fields) is alerted at once; further matches in the
//! window are counted; when the window closes a summary alert carries `monitor.aggregate`.
//! A match whose level is higher than any alerted so far in the window is alerted at once
//! too, so an escalation never waits for the window's end. Windows are tumbling, opened by
//! the group's first match, and close by event time (`advance`), never the wall clock.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::RuleSet;
use super::compile::{Case, GroupSpec, Rule};
use super::condition::Cond;
use super::correlation::CorrelationEngine;
use super::field::{FieldValue, TextBuf};
use super::matcher::{Scratch, Tests};
use crate::record::{Aggregate, Alert, ConnectionRecord, Detector, Level, Timestamp};

/// Most destination addresses and ports a summary lists (the T1571 seed's `collect` limits).
pub const MAX_AGGREGATE_IPS: usize = 10;
pub const MAX_AGGREGATE_PORTS: usize = 20;
/// Open groups kept at most; past it the group closing soonest is summarized early.
pub const MAX_OPEN_GROUPS: usize = 65_536;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupKey {
    rule: Arc<str>,
    values: Box<[Option<Box<str>>]>,
}

struct Group {
    end: Timestamp,
    seq: u64,
    count: u64,
    first_seen: Timestamp,
    last_seen: Timestamp,
    ips: Vec<IpAddr>,
    ports: Vec<u16>,
    /// The highest-ranked match (level, then risk score): the summary's rule, level,
    /// risk score and labels.
    best: Alert,
    /// The latest match's record: the summary's event fields.
    last_event: ConnectionRecord,
    alerted: Level,
}

/// Rule evaluation plus grouping state. One per pipeline; not shared between threads.
pub struct RuleEngine {
    rules: Arc<RuleSet>,
    scratch: Scratch,
    groups: HashMap<GroupKey, Group>,
    by_end: BTreeMap<(Timestamp, u64), GroupKey>,
    seq: u64,
    now: Timestamp,
    /// Latest record time seen (`now` also moves on live clock ticks): what `finish` stamps
    /// summaries with, so live and replay agree.
    last_event: Timestamp,
    text: TextBuf,
    /// Rules to evaluate for the current event (reused buffers).
    candidates: Vec<u32>,
    seen: Vec<u64>,
    fired: Vec<u64>,
    /// Sigma correlation rules' groups.
    corr: CorrelationEngine,
}

impl RuleEngine {
    pub fn new(rules: Arc<RuleSet>) -> Self {
        let scratch = Scratch::new(
            rules.tests.tests.len(),
            &rules.tests.sets,
            rules.rules.len(),
        );
        RuleEngine {
            rules,
            scratch,
            groups: HashMap::new(),
            by_end: BTreeMap::new(),
            seq: 0,
            now: Timestamp(i64::MIN),
            last_event: Timestamp(i64::MIN),
            text: TextBuf::new(),
            candidates: Vec::new(),
            seen: Vec::new(),
            fired: Vec::new(),
            corr: CorrelationEngine::default(),
        }
    }

    /// Swaps in a new rule set (hot reload). Open groups stay open and keep the rule
    /// metadata they started with; new matches of a rule with the same id join them.
    /// Correlation groups are kept for correlation rules whose id and definition are
    /// unchanged, and dropped for the others.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.corr
            .set_rules(&self.rules.correlations, &rules.correlations);
        self.scratch = Scratch::new(
            rules.tests.tests.len(),
            &rules.tests.sets,
            rules.rules.len(),
        );
        self.rules = rules;
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Evaluates every rule on `rec`; alerts (and summaries of windows that closed before
    /// `rec`'s time) go to `out`.
    pub fn process(&mut self, rec: &ConnectionRecord, out: &mut Vec<Alert>) {
        self.advance(rec.timestamp, out);
        self.last_event = self.last_event.max(rec.timestamp);
        self.select(rec);
        for k in 0..self.candidates.len() {
            let i = self.candidates[k];
            if !self.rule_matches(i, rec) {
                continue;
            }
            let set = &*self.rules;
            for &(c, pos) in &set.feeds[i as usize] {
                self.corr
                    .on_match(&set.correlations, c.into(), pos.into(), rec, out);
            }
            if set.silent[i as usize] {
                continue;
            }
            // An alert (rare): the rule set is cloned only here, not on every event.
            let rules = Arc::clone(&self.rules);
            let rule = &rules.rules[i as usize];
            let alert = self.alert(&rules.tests, rule, rec);
            match &rule.group {
                None => out.push(alert),
                Some(spec) => self.grouped(spec, alert, out),
            }
        }
    }

    /// Resets the per-event scratch space and picks the rules that can match `rec`: those
    /// the index selects, less those `rec`'s process is known never to match.
    fn select(&mut self, rec: &ConnectionRecord) {
        self.scratch.reset();
        let rules = &self.rules;
        let port = rec.destination.port;
        // Most events of a process go to the port its last one did: the same selection.
        let reuse = rules.index.by_process_and_port();
        match reuse
            .then(|| self.scratch.cached_selection(&rec.process, port))
            .flatten()
        {
            Some(cached) => {
                self.seen.clear();
                self.seen.extend_from_slice(cached);
            }
            None => {
                rules.index.candidates(
                    &rules.tests,
                    rec,
                    &mut self.scratch,
                    &mut self.seen,
                    &mut self.fired,
                );
                self.scratch.drop_excluded(&rec.process, &mut self.seen);
                if reuse {
                    self.scratch.store_selection(port, &self.seen);
                }
            }
        }
        // In rule order, so alerts come out in the order rules were loaded.
        self.candidates.clear();
        for (w, &word) in self.seen.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                self.candidates
                    .push((w * 64) as u32 + word.trailing_zeros());
                word &= word - 1;
            }
        }
    }

    /// Evaluates candidate rule `i` on `rec`. On a process seen before, a rule not yet
    /// checked against it is first evaluated on the process's fields alone: when those
    /// already make it false, the process's later events skip the rule (`select`).
    #[inline]
    fn rule_matches(&mut self, i: u32, rec: &ConnectionRecord) -> bool {
        let set = &*self.rules;
        let rule = &set.rules[i as usize];
        // A network_connection rule never sees DNS query records, nor the reverse.
        if !rule.category.covers(rec) {
            return false;
        }
        let cond = &rule.condition;
        if self.scratch.included(i) {
            return true;
        }
        if self.scratch.should_learn(i) {
            match cond.eval_process(&set.tests, rec, &mut self.scratch) {
                Some(false) => {
                    self.scratch.exclude(i);
                    return false;
                }
                // True whatever the event: so on the process's later events too.
                Some(true) => {
                    self.scratch.include(i);
                    return true;
                }
                None => {}
            }
        }
        cond.eval(&set.tests, rec, &mut self.scratch)
    }

    /// Names of the rules that match `rec`, without alerts or grouping (for tests and
    /// `rules` tooling).
    pub fn matching_rule_ids(&mut self, rec: &ConnectionRecord) -> Vec<String> {
        self.select(rec);
        let candidates = std::mem::take(&mut self.candidates);
        let mut ids = Vec::new();
        for &i in &candidates {
            if self.rule_matches(i, rec) {
                ids.push(self.rules.rules[i as usize].meta.id.clone());
            }
        }
        self.candidates = candidates;
        ids
    }

    /// Like `matching_rule_ids`, but evaluating every rule instead of the candidates the
    /// rule index picks: the reference the index is tested against.
    pub fn matching_rule_ids_unindexed(&mut self, rec: &ConnectionRecord) -> Vec<String> {
        self.scratch.reset();
        let rules = &self.rules;
        rules
            .rules
            .iter()
            .filter(|r| r.condition.eval(&rules.tests, rec, &mut self.scratch))
            .map(|r| r.meta.id.clone())
            .collect()
    }

    /// How many rules match `rec`: the evaluation alone, without building alerts or
    /// touching groups, and without allocating (for benchmarks).
    pub fn match_count(&mut self, rec: &ConnectionRecord) -> usize {
        self.select(rec);
        let candidates = std::mem::take(&mut self.candidates);
        let n = candidates
            .iter()
            .filter(|&&i| self.rule_matches(i, rec))
            .count();
        self.candidates = candidates;
        n
    }

    /// Closes every window that ends at or before `now` (event time).
    #[inline]
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<Alert>) {
        if now > self.now {
            self.now = now;
        }
        // Called twice per record, and nearly always no window is due: one comparison
        // with the earliest end, the loop out of line.
        if self
            .by_end
            .first_key_value()
            .is_some_and(|(&(end, _), _)| end <= self.now)
        {
            self.close_due(out);
        }
        if !self.rules.correlations.is_empty() {
            self.corr.advance(&self.rules.correlations, self.now, out);
        }
    }

    /// Summarizes and drops the groups whose window ends at or before `self.now`.
    fn close_due(&mut self, out: &mut Vec<Alert>) {
        while let Some((&(end, seq), _)) = self.by_end.first_key_value() {
            if end > self.now {
                break;
            }
            let key = self.by_end.remove(&(end, seq)).expect("present");
            if let Some(g) = self.groups.remove(&key) {
                push_summary(g, end, out);
            }
        }
    }

    /// Closes every open window (end of input, shutdown). Summaries are stamped with the
    /// window's end or the latest event time seen, whichever is earlier: never the clock
    /// time of a shutdown, so a live run and its replay give the same summaries.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        let now = self.last_event;
        let by_end = std::mem::take(&mut self.by_end);
        for (_, key) in by_end {
            if let Some(g) = self.groups.remove(&key) {
                let at = if g.end < now {
                    g.end
                } else {
                    now.max(g.last_seen)
                };
                push_summary(g, at, out);
            }
        }
        self.groups.clear();
        self.corr.finish(&self.rules.correlations, out);
    }

    /// Open groups now.
    pub fn open_groups(&self) -> usize {
        self.groups.len()
    }

    /// Open correlation groups now.
    pub fn correlation_groups(&self) -> usize {
        self.corr.groups()
    }

    /// Correlation groups dropped because `MAX_CORRELATION_GROUPS` were open.
    pub fn correlation_evictions(&self) -> u64 {
        self.corr.evictions()
    }

    fn alert(&mut self, tests: &Tests, rule: &Rule, rec: &ConnectionRecord) -> Alert {
        let s = &mut self.scratch;
        let level = choose(&rule.level_cases, tests, rec, s).unwrap_or(rule.level);
        let risk_score = choose(&rule.risk, tests, rec, s);
        let mut labels = BTreeMap::new();
        for (name, cases) in &rule.labels {
            if let Some(v) = choose(cases, tests, rec, s) {
                labels.insert(name.clone(), v);
            }
        }
        Alert {
            timestamp: rec.timestamp,
            event: rec.clone(),
            rule: Arc::clone(&rule.meta),
            techniques: rule.techniques.clone(),
            detector: Detector::Rule,
            level,
            risk_score,
            labels,
            aggregate: None,
            beacon: None,
            correlation: None,
        }
    }

    fn grouped(&mut self, spec: &GroupSpec, alert: Alert, out: &mut Vec<Alert>) {
        let values: Box<[Option<Box<str>>]> = spec
            .fields
            .iter()
            .map(|&f| match FieldValue::of(&alert.event, f) {
                FieldValue::Missing => None,
                FieldValue::Text(t) => Some(t.into()),
                FieldValue::List(items) => Some(items.join("\u{0}").into()),
                other => self.text.format(&other).map(Into::into),
            })
            .collect();
        let key = GroupKey {
            rule: alert.rule.id.as_str().into(),
            values,
        };
        let ts = alert.timestamp;
        if let Some(g) = self.groups.get(&key)
            && ts >= g.end
        {
            // This group's window has passed in event time; summarize it and start anew.
            let g = self.groups.remove(&key).expect("present");
            self.by_end.remove(&(g.end, g.seq));
            let end = g.end;
            push_summary(g, end, out);
        }
        if let Some(g) = self.groups.get_mut(&key) {
            g.count += 1;
            g.first_seen = g.first_seen.min(ts);
            g.last_seen = g.last_seen.max(ts);
            let dst = alert.event.destination;
            if g.ips.len() < MAX_AGGREGATE_IPS && !g.ips.contains(&dst.ip) {
                g.ips.push(dst.ip);
            }
            if g.ports.len() < MAX_AGGREGATE_PORTS && !g.ports.contains(&dst.port) {
                g.ports.push(dst.port);
            }
            g.last_event = alert.event.clone();
            let escalates = alert.level > g.alerted;
            if (alert.level, alert.risk_score) > (g.best.level, g.best.risk_score) {
                g.best = alert.clone();
            }
            if escalates {
                g.alerted = alert.level;
                out.push(alert);
            }
            return;
        }
        if self.groups.len() >= MAX_OPEN_GROUPS
            && let Some((&(end, seq), _)) = self.by_end.first_key_value()
        {
            let old = self.by_end.remove(&(end, seq)).expect("present");
            if let Some(g) = self.groups.remove(&old) {
                let at = ts.min(end).max(g.last_seen);
                push_summary(g, at, out);
            }
        }
        self.seq += 1;
        let end = Timestamp(ts.0.saturating_add(spec.window_ns));
        self.by_end.insert((end, self.seq), key.clone());
        let dst = alert.event.destination;
        self.groups.insert(
            key,
            Group {
                end,
                seq: self.seq,
                count: 1,
                first_seen: ts,
                last_seen: ts,
                ips: vec![dst.ip],
                ports: vec![dst.port],
                last_event: alert.event.clone(),
                alerted: alert.level,
                best: alert.clone(),
            },
        );
        out.push(alert);
    }
}

/// The value of the first case whose `when` holds (or that has none).
fn choose<T: Clone>(
    cases: &[Case<T>],
    tests: &Tests,
    rec: &ConnectionRecord,
    s: &mut Scratch,
) -> Option<T> {
    cases
        .iter()
        .find(|c| c.when.as_ref().is_none_or(|w: &Cond| w.eval(tests, rec, s)))
        .map(|c| c.value.clone())
}

/// A summary only when the window held more than the alert already sent.
fn push_summary(g: Group, at: Timestamp, out: &mut Vec<Alert>) {
    if g.count < 2 {
        return;
    }
    let mut a = g.best;
    a.timestamp = at;
    a.event = g.last_event;
    a.aggregate = Some(Aggregate {
        count: g.count,
        first_seen: g.first_seen.to_rfc3339(),
        last_seen: g.last_seen.to_rfc3339(),
        destination_ips: g.ips.iter().map(|ip| ip.to_string()).collect(),
        destination_ports: g.ports,
    });
    out.push(a);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Endpoint, ProcessInfo, Transport};

    const RULES: &str = r#"
title: Interpreter to a C2 port
id: 11111111-1111-4111-8111-111111111111
logsource:
    category: network_connection
    product: linux
detection:
    selection:
        Image|endswith:
            - '/python3'
            - '/curl'
        DestinationPort: 8088
    filter:
        CommandLine|contains: '--allowed'
    condition: selection and not filter
level: high
---
title: Shell with an interactive flag
id: 22222222-2222-4222-8222-222222222222
logsource:
    category: network_connection
    product: linux
detection:
    selection:
        Image|endswith: '/bash'
        ProcessArgs: '-i'
        User|startswith: 'ro'
    condition: selection
level: high
"#;

    fn set() -> Arc<RuleSet> {
        Arc::new(
            RuleSet::from_texts(&[("r.yml", RULES)])
                .expect("the test rules load")
                .rules,
        )
    }

    fn process(i: u32) -> ProcessInfo {
        let (exe, args, user): (&str, &[&str], &str) = match i % 5 {
            0 => ("/usr/bin/python3", &["python3", "-c", "x"], "bob"),
            1 => ("/usr/bin/curl", &["curl", "--allowed", "x"], "bob"),
            2 => ("/usr/bin/bash", &["bash", "-i"], "root"),
            3 => ("/usr/bin/bash", &["bash", "-i"], "alice"),
            _ => ("/usr/bin/firefox", &["firefox"], "bob"),
        };
        ProcessInfo {
            pid: 100 + i,
            executable: Some(exe.into()),
            command_line: Some(args.join(" ")),
            args: args.iter().map(|a| a.to_string()).collect(),
            user_name: Some(user.into()),
            ..ProcessInfo::default()
        }
    }

    fn record(p: Arc<ProcessInfo>, port: u16) -> ConnectionRecord {
        ConnectionRecord {
            timestamp: Timestamp(1),
            host_name: "h".into(),
            process: p,
            source: None,
            destination: Endpoint {
                ip: "203.0.113.9".parse().expect("an address"),
                port,
            },
            transport: Transport::Tcp,
            partial: false,
            suppressed: 0,
            probe: None,
            dns_resolver: false,
            domain: None,
            domain_source: None,
            dns: None,
            connection_id: None,
            life: None,
        }
    }

    /// The per-process cache gives every event the outcome a fresh engine gives it: with
    /// processes reused across events, dropped, and replaced by others (whose `Arc` may
    /// get a freed process's address).
    #[test]
    fn process_cache_matches_a_fresh_engine() {
        let set = set();
        let mut cached = RuleEngine::new(Arc::clone(&set));
        let mut live: Vec<Arc<ProcessInfo>> = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut hits = 0;
        for n in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = match x % 4 {
                // A process seen before (the common case).
                0 | 1 if !live.is_empty() => Arc::clone(&live[(x >> 8) as usize % live.len()]),
                // A new process; sometimes one that ends.
                _ => {
                    let p = Arc::new(process((x >> 16) as u32));
                    if live.len() < 40 {
                        live.push(Arc::clone(&p));
                    } else {
                        live[(x >> 24) as usize % 40] = Arc::clone(&p);
                    }
                    p
                }
            };
            let port = if n % 3 == 0 { 443 } else { 8088 };
            let rec = record(p, port);
            let got = cached.matching_rule_ids(&rec);
            let want = RuleEngine::new(Arc::clone(&set)).matching_rule_ids(&rec);
            assert_eq!(got, want, "event {n}: {:?} port {port}", rec.process);
            hits += got.len();
        }
        assert!(hits > 1_000, "the rules matched only {hits} times");
    }

    /// The default rules and every SigmaHQ rule, on processes reused across events in a
    /// varied order: the indexed, per-process cached evaluation gives what evaluating every
    /// rule from scratch gives.
    #[test]
    fn cached_and_indexed_evaluation_matches_the_full_evaluation() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sigma-linux-network");
        let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading the SigmaHQ rules in {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yml"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no SigmaHQ rules in {}", dir.display());
        let set = Arc::new(
            RuleSet::load_with_builtin(&paths)
                .expect("default + SigmaHQ rules load")
                .rules,
        );
        let images = [
            "/usr/bin/bash",
            "/usr/bin/python3.11",
            "/usr/bin/curl",
            "/usr/bin/nc.openbsd",
            "/usr/bin/vim.basic",
            "/usr/sbin/sshd",
            "/usr/lib/firefox-esr/firefox-esr",
            "/usr/local/bin/node",
            "/usr/bin/perl",
        ];
        let args: [&[&str]; 5] = [
            &["x"],
            &["bash", "-i"],
            &["python3", "-c", "s.connect(('203.0.113.7',4444))"],
            &["nc", "-e", "/bin/sh"],
            &["/usr/bin/python3", "/usr/bin/unattended-upgrade"],
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
            ("198.51.100.3", 53),
        ];
        let procs: Vec<Arc<ProcessInfo>> = images
            .iter()
            .flat_map(|img| {
                args.iter().map(move |a| {
                    Arc::new(ProcessInfo {
                        pid: 4242,
                        executable: Some(img.to_string()),
                        name: img.rsplit('/').next().map(str::to_string),
                        command_line: Some(a.join(" ")),
                        args: a.iter().map(|x| x.to_string()).collect(),
                        user_name: Some("bob".into()),
                        ..ProcessInfo::default()
                    })
                })
            })
            .collect();
        let mut cached = RuleEngine::new(Arc::clone(&set));
        let mut reference = RuleEngine::new(Arc::clone(&set));
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut fired = 0;
        for n in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = &procs[(x % procs.len() as u64) as usize];
            let (ip, port) = dsts[(x >> 32) as usize % dsts.len()];
            let mut rec = record(Arc::clone(p), port);
            rec.destination.ip = ip.parse().expect("an address");
            let got = cached.matching_rule_ids(&rec);
            // The reference sees a copy of the process, new each time: nothing cached.
            let mut copy = rec.clone();
            copy.process = Arc::new(ProcessInfo::clone(p));
            let want = reference.matching_rule_ids_unindexed(&copy);
            assert_eq!(got, want, "event {n}: {:?} {ip}:{port}", p.args);
            fired += want.len();
        }
        assert!(fired > 1_000, "the rules matched only {fired} times");
    }

    /// The selection a process's event reuses from its last one (same port) is the one
    /// computed afresh: through learning that drops rules (which invalidates it), port
    /// changes, and processes replaced in their cache slots.
    #[test]
    fn reused_selection_matches_a_fresh_selection() {
        let set = set();
        assert!(set.index.by_process_and_port());
        let mut reusing = RuleEngine::new(Arc::clone(&set));
        let procs: Vec<Arc<ProcessInfo>> = (0..10).map(|i| Arc::new(process(i))).collect();
        let mut x = 0x853c_49e6_748f_ea9b_u64;
        let mut reused = 0;
        for n in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = &procs[(x % procs.len() as u64) as usize];
            // Mostly the port the process used last, as in real traffic.
            let port = [8088, 8088, 8088, 443, 22][(x >> 20) as usize % 5];
            let rec = record(Arc::clone(p), port);
            reusing.scratch.reset();
            if reusing.scratch.cached_selection(p, port).is_some() {
                reused += 1;
            }
            let got = reusing.matching_rule_ids(&rec);
            let want = RuleEngine::new(Arc::clone(&set)).matching_rule_ids(&rec);
            assert_eq!(got, want, "event {n}: {:?} port {port}", p.args);
            let mut copy = rec.clone();
            copy.process = Arc::new(ProcessInfo::clone(p));
            let full = RuleEngine::new(Arc::clone(&set)).matching_rule_ids_unindexed(&copy);
            assert_eq!(got, full, "event {n}: {:?} port {port}", p.args);
        }
        assert!(
            reused > 5_000,
            "the selection was reused only {reused} times"
        );
    }

    /// A stored selection is for its process and port only, and learning that the process
    /// never matches a rule discards it.
    #[test]
    fn stored_selection_is_dropped_by_another_port_and_by_learning() {
        let set = set();
        let mut s = Scratch::new(set.tests.tests.len(), &set.tests.sets, set.rules.len());
        let p = Arc::new(process(0));
        let q = Arc::new(process(1));
        s.reset();
        assert!(s.cached_selection(&p, 80).is_none(), "nothing stored yet");
        s.store_selection(80, &[0b11]);
        s.reset();
        assert_eq!(s.cached_selection(&p, 80), Some(&[0b11u64][..]));
        s.reset();
        assert_eq!(s.cached_selection(&p, 443), None, "another port");
        s.reset();
        assert_eq!(s.cached_selection(&q, 80), None, "another process");
        s.reset();
        assert_eq!(s.cached_selection(&p, 80), Some(&[0b11u64][..]));
        s.exclude(1);
        s.reset();
        assert_eq!(s.cached_selection(&p, 80), None, "learning discards it");
    }

    /// A rule anchored on a string field outside the process (the transport) makes the
    /// selection depend on more than the process and port: it is never reused.
    #[test]
    fn selection_on_event_strings_is_not_reused() {
        let rules = r#"
title: UDP from curl
id: 33333333-3333-4333-8333-333333333333
logsource:
    category: network_connection
    product: linux
detection:
    selection:
        Protocol: 'udp'
    condition: selection
level: low
"#;
        let set = Arc::new(
            RuleSet::from_texts(&[("u.yml", rules)])
                .expect("the test rule loads")
                .rules,
        );
        assert!(!set.index.by_process_and_port());
        let mut e = RuleEngine::new(Arc::clone(&set));
        let p = Arc::new(process(1));
        for i in 0..4 {
            let mut rec = record(Arc::clone(&p), 53);
            rec.transport = if i % 2 == 0 {
                Transport::Udp
            } else {
                Transport::Tcp
            };
            assert_eq!(
                e.matching_rule_ids(&rec).len(),
                usize::from(i % 2 == 0),
                "{i}"
            );
        }
    }

    /// Each event of one process gets the same outcome, and another process with the same
    /// address-free content gets its own.
    #[test]
    fn process_cache_keeps_processes_apart() {
        let mut e = RuleEngine::new(set());
        let python = Arc::new(process(0));
        let curl = Arc::new(process(1));
        let root_shell = Arc::new(process(2));
        let user_shell = Arc::new(process(3));
        for _ in 0..3 {
            assert_eq!(
                e.matching_rule_ids(&record(Arc::clone(&python), 8088))
                    .len(),
                1
            );
            assert!(
                e.matching_rule_ids(&record(Arc::clone(&python), 443))
                    .is_empty()
            );
            assert!(
                e.matching_rule_ids(&record(Arc::clone(&curl), 8088))
                    .is_empty()
            );
            assert_eq!(
                e.matching_rule_ids(&record(Arc::clone(&root_shell), 22))
                    .len(),
                1
            );
            assert!(
                e.matching_rule_ids(&record(Arc::clone(&user_shell), 22))
                    .is_empty()
            );
        }
    }
}
