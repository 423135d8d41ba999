//! Correlation groups on the stream: one group per correlation rule and `group-by` values,
//! kept in a least-recently-used store of at most [`MAX_GROUPS`] groups (the least recently
//! matched goes first, counted in `evictions`), windows closed by event time.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use std::hash::BuildHasher as _;

use super::prefix::PrefixCache;
use super::store;
use super::window::{Texts, Value, Window};
use super::{CorrelationRule, Kind, MAX_ALERT_VALUES};
use crate::record::{Alert, ConnectionRecord, Correlation, Detector, Timestamp};
use crate::rules::field::{Field, FieldValue};

/// Groups kept at once over all correlation rules. A group of one entry is one 64-byte slot
/// and about 6 bytes of index (more for groups holding many values); past the cap the least
/// recently matched group is dropped (its count starts again at its next match) and
/// counted. 50,000 rather than 100,000: with 100,000 beacon keys and 10,000 processes the
/// daemon holds about 60 MiB before any group, and 100,000 groups took the memory stage to
/// 64.9 MiB, over its 64 MiB goal (BENCHMARKS.md section 5); no group smaller than its key,
/// links and one timestamped entry would fit 100,000 in what is left.
pub const MAX_GROUPS: usize = 50_000;

/// A group: a 64-bit digest of its `group-by` values, mixed with a random word of its
/// correlation (`CorrelationEngine::salt`). The values are a few dozen bytes the process
/// chose (its path, its user); keeping only a digest, keyed at random per engine, makes a
/// key a word rather than an allocation (8 bytes of each of up to 50,000 groups), and no
/// input can pick two groups that share one. Two groups share one by chance with odds of
/// 2^-64 per pair (under 1 in 10^10 with all 50,000 groups open); they would then count
/// together. The alert takes its values from the event, never from the key. Nothing
/// iterates the store in hash order, so output stays deterministic.
type GroupKey = u64;

type Store = store::Store<Group>;

#[derive(Debug)]
struct Group {
    corr: u16,
    win: Window,
    /// What few groups need, boxed so that the others stay one 64-byte slot (memory per
    /// group, mod.rs): groups of a bounded condition, groups that alerted, groups counting
    /// values kept as digests.
    extra: Option<Box<Extra>>,
}

#[derive(Debug)]
struct Extra {
    /// Rising conditions: no alert before this time (one alert per timespan).
    quiet_until: Timestamp,
    /// The text of digest values (`Value::is_digest`), for the alert.
    texts: Texts,
    bounded: Option<Bounded>,
}

impl Extra {
    fn boxed() -> Box<Extra> {
        Box::new(Extra {
            quiet_until: Timestamp(i64::MIN),
            texts: Vec::new(),
            bounded: None,
        })
    }
}

#[derive(Debug)]
struct Bounded {
    /// The window's end and its key in `deadlines`.
    deadline: (Timestamp, u64),
    /// The latest match (the alert's event when the window closes) and its rule's position.
    last: Option<(ConnectionRecord, u8)>,
}

// A group is most of one slot of the store (with its key and links, 64 bytes): keep it
// there (memory per group, mod.rs).
const _: () = assert!(size_of::<Group>() <= 48);

impl Group {
    fn deadline(&self) -> Option<(Timestamp, u64)> {
        self.bounded().map(|b| b.deadline)
    }

    fn bounded(&self) -> Option<&Bounded> {
        self.extra.as_ref()?.bounded.as_ref()
    }

    fn quiet_until(&self) -> Timestamp {
        self.extra
            .as_ref()
            .map_or(Timestamp(i64::MIN), |e| e.quiet_until)
    }

    fn texts(&self) -> &[(u64, Box<str>)] {
        self.extra.as_ref().map_or(&[], |e| &e.texts[..])
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Extra::boxed)
    }
}

/// Correlation state of one pipeline.
pub(crate) struct CorrelationEngine {
    store: Store,
    /// Window ends of groups with a bounded condition, earliest first.
    deadlines: BTreeMap<(Timestamp, u64), GroupKey>,
    seq: u64,
    /// The group-by values of the current match, encoded (reused buffer).
    key: Vec<u8>,
    hasher: foldhash::fast::RandomState,
    prefixes: PrefixCache,
    evictions: u64,
    last_event: Timestamp,
    /// Event time of the next sweep for groups whose matches all left their window.
    next_sweep: Timestamp,
}

/// How often (event time) idle groups are looked for: they only hold memory meanwhile.
const SWEEP_EVERY_NS: i64 = Timestamp::NANOS_PER_SEC;

impl Default for CorrelationEngine {
    fn default() -> Self {
        CorrelationEngine {
            // At the cap, an insert drops the least recently used group (see `on_match`).
            store: Store::new(MAX_GROUPS),
            deadlines: BTreeMap::new(),
            seq: 0,
            key: Vec::with_capacity(128),
            hasher: Default::default(),
            prefixes: PrefixCache::default(),
            evictions: 0,
            last_event: Timestamp(i64::MIN),
            next_sweep: Timestamp(i64::MIN),
        }
    }
}

impl CorrelationEngine {
    /// The random word that tells correlation `c`'s keys from the others'.
    fn salt(&self, c: u16) -> u64 {
        self.hasher.hash_one(c)
    }

    /// Open groups.
    pub fn groups(&self) -> usize {
        self.store.len()
    }

    /// Groups dropped because `MAX_GROUPS` were open.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Rule `pos` of correlation `c` matched `rec`.
    pub fn on_match(
        &mut self,
        corrs: &[CorrelationRule],
        c: usize,
        pos: usize,
        rec: &ConnectionRecord,
        out: &mut Vec<Alert>,
    ) {
        let rule = &corrs[c];
        let t = rec.timestamp;
        self.last_event = self.last_event.max(t);
        let v = match rule.kind {
            Kind::ValueCount => match value_of(rec, &rule.value_fields[pos], &self.hasher) {
                Some(v) => v,
                // A missing value is not a value (as count(distinct) leaves out null).
                None => return,
            },
            _ => Value::NONE,
        };
        let (per_proc, per_event) = &rule.split_fields[pos];
        let prefix =
            self.prefixes
                .digest((c as u32) << 8 | pos as u32, per_proc, rec, &self.hasher);
        let mut digest = prefix;
        for &f in per_event {
            // Numbers and addresses hash as one word; text through the encoded bytes.
            digest = match FieldValue::of(rec, f) {
                FieldValue::Number(n) => self.hasher.hash_one((digest, 3u8, n)),
                FieldValue::Ip(IpAddr::V4(a)) => self.hasher.hash_one((digest, 4u8, u32::from(a))),
                FieldValue::Ip(IpAddr::V6(a)) => self.hasher.hash_one((digest, 5u8, u128::from(a))),
                other => {
                    self.key.clear();
                    encode(&mut self.key, other);
                    self.hasher.hash_one((digest, &self.key[..]))
                }
            };
        }
        let key: GroupKey = digest ^ self.salt(c as u16);
        let bounded = !rule.bounds.rising();
        if bounded
            && let Some(g) = self.store.peek(key)
            && g.deadline().is_some_and(|(end, _)| t >= end)
        {
            // This group's window is over by the event's time: test it, then start anew.
            let g = self.store.pop(key).expect("present");
            let (end, seq) = g.deadline().expect("bounded");
            self.deadlines.remove(&(end, seq));
            close(corrs, g, end, out);
        }
        // One lookup on the common path (the group exists). At the cap, inserting drops
        // the least recently matched group; a deadline it leaves behind is recognized by
        // its sequence number and skipped (`advance`).
        let mut created = false;
        let (g, dropped) = self.store.get_or_insert_mut(key, || {
            created = true;
            Group {
                corr: c as u16,
                win: Window::new(t),
                extra: None,
            }
        });
        if created {
            self.evictions += u64::from(dropped.is_some());
            if bounded {
                self.seq += 1;
                let d = (Timestamp(t.0.saturating_add(rule.timespan_ns)), self.seq);
                self.deadlines.insert(d, key);
                g.extra().bounded = Some(Bounded {
                    deadline: d,
                    last: None,
                });
            }
        }
        if g.win.add(rule, pos as u8, t, v) && v.is_digest() {
            let fields = &rule.value_fields[pos];
            let Group { win, extra, .. } = g;
            let texts = &mut extra.get_or_insert_with(Extra::boxed).texts;
            win.keep_text(texts, v, || value_text(rec, fields));
        }
        if bounded {
            if let Some(b) = g.extra.as_mut().and_then(|e| e.bounded.as_mut()) {
                b.last = Some((rec.clone(), pos as u8));
            }
            return;
        }
        g.win.prune(rule.timespan_ns);
        if g.win.newest >= g.quiet_until() {
            let n = g.win.count(rule);
            if rule.bounds.holds(n) {
                out.push(alert(rule, pos, rec, &g.win, g.texts(), n, t));
                // Count afresh; at most one alert per timespan.
                g.win.entries.clear();
                g.extra().quiet_until = Timestamp(g.win.newest.0.saturating_add(rule.timespan_ns));
            }
        }
    }

    /// Event time is `now`: bounded windows that ended are tested, and groups whose events
    /// all left their window are dropped.
    pub fn advance(&mut self, corrs: &[CorrelationRule], now: Timestamp, out: &mut Vec<Alert>) {
        while let Some((&(end, seq), _)) = self.deadlines.first_key_value() {
            if end > now {
                break;
            }
            let key = self.deadlines.remove(&(end, seq)).expect("present");
            // The group may have been evicted, and its key reused by a newer group.
            if self
                .store
                .peek(key)
                .is_some_and(|g| g.deadline() == Some((end, seq)))
                && let Some(g) = self.store.pop(key)
            {
                close(corrs, g, end, out);
            }
        }
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = Timestamp(now.0.saturating_add(SWEEP_EVERY_NS));
        // The least recently matched first: stop at the first group still in its window.
        while let Some((_, g)) = self.store.peek_lru() {
            let rule = &corrs[g.corr as usize];
            let idle_until = g.win.newest.0.saturating_add(rule.timespan_ns);
            if g.bounded().is_some() || idle_until > now.0 || g.quiet_until() > now {
                break;
            }
            self.store.pop_lru();
        }
    }

    /// End of input or shutdown: every bounded window is tested now, stamped with its end
    /// or the last event's time, whichever is earlier (never the wall clock).
    pub fn finish(&mut self, corrs: &[CorrelationRule], out: &mut Vec<Alert>) {
        for ((end, seq), key) in std::mem::take(&mut self.deadlines) {
            if self
                .store
                .peek(key)
                .is_some_and(|g| g.deadline() == Some((end, seq)))
                && let Some(g) = self.store.pop(key)
            {
                let at = end.min(self.last_event.max(g.win.newest));
                close(corrs, g, at, out);
            }
        }
        self.store.clear();
    }

    /// A reload: groups of a correlation whose id and definition are unchanged are kept
    /// (under its index in the new set); the others are dropped.
    pub fn set_rules(&mut self, old: &[CorrelationRule], new: &[CorrelationRule]) {
        let map: Vec<Option<u16>> = old
            .iter()
            .map(|o| {
                new.iter()
                    .position(|n| n.meta.id == o.meta.id && n.fingerprint == o.fingerprint)
                    .map(|i| i as u16)
            })
            .collect();
        self.deadlines.clear();
        self.prefixes.clear();
        let mut kept = Vec::with_capacity(self.store.len());
        // Oldest first, so pushing them back keeps their order.
        while let Some((mut key, mut g)) = self.store.pop_lru() {
            let Some(Some(to)) = map.get(g.corr as usize).copied() else {
                continue;
            };
            key ^= self.salt(g.corr) ^ self.salt(to);
            g.corr = to;
            if let Some(d) = g.deadline() {
                self.deadlines.insert(d, key);
            }
            kept.push((key, g));
        }
        for (k, g) in kept {
            // As many as were held: nothing is dropped.
            let _ = self.store.push(k, g);
        }
    }
}

/// A bounded window is over: alert if its condition holds.
fn close(corrs: &[CorrelationRule], g: Group, at: Timestamp, out: &mut Vec<Alert>) {
    let rule = &corrs[g.corr as usize];
    let n = g.win.count(rule);
    if let Some(Some((rec, pos))) = g.bounded().map(|b| &b.last)
        && rule.bounds.holds(n)
    {
        out.push(alert(
            rule,
            usize::from(*pos),
            rec,
            &g.win,
            g.texts(),
            n,
            at,
        ));
    }
}

fn alert(
    rule: &CorrelationRule,
    pos: usize,
    rec: &ConnectionRecord,
    win: &Window,
    texts: &[(u64, Box<str>)],
    count: u64,
    at: Timestamp,
) -> Alert {
    let group = rule
        .group_by
        .iter()
        .zip(&rule.group_fields[pos])
        .map(|(name, &f)| (name.clone(), json_of(FieldValue::of(rec, f))))
        .collect();
    let values = (rule.kind == Kind::ValueCount).then(|| {
        win.entries
            .iter()
            .take(MAX_ALERT_VALUES)
            .map(|e| e.v.to_json(texts))
            .collect()
    });
    let (first, last) = win.span();
    Alert {
        timestamp: at,
        event: rec.clone(),
        rule: Arc::clone(&rule.meta),
        techniques: Arc::clone(&rule.techniques),
        detector: Detector::Rule,
        level: rule.level,
        risk_score: None,
        labels: BTreeMap::new(),
        aggregate: None,
        beacon: None,
        correlation: Some(Box::new(Correlation {
            kind: rule.kind.as_str(),
            rules: rule.rule_ids.clone(),
            group,
            count,
            field: (rule.kind == Kind::ValueCount).then(|| rule.value_names.clone()),
            values,
            first_seen: first.to_rfc3339(),
            last_seen: last.to_rfc3339(),
            timespan: rule.timespan.clone(),
        })),
    }
}

fn json_of(v: FieldValue<'_>) -> serde_json::Value {
    match v {
        FieldValue::Missing => serde_json::Value::Null,
        FieldValue::Text(t) => t.into(),
        FieldValue::List(items) => items.to_vec().into(),
        FieldValue::Number(n) => n.into(),
        FieldValue::Ip(ip) => ip.to_string().into(),
        FieldValue::Bool(b) => b.into(),
    }
}

/// The value `value_count` counts: one field's, or the fields' together (the
/// specification's list of fields, linked by AND); `None` when one is missing.
fn value_of(
    rec: &ConnectionRecord,
    fields: &[Field],
    hasher: &foldhash::fast::RandomState,
) -> Option<Value> {
    if let [f] = fields {
        let v = FieldValue::of(rec, *f);
        match v {
            FieldValue::Missing => return None,
            FieldValue::Number(n) if n <= u64::MAX >> 2 => return Value::num(n),
            FieldValue::Ip(IpAddr::V4(a)) => return Some(Value::ipv4(a)),
            FieldValue::Bool(b) => return Some(Value::boolean(b)),
            _ => {}
        }
    }
    let mut key = Vec::with_capacity(64);
    for &f in fields {
        match FieldValue::of(rec, f) {
            FieldValue::Missing => return None,
            v => encode(&mut key, v),
        }
    }
    Some(Value::digest(hasher.hash_one(&key[..])))
}

/// The text of a value kept as a digest, for the alert: one field's value, or the fields'
/// values joined by NUL.
fn value_text(rec: &ConnectionRecord, fields: &[Field]) -> String {
    fields
        .iter()
        .map(|&f| match json_of(FieldValue::of(rec, f)) {
            serde_json::Value::String(t) => t,
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\u{0}")
}

/// Appends one group-by value to a key, self-delimiting so that no two value lists give
/// the same bytes.
pub(super) fn encode(key: &mut Vec<u8>, v: FieldValue<'_>) {
    let text = |key: &mut Vec<u8>, t: &str| {
        key.extend_from_slice(&(t.len() as u32).to_le_bytes());
        key.extend_from_slice(t.as_bytes());
    };
    match v {
        FieldValue::Missing => key.push(0),
        FieldValue::Text(t) => {
            key.push(1);
            text(key, t);
        }
        FieldValue::List(items) => {
            key.push(2);
            key.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for i in items {
                text(key, i);
            }
        }
        FieldValue::Number(n) => {
            key.push(3);
            key.extend_from_slice(&n.to_le_bytes());
        }
        FieldValue::Ip(IpAddr::V4(a)) => {
            key.push(4);
            key.extend_from_slice(&a.octets());
        }
        FieldValue::Ip(IpAddr::V6(a)) => {
            key.push(5);
            key.extend_from_slice(&a.octets());
        }
        FieldValue::Bool(b) => key.push(6 + u8::from(b)),
    }
}
