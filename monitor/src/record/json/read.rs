//! Replay input: ECS JSON lines back into `ConnectionRecord`s.
//!
//! Length: about 2,900 lines of hand-written fast path plus its differential tests against
//! serde_json, one job. Kept because no crate does it fast enough: sonic-rs with borrowed
//! values and a process interner replayed the benchmark mix at about a third of this
//! reader's rate (BENCHMARKS.md, "JSON reader"). Fenced: only `record::json` reaches it.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde::Deserialize;

use super::addresses::ParsedAddresses;
use super::*;

// ---- ECS input (replay) ----------------------------------------------------------------
//
// Two ways to one result. `decode_general` is serde_json into the `In*` structs: any field
// order, any valid JSON, and the error naming the field. `RecordDecoder::decode_fast` walks
// the line's bytes itself for the common case and gives up (returns `None`, and the general
// path runs) on anything it does not fully check: escapes in keys or in the fields it
// reads, `null` where an object or string is expected, duplicate fields, other record
// kinds, values out of range, any error. Whatever it skips is still checked (plain strings
// by itself, anything else by serde_json), so it never accepts a line the general path
// rejects.
//
// It reads bytes, not text: each byte it accepts is either ASCII it compared (punctuation,
// names, digits, addresses, timestamps), or part of bytes remembered from an earlier line
// (checked then), or checked as UTF-8 where it is read (other strings, objects parsed by
// serde_json). So a line it decodes needs no separate UTF-8 pass; one it gives up on gets
// the whole-line check (and its error) before the general path.
//
// Replay hands it the rest of the reader's buffer (`decode_in_place`): it finds the line's
// end itself, so a line it decodes is never searched for its line feed.
//
// Most of a line is objects that repeat from line to line: `process`, `user`, `group` and
// `container` for every event of a process, and `event`, `host`, `network` and `monitor`
// in a handful of variants. Two caches recognise repeats by comparing bytes instead of
// parsing them again:
// - `KnownRuns`: a run of consecutive object members with the name after them (or the
//   line's closing brace), e.g. `"event":{..},"host":{..},..,"user":{..},"source":` and
//   `"network":{..},"monitor":{..}}`, with everything the run says (host, transport, the
//   shared `ProcessInfo`, ...). One lookup and one comparison per run.
// - `KnownObjects`: single objects, for lines whose runs are new; the `ProcessInfo` built
//   from one combination of process objects is shared (one `Arc`) by every record of that
//   process.

/// Sets and ways of the known-object cache: up to 2,048 objects.
const OBJECT_SETS: usize = 256;
const OBJECT_WAYS: usize = 8;
/// Longest object remembered; longer ones (huge command lines) are parsed every time. With
/// the set count this bounds the cache at about 8 MiB.
const OBJECT_MAX_BYTES: usize = 4096;
/// Bytes of an object's start that choose its set.
const OBJECT_KEY_BYTES: usize = 64;
/// Most process combinations remembered (the table is emptied when full), and the most
/// bytes of JSON one may come from, so the table stays under about 10 MiB.
const PROCESS_COMBINATIONS: usize = 1024;
const PROCESS_COMBINATION_MAX_BYTES: usize = 4096;
/// Most runs remembered (the oldest is replaced when full) and the longest one: at most
/// 4 MiB of bytes, plus one shared `ProcessInfo` per run with process objects (each from at
/// most 4 KiB of JSON; most are the same `Arc`s the combination table holds).
const RUNS: usize = 1024;
const RUN_MAX_BYTES: usize = 4096;
/// Most `[` and `{` in a value parsed on its own. serde_json limits nesting to 128 for the
/// whole line; a value parsed on its own starts at depth 0, so deep ones go to the general
/// path, which applies the limit as it always has.
const MAX_BRACKETS_IN_PART: usize = 64;
/// Sets of the address cache (two addresses each: 4,096 in 320 KiB).
const ADDRESS_SETS_LOG2: u32 = 11;

/// `decode_fast`'s bit for each top-level member (duplicate check); unknown names share
/// bit 11 and may repeat.
const BIT_HOST: u16 = 1 << 4;
const BIT_NETWORK: u16 = 1 << 5;
const BIT_MONITOR: u16 = 1 << 6;
/// `process`, `user`, `group`, `container`: the parts of a `ProcessInfo`.
const PROCESS_PARTS: u16 = 0b1111 << 7;
const BIT_OTHER: u16 = 1 << 11;

/// The top-level objects the decoder remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObjectField {
    Event,
    Host,
    Network,
    Monitor,
    Process,
    User,
    Group,
    Container,
}

/// What a `monitor` object says about the event.
#[derive(Clone, Copy, Debug, Default)]
struct MonitorPart {
    partial: bool,
    suppressed: u32,
    dns_resolver: bool,
    probe: Option<&'static str>,
    domain_source: Option<DomainSource>,
}

/// What a known object says.
#[derive(Clone, Debug)]
enum ObjectValue {
    /// `event` of kind `event` (other kinds go the general way).
    Event,
    Host(Arc<str>),
    Network(Transport),
    Monitor(MonitorPart),
    /// One of the process objects: the `ProcessInfo` belongs to the combination.
    ProcessPart,
}

struct KnownObject {
    field: ObjectField,
    /// Unique for the decoder's life (0 is never used), so ids name one set of bytes.
    id: u64,
    /// Checked JSON (and UTF-8) when it was remembered.
    bytes: Box<[u8]>,
    value: ObjectValue,
}

/// Objects seen before, by their exact bytes: a small set-associative cache.
struct KnownObjects {
    /// `OBJECT_SETS` × `OBJECT_WAYS` slots; empty when caching is off.
    slots: Vec<Option<KnownObject>>,
    /// The way each set replaces next.
    victims: Vec<u8>,
    next_id: u64,
    hasher: foldhash::fast::FixedState,
}

impl KnownObjects {
    fn new(caching: bool) -> Self {
        let (slots, sets) = if caching {
            (OBJECT_SETS * OBJECT_WAYS, OBJECT_SETS)
        } else {
            (0, 0)
        };
        KnownObjects {
            slots: (0..slots).map(|_| None).collect(),
            victims: vec![0; sets],
            next_id: 1,
            hasher: foldhash::fast::FixedState::with_seed(0x7265_706c_6179),
        }
    }

    fn caching(&self) -> bool {
        !self.slots.is_empty()
    }

    /// The set an object starting at `rest` belongs to. An object runs at least to the
    /// first `}` (its own closing brace is one), so the bytes up to there, at most
    /// `OBJECT_KEY_BYTES` of them, are the object's own in any line.
    fn set_of(&self, field: ObjectField, rest: &[u8]) -> Option<usize> {
        let head = &rest[..rest.len().min(OBJECT_KEY_BYTES)];
        let key = match memchr::memchr(b'}', head) {
            Some(close) => &head[..=close],
            // No `}` in the first OBJECT_KEY_BYTES: the object is longer than that.
            None if head.len() == OBJECT_KEY_BYTES => head,
            None => return None,
        };
        let mut h = self.hasher.build_hasher();
        h.write_u8(field as u8);
        h.write(key);
        Some((h.finish() as usize) % OBJECT_SETS)
    }

    /// The known object `rest` starts with. Its bytes are a whole JSON object, so a line
    /// that starts with them holds exactly that object there.
    fn find(&self, set: usize, field: ObjectField, rest: &[u8]) -> Option<&KnownObject> {
        self.slots[set * OBJECT_WAYS..(set + 1) * OBJECT_WAYS]
            .iter()
            .flatten()
            .find(|o| o.field == field && rest.starts_with(&o.bytes))
    }

    /// Remembers an object checked by serde_json; its id, or 0 when it is not kept. One
    /// with a line feed (possible only in text given to `decode`, where it is whitespace)
    /// is not kept: replay finds lines in place, and a remembered object must not run past
    /// the end of one.
    fn insert(&mut self, set: usize, field: ObjectField, text: &[u8], value: ObjectValue) -> u64 {
        if !self.caching() || text.len() > OBJECT_MAX_BYTES || memchr::memchr(b'\n', text).is_some()
        {
            return 0;
        }
        let id = self.next_id;
        self.next_id += 1;
        let ways = &mut self.slots[set * OBJECT_WAYS..(set + 1) * OBJECT_WAYS];
        let way = match ways.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                let v = &mut self.victims[set];
                let way = usize::from(*v);
                *v = ((way + 1) % OBJECT_WAYS) as u8;
                way
            }
        };
        ways[way] = Some(KnownObject {
            field,
            id,
            bytes: text.into(),
            value,
        });
        id
    }

    /// Reads the object at the cursor: from the cache, or checked by serde_json (the
    /// process objects are parsed with their combination, in `RecordDecoder::process`).
    fn read<'a>(
        &mut self,
        field: ObjectField,
        c: &mut Cursor<'a>,
    ) -> Option<(ObjectPart<'a>, ObjectValue)> {
        if c.peek()? != b'{' {
            return None;
        }
        let start = c.pos;
        let mut set = 0;
        if self.caching() {
            let rest = &c.b[start..];
            set = self.set_of(field, rest)?;
            if let Some(o) = self.find(set, field, rest) {
                c.pos += o.bytes.len();
                let part = ObjectPart {
                    text: &c.b[start..c.pos],
                    id: o.id,
                    set,
                };
                return Some((part, o.value.clone()));
            }
        }
        let text = c.object_span()?;
        let value = match field {
            ObjectField::Event => {
                let e: InEvent = parse_part(text)?;
                if e.kind.is_some_and(|k| k != "event") {
                    return None;
                }
                // Lifecycle records (issue #14) are read by the general path.
                if e.action.as_deref().and_then(LifeAction::parse).is_some()
                    || e.outcome.is_some()
                    || e.duration.is_some()
                {
                    return None;
                }
                ObjectValue::Event
            }
            ObjectField::Host => {
                let h: InHost = parse_part(text)?;
                ObjectValue::Host(h.hostname.unwrap_or_default().into())
            }
            ObjectField::Network => {
                let n: InNetwork = parse_part(text)?;
                ObjectValue::Network(transport_of(n.transport.as_deref())?)
            }
            ObjectField::Monitor => {
                let m: InMonitor = parse_part(text)?;
                // A connection id differs on every line: not worth remembering.
                if m.connection_id.is_some() || m.outcome_reason.is_some() || m.flow_end.is_some() {
                    return None;
                }
                ObjectValue::Monitor(MonitorPart {
                    partial: m.enrichment.as_deref() == Some("partial"),
                    suppressed: m.suppressed.unwrap_or(0),
                    dns_resolver: m.dns_resolver.unwrap_or(false),
                    probe: probe_of(m.probe.as_deref())?,
                    domain_source: match m.domain_source.as_deref() {
                        None => None,
                        Some(s) => Some(DomainSource::parse(s)?),
                    },
                })
            }
            // Checked and kept once the combination has parsed.
            _ => return Some((ObjectPart { text, id: 0, set }, ObjectValue::ProcessPart)),
        };
        let id = self.insert(set, field, text, value.clone());
        Some((ObjectPart { text, id, set }, value))
    }
}

/// What follows a known run: a member's name and colon, or the line's closing brace.
#[derive(Clone, Copy)]
enum RunEnd {
    Member(u16, TopLevel),
    Close,
}

/// A run of top-level object members seen before, by its exact bytes (checked JSON and
/// UTF-8 when it was remembered), and all it says.
struct KnownRun {
    /// From the first member's name to the colon after the next member's name, or to the
    /// closing brace: so no run is a prefix of another (the byte where they part is in
    /// both), which the tree's lookup relies on.
    bytes: Box<[u8]>,
    /// The members' bits (not the next member's).
    seen: u16,
    host: Option<Arc<str>>,
    transport: Option<Transport>,
    monitor: Option<MonitorPart>,
    /// The process of the run's process objects, when it has some. A line whose process
    /// objects are not all in this run goes the per-object way.
    process: Option<Arc<ProcessInfo>>,
    end: RunEnd,
}

/// A child in the run tree: a node index, or a run slot with `LEAF` set.
const LEAF: u32 = 1 << 31;
const EMPTY: u32 = u32::MAX;

/// An inner node of the run tree: runs whose bytes agree before `byte` and differ in its
/// bit `mask`.
#[derive(Clone, Copy, Default)]
struct RunNode {
    byte: u32,
    mask: u8,
    child: [u32; 2],
}

/// Where a child reference lives: the root or one side of a node.
#[derive(Clone, Copy)]
enum ChildSlot {
    Root,
    Node(u32, usize),
}

/// Runs seen before: a crit-bit tree over their bytes, so one walk of a few byte tests
/// finds the only run a line can start with however long the runs' shared prefixes are
/// (processes of one program differ late, in their pids), then one comparison checks it.
/// A walk ends at a leaf after at most one test per node (the tree has no cycles: an
/// insert splices in one new node above a subtree, a removal splices one out).
struct KnownRuns {
    /// `LEAF | slot`, a node index, or `EMPTY`.
    root: u32,
    /// Room for `RUNS` nodes (a tree of at most `RUNS` runs has fewer), so indices taken
    /// modulo `RUNS` need no bounds check in the walk; `None` when caching is off.
    nodes: Option<Box<[RunNode; RUNS]>>,
    free_nodes: Vec<u32>,
    /// At most `RUNS` slots.
    runs: Vec<Option<KnownRun>>,
    /// The slot replaced next when all are taken.
    next_victim: usize,
}

/// The side of a node a byte goes: 1 when it has the node's bit.
fn side(mask: u8, byte: u8) -> usize {
    usize::from(byte & mask != 0)
}

/// A key's byte, 0 past its end (no run holds a 0 byte: JSON text has none).
fn byte_at(key: &[u8], i: usize) -> u8 {
    key.get(i).copied().unwrap_or(0)
}

/// The slot of the run a walk by `key`'s bytes from `root` (not `EMPTY`) ends at.
fn walk(nodes: &[RunNode; RUNS], root: u32, key: &[u8]) -> usize {
    let mut r = root;
    while r & LEAF == 0 {
        let n = &nodes[r as usize % RUNS];
        r = n.child[side(n.mask, byte_at(key, n.byte as usize))];
    }
    (r & !LEAF) as usize
}

impl KnownRuns {
    fn new(caching: bool) -> Self {
        KnownRuns {
            root: EMPTY,
            nodes: caching.then(|| Box::new([RunNode::default(); RUNS])),
            free_nodes: if caching {
                (0..RUNS as u32).rev().collect()
            } else {
                Vec::new()
            },
            runs: Vec::new(),
            next_victim: 0,
        }
    }

    fn caching(&self) -> bool {
        self.nodes.is_some()
    }

    /// The node array (only called when caching).
    fn nodes_mut(&mut self) -> &mut [RunNode; RUNS] {
        self.nodes
            .as_mut()
            .expect("the run tree exists when caching")
    }

    fn child(&self, at: ChildSlot) -> u32 {
        match (at, &self.nodes) {
            (ChildSlot::Node(n, s), Some(nodes)) => nodes[n as usize % RUNS].child[s],
            _ => self.root,
        }
    }

    fn set_child(&mut self, at: ChildSlot, to: u32) {
        match at {
            ChildSlot::Root => self.root = to,
            ChildSlot::Node(n, s) => self.nodes_mut()[n as usize % RUNS].child[s] = to,
        }
    }

    /// The known run `rest` starts with.
    fn find(&self, rest: &[u8]) -> Option<&KnownRun> {
        let nodes = self.nodes.as_ref()?;
        if self.root == EMPTY {
            return None;
        }
        let run = self.runs[walk(nodes, self.root, rest)].as_ref()?;
        rest.starts_with(&run.bytes).then_some(run)
    }

    /// Remembers a run (one already known is left as it is).
    fn insert(&mut self, run: KnownRun) {
        if !self.caching()
            || run.bytes.len() > RUN_MAX_BYTES
            || memchr::memchr2(b'\n', 0, &run.bytes).is_some()
        {
            return;
        }
        if self.find(&run.bytes).is_some_and(|r| r.bytes == run.bytes) {
            return;
        }
        let slot = self.free_slot();
        let Some(nodes) = &self.nodes else {
            return;
        };
        if self.root == EMPTY {
            self.root = LEAF | slot as u32;
            self.runs[slot] = Some(run);
            return;
        }
        let key = &run.bytes;
        let near = self.runs[walk(nodes, self.root, key)]
            .as_ref()
            .map(|r| &r.bytes[..])
            .unwrap_or_default();
        // The first byte where the new run and the nearest one part, and the highest bit of
        // it that differs.
        let len = key.len().max(near.len());
        let Some(byte) = (0..len).find(|&i| byte_at(key, i) != byte_at(near, i)) else {
            return;
        };
        let diff = byte_at(key, byte) ^ byte_at(near, byte);
        let mask = 0x80u8 >> diff.leading_zeros();
        let near_side = side(mask, byte_at(near, byte));
        // Down to where the new node belongs: above the first node that tests a later byte
        // or a lower bit of this one.
        let mut at = ChildSlot::Root;
        loop {
            let r = self.child(at);
            if r & LEAF != 0 {
                break;
            }
            let n = nodes[r as usize % RUNS];
            if n.byte as usize > byte || (n.byte as usize == byte && n.mask < mask) {
                break;
            }
            at = ChildSlot::Node(r, side(n.mask, byte_at(key, n.byte as usize)));
        }
        let mut child = [0; 2];
        child[near_side] = self.child(at);
        child[1 - near_side] = LEAF | slot as u32;
        let Some(index) = self.free_nodes.pop() else {
            return;
        };
        self.nodes_mut()[index as usize % RUNS] = RunNode {
            byte: byte as u32,
            mask,
            child,
        };
        self.set_child(at, index);
        self.runs[slot] = Some(run);
    }

    /// A slot for a new run: a free one, else the oldest run's, taken out of the tree.
    fn free_slot(&mut self) -> usize {
        if self.runs.len() < RUNS {
            self.runs.push(None);
            return self.runs.len() - 1;
        }
        let slot = self.next_victim;
        self.next_victim = (slot + 1) % RUNS;
        if let Some(old) = self.runs[slot].take() {
            self.remove(&old.bytes);
        }
        slot
    }

    /// Takes the run with these bytes out of the tree: its parent node gives way to its
    /// sibling.
    fn remove(&mut self, key: &[u8]) {
        let mut at = ChildSlot::Root;
        let mut parent = None;
        loop {
            let r = self.child(at);
            if r & LEAF != 0 {
                break;
            }
            let Some(nodes) = &self.nodes else {
                return;
            };
            let n = nodes[r as usize % RUNS];
            parent = Some(at);
            at = ChildSlot::Node(r, side(n.mask, byte_at(key, n.byte as usize)));
        }
        match (parent, at) {
            (Some(parent), ChildSlot::Node(node, s)) => {
                let sibling = self.child(ChildSlot::Node(node, 1 - s));
                self.set_child(parent, sibling);
                self.free_nodes.push(node);
            }
            _ => self.root = EMPTY,
        }
    }
}

/// A top-level member name `decode_fast` knows.
#[derive(Clone, Copy)]
enum TopLevel {
    Timestamp,
    Source,
    Destination,
    /// A DNS query record's `dns` object: parsed on its own by serde_json (few lines have
    /// one), while the rest of the line takes the fast path.
    Dns,
    Object(ObjectField),
    Other,
}

/// One object of a line: its bytes, its known-object id (0 if not kept) and its set.
#[derive(Clone, Copy)]
struct ObjectPart<'a> {
    text: &'a [u8],
    id: u64,
    set: usize,
}

/// A run of object members read one by one in a line: remembered if the line decodes.
#[derive(Clone, Copy)]
struct RunCandidate {
    start: usize,
    end: usize,
    seen: u16,
    next: RunEnd,
}

/// The runs of one line to remember if it decodes: at most four (more are not kept).
#[derive(Default)]
struct RunCandidates {
    list: [Option<RunCandidate>; 4],
    len: usize,
}

impl RunCandidates {
    fn push(&mut self, c: RunCandidate) {
        if let Some(slot) = self.list.get_mut(self.len) {
            *slot = Some(c);
            self.len += 1;
        }
    }
}

/// `source` / `destination`: the address's text and the port, either absent.
/// Address, port and (destination only) domain, as found.
type EndpointText<'a> = (Option<&'a [u8]>, Option<u64>, Option<&'a [u8]>);

/// Why `decode_fast_with` gave up.
enum Refusal {
    /// The line is for the general path.
    General,
    /// The line's process objects came from a known run and from elsewhere: read it again
    /// object by object.
    PerObject,
}

/// `?` on `Option` inside `decode_fast_with`.
trait OrGeneral<T> {
    fn general(self) -> Result<T, Refusal>;
}

impl<T> OrGeneral<T> for Option<T> {
    fn general(self) -> Result<T, Refusal> {
        self.ok_or(Refusal::General)
    }
}

/// The date, hour and minute (`YYYY-MM-DDTHH:MM`) of the last timestamp read, and that
/// minute's seconds since 1970-01-01. Only ever set from a minute `minute_secs` accepted.
struct LastMinute {
    text: [u8; 16],
    secs: i64,
}

/// Decodes replay lines into records (see the section comment).
pub(crate) struct RecordDecoder {
    objects: KnownObjects,
    runs: KnownRuns,
    /// Known-object ids of `process`, `user`, `group`, `container` (0: absent) -> process.
    processes: HashMap<[u64; 4], Arc<ProcessInfo>, foldhash::fast::FixedState>,
    /// Recent addresses by their text; `None` when caching is off.
    addresses: Option<ParsedAddresses>,
    /// Timestamps of a replay mostly share their minute with the one before. `None` until
    /// one was read: no bytes are trusted before a timestamp was checked.
    minute: Option<LastMinute>,
}

impl RecordDecoder {
    /// A decoder that remembers objects across lines.
    pub(crate) fn new() -> Self {
        RecordDecoder {
            objects: KnownObjects::new(true),
            runs: KnownRuns::new(true),
            processes: HashMap::default(),
            addresses: Some(ParsedAddresses::new(ADDRESS_SETS_LOG2)),
            minute: None,
        }
    }

    /// A decoder for one line: nothing remembered.
    pub(crate) fn uncached() -> Self {
        RecordDecoder {
            objects: KnownObjects::new(false),
            runs: KnownRuns::new(false),
            processes: HashMap::default(),
            addresses: None,
            minute: None,
        }
    }

    /// Decodes one line: `Ok(None)` for records of other kinds (alerts, metrics).
    pub(crate) fn decode(&mut self, line: &str) -> Result<Option<ConnectionRecord>, RecordError> {
        match self.decode_fast(line.as_bytes(), false) {
            Some((rec, _)) => Ok(Some(rec)),
            None => decode_general(line),
        }
    }

    /// Decodes one line of bytes (without its line feed): `Ok(None)` for a blank line or a
    /// record of another kind. Bytes that are not UTF-8 are an error naming the first.
    pub(crate) fn decode_line(
        &mut self,
        line: &[u8],
    ) -> Result<Option<ConnectionRecord>, RecordError> {
        match self.decode_fast(line, false) {
            Some((rec, _)) => Ok(Some(rec)),
            None => Self::decode_line_general(line),
        }
    }

    /// The common case of `decode_line` for the line at the start of `input`, which goes on
    /// past its line feed: the record and the bytes to the end of the line feed. `None`
    /// when the line is not one the fast path reads, or has no line feed in `input`: then
    /// it is the caller's to find, and `decode_line_general` (when the line was whole in
    /// `input`, the fast path has refused it already) or `decode_line`.
    #[inline]
    pub(crate) fn decode_in_place(&mut self, input: &[u8]) -> Option<(ConnectionRecord, usize)> {
        self.decode_fast(input, true)
    }

    /// `decode_line` without the fast path.
    pub(crate) fn decode_line_general(
        line: &[u8],
    ) -> Result<Option<ConnectionRecord>, RecordError> {
        let text = std::str::from_utf8(line)
            .map_err(|e| {
                RecordError::Json(format!(
                    "not UTF-8 text (byte {} of the line)",
                    e.valid_up_to() + 1
                ))
            })?
            .trim_matches(is_json_whitespace);
        if text.is_empty() {
            return Ok(None);
        }
        decode_general(text)
    }

    /// The common case, or `None` to leave the line to `decode_general`: the record and
    /// the bytes read (the line, and in place its line feed).
    #[inline]
    pub(crate) fn decode_fast(
        &mut self,
        line: &[u8],
        in_place: bool,
    ) -> Option<(ConnectionRecord, usize)> {
        let runs = self.runs.caching();
        match self.decode_fast_with(line, runs, in_place) {
            Ok(rec) => Some(rec),
            Err(Refusal::General) => None,
            Err(Refusal::PerObject) => self.decode_fast_with(line, false, in_place).ok(),
        }
    }

    /// `decode_fast`, through known runs or not.
    fn decode_fast_with(
        &mut self,
        line: &[u8],
        use_runs: bool,
        in_place: bool,
    ) -> Result<(ConnectionRecord, usize), Refusal> {
        let mut ts = None;
        let mut host = None;
        let mut parts: [Option<ObjectPart<'_>>; 4] = [None; 4];
        // The process of a known run and the bits of its process objects.
        let mut run_process: Option<(u16, Arc<ProcessInfo>)> = None;
        let mut source = None;
        let mut destination = None;
        let mut transport = None;
        let mut monitor = None;
        let mut dns: Option<Arc<DnsQuery>> = None;
        // Fields seen, one bit each: serde rejects a duplicate, so it goes the general way.
        let mut seen = 0u16;
        // Object members read one by one since a run lookup missed: where they start and
        // `seen` before them.
        let mut open_run: Option<(usize, u16)> = None;
        let mut candidates = RunCandidates::default();
        let mut c = Cursor::new(line, in_place);
        c.ws();
        c.eat(b'{').general()?;
        c.ws();
        // `{}` is an error (no destination) the general path names.
        if c.peek().general()? == b'}' {
            return Err(Refusal::General);
        }
        'members: loop {
            c.ws();
            let key_start = c.pos;
            let (mut bit, mut member) = c.top_level_key().general()?;
            c.eat_after_ws(b':').general()?;
            if let TopLevel::Object(_) = member {
                if use_runs && open_run.is_none() {
                    match self.runs.find(&line[key_start..]) {
                        Some(run) => {
                            if seen & run.seen != 0 {
                                return Err(Refusal::General);
                            }
                            seen |= run.seen;
                            if let Some(h) = &run.host {
                                host = Some(h.clone());
                            }
                            if let Some(t) = run.transport {
                                transport = Some(t);
                            }
                            if let Some(m) = run.monitor {
                                monitor = Some(m);
                            }
                            if let Some(p) = &run.process {
                                if run_process.is_some() {
                                    return Err(Refusal::PerObject);
                                }
                                run_process = Some((run.seen & PROCESS_PARTS, p.clone()));
                            }
                            c.pos = key_start + run.bytes.len();
                            match run.end {
                                RunEnd::Close => break 'members,
                                RunEnd::Member(b, m) => (bit, member) = (b, m),
                            }
                        }
                        None => open_run = Some((key_start, seen)),
                    }
                }
            } else if let Some((start, before)) = open_run.take() {
                candidates.push(RunCandidate {
                    start,
                    end: c.pos,
                    seen: seen & !before,
                    next: RunEnd::Member(bit, member),
                });
            }
            c.ws();
            if seen & bit & !BIT_OTHER != 0 {
                return Err(Refusal::General);
            }
            seen |= bit;
            match member {
                TopLevel::Timestamp => ts = Some(self.timestamp(&mut c).general()?),
                TopLevel::Source => source = Some(c.endpoint().general()?),
                TopLevel::Destination => destination = Some(c.endpoint().general()?),
                TopLevel::Dns => {
                    let text = c.object_span().general()?;
                    let d: InDns = parse_part(text).general()?;
                    dns = Some(Arc::new(dns_query(d).ok().general()?));
                }
                TopLevel::Other => c.skip_value().general()?,
                TopLevel::Object(field) => {
                    let (part, value) = self.objects.read(field, &mut c).general()?;
                    match value {
                        ObjectValue::Event => {}
                        ObjectValue::Host(h) => host = Some(h),
                        ObjectValue::Network(t) => transport = Some(t),
                        ObjectValue::Monitor(m) => monitor = Some(m),
                        ObjectValue::ProcessPart => {
                            parts[(bit.trailing_zeros() - 7) as usize] = Some(part)
                        }
                    }
                }
            }
            match c.peek_after_ws().general()? {
                b',' => c.pos += 1,
                b'}' => {
                    c.pos += 1;
                    if let Some((start, before)) = open_run.take() {
                        candidates.push(RunCandidate {
                            start,
                            end: c.pos,
                            seen: seen & !before,
                            next: RunEnd::Close,
                        });
                    }
                    break;
                }
                _ => return Err(Refusal::General),
            }
        }
        c.ws();
        let read = if !in_place || c.bounded {
            if !c.at_end() {
                return Err(Refusal::General);
            }
            // In place, the line feed `b` was cut at.
            c.pos + usize::from(in_place)
        } else {
            if c.peek() != Some(b'\n') {
                return Err(Refusal::General);
            }
            c.pos + 1
        };

        let (dip, dport, domain) = destination.general()?;
        let domain: Option<Arc<str>> = match domain {
            Some(d) => Some(Arc::from(std::str::from_utf8(d).ok().general()?)),
            None => None,
        };
        let dip = self.address(dip.general()?).general()?;
        let dport = u16::try_from(dport.general()?).ok().general()?;
        let timestamp = match ts.general()? {
            Some(t) => t,
            None => return Err(Refusal::General),
        };
        let source = match source {
            Some((Some(ip), port, _)) => Some(Endpoint {
                ip: normalize_ip(self.address(ip).general()?),
                port: u16::try_from(port.unwrap_or(0)).ok().general()?,
            }),
            // The general path still checks a port without an address.
            Some((None, port, _)) => {
                u16::try_from(port.unwrap_or(0)).ok().general()?;
                None
            }
            None => None,
        };
        let MonitorPart {
            partial,
            suppressed,
            dns_resolver,
            probe,
            domain_source,
        } = monitor.unwrap_or_default();
        let line_parts = seen & PROCESS_PARTS;
        let process = match run_process {
            Some((bits, p)) if bits == line_parts => p,
            Some(_) => return Err(Refusal::PerObject),
            None => self.process(parts).general()?,
        };
        let host_name = host.unwrap_or_else(|| Arc::from(""));
        for cand in candidates.list.iter().flatten() {
            let cand_parts = cand.seen & PROCESS_PARTS;
            // A run with only some of the line's process objects does not know its process.
            if cand_parts != 0 && cand_parts != line_parts {
                continue;
            }
            self.runs.insert(KnownRun {
                bytes: line[cand.start..cand.end].into(),
                seen: cand.seen,
                host: (cand.seen & BIT_HOST != 0).then(|| host_name.clone()),
                transport: (cand.seen & BIT_NETWORK != 0)
                    .then_some(transport)
                    .flatten(),
                monitor: (cand.seen & BIT_MONITOR != 0).then_some(monitor).flatten(),
                process: (cand_parts != 0).then(|| process.clone()),
                end: cand.next,
            });
        }
        let rec = ConnectionRecord {
            timestamp,
            host_name,
            process,
            source,
            destination: Endpoint {
                ip: normalize_ip(dip),
                port: dport,
            },
            transport: transport.unwrap_or(Transport::Tcp),
            partial,
            suppressed,
            probe,
            dns_resolver,
            domain_source: domain.as_ref().and(domain_source),
            domain,
            dns,
            connection_id: None,
            life: None,
        };
        Ok((rec, read))
    }

    /// `@timestamp`: the shape the monitor writes read in place (its date usually the last
    /// one's), else the string's text through `parse_timestamp`. `Some(None)` for a string
    /// that is no timestamp (the general path names it).
    fn timestamp(&mut self, c: &mut Cursor<'_>) -> Option<Option<Timestamp>> {
        let rest = &c.b[c.pos..];
        if let [b'"', s @ ..] = rest
            && let Some((t, len)) = self.utc_timestamp_prefix(s)
            && s.get(len) == Some(&b'"')
        {
            c.pos += len + 2;
            return Some(Some(t));
        }
        Some(parse_timestamp(c.plain_str()?))
    }

    /// A `YYYY-MM-DDTHH:MM:SS[.F{1,9}]Z` that `s` starts with and its length, read as
    /// `parse_utc_timestamp` reads it, with the minute's seconds from `self.minute` when it
    /// is the last one's.
    fn utc_timestamp_prefix(&mut self, s: &[u8]) -> Option<(Timestamp, usize)> {
        let head = s.first_chunk::<16>()?;
        let minute = match &self.minute {
            Some(last) if *head == last.text => last.secs,
            _ => {
                let secs = minute_secs(head)?;
                self.minute = Some(LastMinute { text: *head, secs });
                secs
            }
        };
        let (secs, nanos, len) = seconds_of_minute(s)?;
        Some((
            Timestamp((minute + secs) * Timestamp::NANOS_PER_SEC + nanos),
            len,
        ))
    }

    /// An address as `IpAddr::from_str` reads it.
    #[inline]
    fn address(&mut self, text: &[u8]) -> Option<IpAddr> {
        match self.addresses.as_mut() {
            Some(cache) => cache.get(text, parse_address),
            None => parse_address(text),
        }
    }

    /// The process of a line's `process`, `user`, `group` and `container` objects: the
    /// shared one when the same combination of known objects was seen before.
    fn process(&mut self, parts: [Option<ObjectPart<'_>>; 4]) -> Option<Arc<ProcessInfo>> {
        let ids = parts.map(|p| p.map_or(0, |p| p.id));
        let all_known = parts.iter().flatten().all(|p| p.id != 0);
        if all_known && let Some(info) = self.processes.get(&ids) {
            return Some(info.clone());
        }
        let [process, user, group, container] = parts.map(|p| p.map(|p| p.text));
        let info = Arc::new(build_process(
            parse_optional_part(process)?,
            parse_optional_part(user)?,
            parse_optional_part(group)?,
            parse_optional_part::<InContainer>(container)?.and_then(|c| c.id),
        ));
        let bytes: usize = parts.iter().flatten().map(|p| p.text.len()).sum();
        if !self.objects.caching() || bytes > PROCESS_COMBINATION_MAX_BYTES {
            return Some(info);
        }
        // Checked by serde_json now: remember the new objects, then the combination.
        let fields = [
            ObjectField::Process,
            ObjectField::User,
            ObjectField::Group,
            ObjectField::Container,
        ];
        let mut ids = ids;
        for ((p, field), id) in parts.iter().zip(fields).zip(&mut ids) {
            if let Some(p) = p
                && p.id == 0
            {
                *id = self
                    .objects
                    .insert(p.set, field, p.text, ObjectValue::ProcessPart);
            }
        }
        if parts.iter().zip(ids).all(|(p, id)| p.is_none() || id != 0) {
            if self.processes.len() >= PROCESS_COMBINATIONS {
                self.processes.clear();
            }
            self.processes.insert(ids, info.clone());
        }
        Some(info)
    }
}

/// The four characters JSON allows around values. `str::trim` would also strip Unicode
/// spaces (U+00A0, U+2028, U+3000, NEL, VT, FF), which makes a line that is not JSON pass
/// as one.
fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// An address as `IpAddr::from_str` reads it, dotted quads without it.
fn parse_address(text: &[u8]) -> Option<IpAddr> {
    match parse_ipv4(text) {
        Some(v4) => Some(IpAddr::V4(v4)),
        None => std::str::from_utf8(text).ok()?.parse().ok(),
    }
}

/// `monitor.probe`: one of the backend names the monitor writes (`Some(None)` when absent);
/// `None` for any other name, which the general path reports as invalid.
fn probe_of(p: Option<&str>) -> Option<Option<&'static str>> {
    let Some(p) = p else { return Some(None) };
    (1..=16)
        .filter_map(monitor_common::backend::name)
        .find(|&name| name == p)
        .map(Some)
}

/// `network.transport`: `tcp` when absent; `None` for anything but tcp or udp.
fn transport_of(t: Option<&str>) -> Option<Transport> {
    match t {
        Some(t) if t.eq_ignore_ascii_case("udp") => Some(Transport::Udp),
        Some(t) if t.eq_ignore_ascii_case("tcp") => Some(Transport::Tcp),
        Some(_) => None,
        None => Some(Transport::Tcp),
    }
}

fn set_once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

/// One value's bytes parsed on its own with the type `decode_general` gives it (UTF-8
/// checked here: serde_json does not check strings it skips in bytes).
fn parse_part<T: serde::de::DeserializeOwned>(text: &[u8]) -> Option<T> {
    let text = std::str::from_utf8(text).ok()?;
    if bracket_count(text) > MAX_BRACKETS_IN_PART {
        return None;
    }
    serde_json::from_str(text).ok()
}

fn parse_optional_part<T: serde::de::DeserializeOwned>(text: Option<&[u8]>) -> Option<Option<T>> {
    match text {
        None => Some(None),
        Some(t) => parse_part(t).map(Some),
    }
}

/// Where a JSON string's contents stop: the first `"`, `\\` or control character. Eight
/// bytes at a time: a byte of `v` equal to `b` is a zero byte of `v ^ b·LO`, and
/// `(x − LO) & !x & HI` marks the lowest zero byte of `x` exactly (marks above it may be
/// spurious), so the lowest mark of the three tests is the first stop.
fn string_stop(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().ok()?);
        let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
        let quote = zero(v ^ (LO * u64::from(b'"')));
        let backslash = zero(v ^ (LO * u64::from(b'\\')));
        let control = v.wrapping_sub(LO * 0x20) & !v & HI;
        let stops = quote | backslash | control;
        if stops != 0 {
            return Some(i + (stops.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

/// Where the first `"` is, eight bytes at a time as in `string_stop`. Inlined: called for
/// the two addresses of every line, whose text ends within two words.
#[inline(always)]
fn quote_at(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().ok()?) ^ (LO * u64::from(b'"'));
        let quotes = x.wrapping_sub(LO) & !x & HI;
        if quotes != 0 {
            return Some(i + (quotes.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr(b'"', &b[i..]).map(|p| i + p)
}

/// `a.b.c.d`, each 0 to 255 in one to three digits without a leading zero (what std
/// accepts); `None` for anything else, which std then reads or rejects.
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let digit = |i: usize| b.get(i).map_or(10, |c| c.wrapping_sub(b'0'));
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        // One to three digits, no leading zero.
        let first = digit(i);
        if first >= 10 {
            return None;
        }
        let mut v = u32::from(first);
        i += 1;
        for _ in 0..2 {
            let d = digit(i);
            if d >= 10 {
                break;
            }
            if first == 0 {
                return None;
            }
            v = v * 10 + u32::from(d);
            i += 1;
        }
        *octet = u8::try_from(v).ok()?;
    }
    (i == b.len()).then_some(Ipv4Addr::from(octets))
}

/// `rest` starts with `name` (compared as a fixed-size array: no call to memcmp).
fn has<const N: usize>(rest: &[u8], name: &[u8; N]) -> bool {
    rest.first_chunk::<N>() == Some(name)
}

fn bracket_count(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'{' || b == b'[').count()
}

/// A position in a line for `decode_fast`. Every method returns `None` when what is at the
/// cursor is not what it reads.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    /// `b` is the line and what follows it (`decode_in_place`): a line feed ends the line
    /// instead of being whitespace. Nothing the cursor reads in steps crosses one (plain
    /// strings stop at control characters, known objects and runs hold none), and reads
    /// that scan ahead first cut `b` at the line's end (`bound_line`).
    in_place: bool,
    /// `b` has been cut at the line's end.
    bounded: bool,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8], in_place: bool) -> Self {
        Cursor {
            b,
            pos: 0,
            in_place,
            bounded: false,
        }
    }

    /// In place, cuts `b` at the first line feed after the cursor: the line's end, since
    /// none came before. `None` when the line's end is not in `b`.
    fn bound_line(&mut self) -> Option<()> {
        if self.in_place && !self.bounded {
            let end = self.pos + memchr::memchr(b'\n', &self.b[self.pos..])?;
            self.b = &self.b[..end];
            self.bounded = true;
        }
        Some(())
    }

    fn at_end(&self) -> bool {
        self.pos == self.b.len()
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    #[inline(always)]
    fn ws(&mut self) {
        // Compact JSON has none: one test for the common case.
        if self.b.get(self.pos).is_some_and(|&c| c > b' ') {
            return;
        }
        while let Some(&c) = self.b.get(self.pos) {
            if c == b' ' || c == b'\t' || c == b'\r' || (c == b'\n' && !self.in_place) {
                self.pos += 1;
            } else {
                return;
            }
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    /// `ws` then `eat`, testing for `b` first (compact JSON has no whitespace).
    #[inline(always)]
    fn eat_after_ws(&mut self, b: u8) -> Option<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            return Some(());
        }
        self.ws();
        self.eat(b)
    }

    /// `ws` then `peek`, testing the byte once when it is not whitespace.
    #[inline(always)]
    fn peek_after_ws(&mut self) -> Option<u8> {
        match self.peek() {
            Some(c) if c > b' ' => Some(c),
            _ => {
                self.ws();
                self.peek()
            }
        }
    }

    /// A string without escapes or control characters, borrowed as bytes (not checked as
    /// UTF-8: see `text`). The cursor moves only when it is one.
    fn plain_str(&mut self) -> Option<&'a [u8]> {
        let b = self.b;
        if b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let len = string_stop(&b[start..])?;
        if b[start + len] != b'"' {
            return None;
        }
        self.pos = start + len + 1;
        Some(&b[start..start + len])
    }

    /// A plain string checked as UTF-8 text.
    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.plain_str()?).ok()
    }

    /// A JSON integer without sign, fraction or exponent.
    fn uint(&mut self) -> Option<u64> {
        let rest = &self.b[self.pos..];
        let mut n = 0u64;
        let mut len = 0;
        while let Some(&c) = rest.get(len) {
            let d = c.wrapping_sub(b'0');
            if d >= 10 {
                break;
            }
            // At most 19 digits (fits a u64).
            if len == 19 {
                return None;
            }
            n = n * 10 + u64::from(d);
            len += 1;
        }
        // No leading zeros (invalid JSON).
        if len == 0 || (len > 1 && rest[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = rest.get(len) {
            return None;
        }
        self.pos += len;
        Some(n)
    }

    /// Any JSON value, checked and skipped: a plain string or an array of them here (the
    /// `event.category` kind), anything else by serde_json.
    fn skip_value(&mut self) -> Option<()> {
        let start = self.pos;
        match self.peek()? {
            b'"' if self.text().is_some() => return Some(()),
            b'[' if self.plain_str_array().is_some() => return Some(()),
            _ => self.pos = start,
        }
        self.bound_line()?;
        let rest = std::str::from_utf8(&self.b[start..]).ok()?;
        let mut values =
            serde_json::Deserializer::from_str(rest).into_iter::<serde::de::IgnoredAny>();
        values.next()?.ok()?;
        let len = values.byte_offset();
        if bracket_count(&rest[..len]) > MAX_BRACKETS_IN_PART {
            return None;
        }
        self.pos += len;
        Some(())
    }

    /// `[]` or `["a", "b", ...]` of plain strings.
    fn plain_str_array(&mut self) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.ws();
            self.text()?;
            self.ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The bytes of the object at the cursor, found by its braces outside strings; what
    /// is inside is checked by serde_json afterwards.
    fn object_span(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'{' {
            return None;
        }
        self.bound_line()?;
        let start = self.pos;
        let b = self.b;
        let mut depth = 0usize;
        let mut i = start;
        loop {
            i += memchr::memchr3(b'"', b'{', b'}', &b[i..])?;
            match b[i] {
                b'"' => {
                    // To the closing quote: one not preceded by an escaping backslash.
                    i += 1;
                    loop {
                        i += memchr::memchr2(b'"', b'\\', &b[i..])?;
                        if b[i] == b'\\' {
                            i += 2;
                            if i > b.len() {
                                return None;
                            }
                        } else {
                            break;
                        }
                    }
                }
                b'{' => depth += 1,
                _ => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos = i + 1;
                        return Some(&b[start..i + 1]);
                    }
                }
            }
            i += 1;
        }
    }

    /// A top-level member name, told by its first letter and then compared whole (with
    /// both quotes), and its bit in `decode_fast`'s duplicate check.
    fn top_level_key(&mut self) -> Option<(u16, TopLevel)> {
        use ObjectField as F;
        let rest = &self.b[self.pos..];
        let (len, bit, member) = match rest.get(1)? {
            b'@' if has(rest, b"\"@timestamp\"") => (12, 0, TopLevel::Timestamp),
            b's' if has(rest, b"\"source\"") => (8, 1, TopLevel::Source),
            b'd' if has(rest, b"\"destination\"") => (13, 2, TopLevel::Destination),
            b'd' if has(rest, b"\"dns\"") => (5, 12, TopLevel::Dns),
            b'e' if has(rest, b"\"event\"") => (7, 3, TopLevel::Object(F::Event)),
            b'h' if has(rest, b"\"host\"") => (6, 4, TopLevel::Object(F::Host)),
            b'n' if has(rest, b"\"network\"") => (9, 5, TopLevel::Object(F::Network)),
            b'm' if has(rest, b"\"monitor\"") => (9, 6, TopLevel::Object(F::Monitor)),
            b'p' if has(rest, b"\"process\"") => (9, 7, TopLevel::Object(F::Process)),
            b'u' if has(rest, b"\"user\"") => (6, 8, TopLevel::Object(F::User)),
            b'g' if has(rest, b"\"group\"") => (7, 9, TopLevel::Object(F::Group)),
            b'c' if has(rest, b"\"container\"") => (11, 10, TopLevel::Object(F::Container)),
            _ => (0, 11, TopLevel::Other),
        };
        if len != 0 {
            self.pos += len;
            return Some((1 << bit, member));
        }
        self.text()?;
        Some((BIT_OTHER, TopLevel::Other))
    }

    /// `source` / `destination`: the address and port, either absent. The shape the
    /// monitor writes (`{"ip":"<dotted quad>","port":<digits>}`) is read in one go.
    #[inline(always)]
    fn endpoint(&mut self) -> Option<EndpointText<'a>> {
        match self.plain_endpoint() {
            Some(e) => Some(e),
            None => self.any_endpoint(),
        }
    }

    /// `endpoint` in any shape (kept out of line: the common shape needs few registers).
    #[inline(never)]
    fn any_endpoint(&mut self) -> Option<EndpointText<'a>> {
        let (mut ip, mut port, mut domain) = (None, None, None);
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some((None, None, None));
        }
        loop {
            self.ws();
            // The two names compared whole, with their quotes; anything else is skipped.
            let rest = &self.b[self.pos..];
            let name = if has(rest, b"\"ip\"") {
                self.pos += 4;
                1
            } else if has(rest, b"\"port\"") {
                self.pos += 6;
                2
            } else if has(rest, b"\"domain\"") {
                self.pos += 8;
                3
            } else {
                self.text()?;
                0
            };
            self.ws();
            self.eat(b':')?;
            self.ws();
            match name {
                1 => set_once(&mut ip, self.plain_str()?)?,
                2 => set_once(&mut port, self.uint()?)?,
                3 => set_once(&mut domain, self.plain_str()?)?,
                _ => self.skip_value()?,
            }
            self.ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some((ip, port, domain));
                }
                _ => return None,
            }
        }
    }

    /// `{"ip":"<address>","port":<digits>}` exactly, the port in one to five digits; the
    /// cursor moves only when it is one.
    #[inline(always)]
    fn plain_endpoint(&mut self) -> Option<EndpointText<'a>> {
        let start = self.pos;
        let rest = self.b.get(start..)?;
        if !has(rest, b"{\"ip\":\"") {
            return None;
        }
        let rest = &rest[7..];
        // To the first quote only: an address has no backslash or control character, so
        // text holding one (an escape, or more than the string) is no address and the
        // line goes the general way.
        let len = quote_at(rest)?;
        let ip = &rest[..len];
        let rest = &rest[len..];
        if !has(rest, b"\",\"port\":") {
            return None;
        }
        let digits = &rest[9..];
        let (port, n) = short_number(digits)?;
        // Anything else (a leading zero, more digits, a fraction) goes the general way.
        if n > 5 || (n > 1 && digits[0] == b'0') || digits.get(n) != Some(&b'}') {
            return None;
        }
        self.pos = start + 7 + len + 9 + n + 1;
        Some((Some(ip), Some(port), None))
    }
}

/// `@timestamp`: the fixed shape the monitor writes, or anything else RFC 3339 through
/// chrono. Both give the same value for the same instant (tests below). `None` also for
/// bytes that are not UTF-8, and for times outside `Timestamp::REPLAY_MIN..REPLAY_END`
/// (`decode_general` tells those apart for its error).
fn parse_timestamp(s: &[u8]) -> Option<Timestamp> {
    parse_utc_timestamp(s).or_else(|| {
        let t = chrono_timestamp(s)?;
        (Timestamp::REPLAY_MIN..Timestamp::REPLAY_END)
            .contains(&t)
            .then_some(t)
    })
}

/// Any RFC 3339 time chrono reads, whatever its year; `None` when it is not one or its
/// nanoseconds do not fit an `i64`.
fn chrono_timestamp(s: &[u8]) -> Option<Timestamp> {
    let dt = chrono::DateTime::parse_from_rfc3339(std::str::from_utf8(s).ok()?).ok()?;
    dt.timestamp_nanos_opt().map(Timestamp)
}

/// `YYYY-MM-DDTHH:MM:SS[.F{1,9}]Z` with a year from 1970 to 2200, else `None`.
fn parse_utc_timestamp(s: &[u8]) -> Option<Timestamp> {
    let minute = minute_secs(s.first_chunk::<16>()?)?;
    let (secs, nanos, len) = seconds_of_minute(s)?;
    (len == s.len()).then_some(Timestamp(
        (minute + secs) * Timestamp::NANOS_PER_SEC + nanos,
    ))
}

/// `YYYY-MM-DDTHH:MM` from 1970 to 2200 (the years replay accepts; others go to chrono,
/// which rejects them too, naming the reason): seconds since 1970-01-01.
fn minute_secs(s: &[u8; 16]) -> Option<i64> {
    if s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' {
        return None;
    }
    let digit = |i: usize| -> Option<i64> {
        let d = s[i].wrapping_sub(b'0');
        (d < 10).then_some(i64::from(d))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let (year, month, day) = (two(0)? * 100 + two(2)?, two(5)?, two(8)?);
    let (hour, minute) = (two(11)?, two(14)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1970..=2200).contains(&year)
        || !(1..=month_days).contains(&day)
        || hour > 23
        || minute > 59
    {
        return None;
    }
    // Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60)
}

/// The `:SS[.F{1,9}]Z` after `YYYY-MM-DDTHH:MM` at the start of `s`: seconds, nanoseconds,
/// and where it ends in `s`. A leap second (60) goes to chrono.
#[inline(always)]
fn seconds_of_minute(s: &[u8]) -> Option<(i64, i64, usize)> {
    let t: &[u8; 4] = s.get(16..20)?.try_into().ok()?;
    let (tens, ones) = (t[1].wrapping_sub(b'0'), t[2].wrapping_sub(b'0'));
    if t[0] != b':' || tens > 5 || ones > 9 {
        return None;
    }
    let secs = i64::from(tens * 10 + ones);
    match t[3] {
        b'Z' => Some((secs, 0, 20)),
        b'.' => {
            let frac = &s[20..];
            // Nine digits (what the monitor writes), eight of them at once.
            if let Some(f) = frac.first_chunk::<10>()
                && f[9] == b'Z'
                && let Some(high) = eight_digits(f[..8].try_into().ok()?)
                && f[8].is_ascii_digit()
            {
                return Some((secs, high as i64 * 10 + i64::from(f[8] - b'0'), 30));
            }
            let mut n = 0i64;
            let mut digits = 0;
            while let Some(&c) = frac.get(digits)
                && c.is_ascii_digit()
            {
                if digits == 9 {
                    return None;
                }
                n = n * 10 + i64::from(c - b'0');
                digits += 1;
            }
            if digits == 0 || frac.get(digits) != Some(&b'Z') {
                return None;
            }
            Some((secs, n * 10i64.pow(9 - digits as u32), 21 + digits))
        }
        _ => None,
    }
}

/// The one to seven digits `b` starts with (it has eight bytes or more) as a number, and
/// how many there are.
#[inline(always)]
fn short_number(b: &[u8]) -> Option<(u64, usize)> {
    let v = u64::from_le_bytes(*b.first_chunk::<8>()?);
    // A byte's high bit is set in one of these when it is not a digit: above `9` (adding
    // 0x46 reaches 0x80), below `0` (subtracting borrows), or 0x80 and up. A carry or
    // borrow only moves up from a byte that is not a digit, so the lowest mark is exact.
    let marks = (v.wrapping_add(0x4646_4646_4646_4646) | v.wrapping_sub(0x3030_3030_3030_3030) | v)
        & 0x8080_8080_8080_8080;
    let n = (marks.trailing_zeros() / 8) as usize;
    if n == 0 || n == 8 {
        return None;
    }
    // The digits at the end of eight, after `0`s.
    let padded = (v << (8 * (8 - n))) | (0x3030_3030_3030_3030 >> (8 * n));
    Some((u64::from(eight_digits(&padded.to_le_bytes())?), n))
}

/// Eight ASCII digits as a number, `None` if any byte is not a digit. Each step halves the
/// number of lanes: digit pairs in 16 bits, then groups of four in 32, then all eight.
/// Inlined: three per line (two ports, the timestamp's fraction), a dozen instructions each.
#[inline(always)]
fn eight_digits(b: &[u8; 8]) -> Option<u32> {
    let v = u64::from_le_bytes(*b);
    // A byte is a digit when its high nibble is 3 and adding 6 keeps it there.
    let high = v & 0xf0f0_f0f0_f0f0_f0f0;
    let carried = (v.wrapping_add(0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0) >> 4;
    if high | carried != 0x3333_3333_3333_3333 {
        return None;
    }
    let v = v - 0x3030_3030_3030_3030;
    // Lane i (from the first byte) gets 10·d[i] + d[i+1] in its low byte.
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    const MASK: u64 = 0x0000_00ff_0000_00ff;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let v = (v & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((v >> 16) & MASK).wrapping_mul(MUL2))
        >> 32;
    Some(v as u32)
}

/// The general path: serde_json into the `In*` structs.
pub(crate) fn decode_general(line: &str) -> Result<Option<ConnectionRecord>, RecordError> {
    let doc: InDoc = serde_json::from_str(line).map_err(|e| RecordError::Json(e.to_string()))?;
    let kind = doc
        .event
        .as_ref()
        .and_then(|e| e.kind.as_deref())
        .unwrap_or("event");
    if kind != "event" {
        return Ok(None);
    }
    let life = life_of(&doc)?;
    let dest = doc.destination.ok_or(RecordError::Missing("destination"))?;
    let dip = dest.ip.ok_or(RecordError::Missing("destination.ip"))?;
    let dport = dest.port.ok_or(RecordError::Missing("destination.port"))?;
    let dip: IpAddr = dip
        .parse()
        .map_err(|_| RecordError::Invalid("destination.ip", dip.clone()))?;
    let ts = doc.timestamp.ok_or(RecordError::Missing("@timestamp"))?;
    let timestamp = parse_timestamp(ts.as_bytes()).ok_or_else(|| {
        match chrono_timestamp(ts.as_bytes()) {
            Some(_) => RecordError::TimeOutOfRange(ts.clone()),
            // Years chrono reads but whose nanoseconds overflow an `i64` are out of range too.
            None if chrono::DateTime::parse_from_rfc3339(&ts).is_ok() => {
                RecordError::TimeOutOfRange(ts.clone())
            }
            None => RecordError::Invalid("@timestamp", ts.clone()),
        }
    })?;
    let transport = match doc.network.as_ref().and_then(|n| n.transport.as_deref()) {
        Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        Some(t) => return Err(RecordError::Invalid("network.transport", t.to_string())),
        None => Transport::Tcp,
    };
    let source = match doc.source {
        Some(InEndpoint {
            ip: Some(ip), port, ..
        }) => Some(Endpoint {
            ip: normalize_ip(
                ip.parse()
                    .map_err(|_| RecordError::Invalid("source.ip", ip.clone()))?,
            ),
            port: port.unwrap_or(0),
        }),
        _ => None,
    };
    let process = build_process(
        doc.process,
        doc.user,
        doc.group,
        doc.container.and_then(|c| c.id),
    );
    let monitor = doc.monitor.unwrap_or_default();
    let connection_id = match monitor.connection_id.as_deref() {
        None => None,
        Some(s) => Some(
            parse_connection_id(s)
                .ok_or_else(|| RecordError::Invalid("monitor.connection_id", s.to_string()))?,
        ),
    };
    let probe = probe_of(monitor.probe.as_deref()).ok_or_else(|| {
        RecordError::Invalid("monitor.probe", monitor.probe.clone().unwrap_or_default())
    })?;
    let domain_source = match monitor.domain_source.as_deref() {
        None => None,
        Some(s) => Some(
            DomainSource::parse(s)
                .ok_or_else(|| RecordError::Invalid("monitor.domain_source", s.to_string()))?,
        ),
    };
    let domain: Option<Arc<str>> = dest.domain.map(Arc::from);
    let dns = match doc.dns {
        Some(d) => Some(Arc::new(dns_query(d)?)),
        None => None,
    };
    Ok(Some(ConnectionRecord {
        timestamp,
        host_name: doc.host.and_then(|h| h.hostname).unwrap_or_default().into(),
        process: Arc::new(process),
        source,
        destination: Endpoint {
            ip: normalize_ip(dip),
            port: dport,
        },
        transport,
        partial: monitor.enrichment.as_deref() == Some("partial"),
        suppressed: monitor.suppressed.unwrap_or(0),
        probe,
        dns_resolver: monitor.dns_resolver.unwrap_or(false),
        domain_source: domain.as_ref().and(domain_source),
        domain,
        dns,
        connection_id,
        life,
    }))
}

/// The lifecycle part of a recorded line (issue #14): `None` for a plain connect, send or
/// DNS record. A connect record may carry `event.outcome` (a beacon alert's trigger).
fn life_of(doc: &InDoc) -> Result<Option<Arc<Lifecycle>>, RecordError> {
    let event = doc.event.as_ref();
    let action = match event.and_then(|e| e.action.as_deref()) {
        Some(a) => LifeAction::parse(a),
        None => None,
    };
    let success = match event.and_then(|e| e.outcome.as_deref()) {
        None => None,
        Some("success") => Some(true),
        Some("failure") => Some(false),
        Some(other) => return Err(RecordError::Invalid("event.outcome", other.to_string())),
    };
    let duration_ns = event.and_then(|e| e.duration);
    let monitor = doc.monitor.as_ref();
    let reason = monitor.and_then(|m| m.outcome_reason.clone());
    let flow_idle = match monitor.and_then(|m| m.flow_end.as_deref()) {
        None | Some("close") => false,
        Some("idle") => true,
        Some(other) => return Err(RecordError::Invalid("monitor.flow_end", other.to_string())),
    };
    if action.is_none() && success.is_none() && duration_ns.is_none() && reason.is_none() {
        return Ok(None);
    }
    let counts = |e: Option<&InEndpoint>| e.map_or((None, None), |e| (e.bytes, e.packets));
    let (source_bytes, source_packets) = counts(doc.source.as_ref());
    let (destination_bytes, destination_packets) = counts(doc.destination.as_ref());
    Ok(Some(Arc::new(Lifecycle {
        action,
        success,
        reason,
        error_code: doc.error.as_ref().and_then(|e| e.code.clone()),
        // The action says which way, not a recorded `network.direction`.
        ingress: matches!(action, Some(LifeAction::Accept | LifeAction::Listen))
            || (matches!(action, Some(LifeAction::Close | LifeAction::Flow))
                && doc.network.as_ref().and_then(|n| n.direction.as_deref()) == Some("ingress")),
        flow_idle: flow_idle && action == Some(LifeAction::Flow),
        duration_ns,
        source_bytes,
        destination_bytes,
        source_packets,
        destination_packets,
    })))
}

/// A recorded `dns` object back into a `DnsQuery` (the general path only: DNS records are
/// few beside connections).
fn dns_query(d: InDns) -> Result<DnsQuery, RecordError> {
    let q = d.question.unwrap_or_default();
    let mut resolved = Vec::new();
    for ip in d.resolved_ip.unwrap_or_default() {
        let parsed: IpAddr = ip
            .parse()
            .map_err(|_| RecordError::Invalid("dns.resolved_ip", ip.clone()))?;
        resolved.push(parsed);
    }
    let answers = d
        .answers
        .unwrap_or_default()
        .into_iter()
        .map(|a| DnsAnswerRecord {
            name: a.name.unwrap_or_default(),
            kind: a.r#type.unwrap_or_default(),
            ttl: a.ttl.unwrap_or(0),
            data: a.data.unwrap_or_default(),
        })
        .collect();
    Ok(DnsQuery::new(
        q.name.ok_or(RecordError::Missing("dns.question.name"))?,
        q.r#type.unwrap_or_default(),
        d.response_code.unwrap_or_default(),
        answers,
        resolved,
    ))
}

/// The one place a `ProcessInfo` is built from input objects (both paths).
fn build_process(
    p: Option<InProcess>,
    user: Option<InId>,
    group: Option<InId>,
    container_id: Option<String>,
) -> ProcessInfo {
    let p = p.unwrap_or_default();
    let parent = p.parent.unwrap_or_default();
    let user = user.unwrap_or_default();
    let group = group.unwrap_or_default();
    ProcessInfo {
        pid: p.pid.unwrap_or(0),
        tid: p.thread.and_then(|t| t.id),
        name: p.name,
        executable: p.executable,
        command_line: p.command_line,
        args: p.args.unwrap_or_default(),
        parent: ParentInfo {
            pid: parent.pid,
            name: parent.name,
            executable: parent.executable,
            command_line: parent.command_line,
        },
        user_id: user.id.map(|s| AccountId::parse(&s)),
        user_name: user.name,
        group_id: group.id.map(|s| AccountId::parse(&s)),
        container_id,
        hashes: p
            .hash
            .and_then(|h| h.sha256)
            .map(|h| format!("SHA256={h}").into()),
        ancestors: p.ancestors.unwrap_or_default(),
    }
}

// Everything optional: which fields are required is decided in `decode_general`, so the
// error can name the missing one.

#[derive(Deserialize, Default)]
struct InDoc {
    #[serde(rename = "@timestamp")]
    timestamp: Option<String>,
    event: Option<InEvent>,
    host: Option<InHost>,
    process: Option<InProcess>,
    user: Option<InId>,
    group: Option<InId>,
    source: Option<InEndpoint>,
    destination: Option<InEndpoint>,
    network: Option<InNetwork>,
    container: Option<InContainer>,
    monitor: Option<InMonitor>,
    dns: Option<InDns>,
    error: Option<InError>,
}

#[derive(Deserialize, Default)]
struct InDns {
    question: Option<InQuestion>,
    response_code: Option<String>,
    answers: Option<Vec<InAnswer>>,
    resolved_ip: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct InQuestion {
    name: Option<String>,
    r#type: Option<String>,
}

#[derive(Deserialize, Default)]
struct InAnswer {
    name: Option<String>,
    r#type: Option<String>,
    ttl: Option<u32>,
    data: Option<String>,
}

#[derive(Deserialize, Default)]
struct InEvent {
    kind: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    duration: Option<u64>,
}

#[derive(Deserialize, Default)]
struct InError {
    code: Option<String>,
}

#[derive(Deserialize, Default)]
struct InHost {
    hostname: Option<String>,
}

#[derive(Deserialize, Default)]
struct InThread {
    id: Option<u32>,
}

#[derive(Deserialize, Default)]
struct InProcess {
    pid: Option<u32>,
    thread: Option<InThread>,
    name: Option<String>,
    executable: Option<String>,
    command_line: Option<String>,
    args: Option<Vec<String>>,
    hash: Option<InHash>,
    ancestors: Option<Vec<String>>,
    parent: Option<InParent>,
}

#[derive(Deserialize, Default)]
struct InHash {
    sha256: Option<String>,
}

#[derive(Deserialize, Default)]
struct InParent {
    pid: Option<u32>,
    name: Option<String>,
    executable: Option<String>,
    command_line: Option<String>,
}

#[derive(Deserialize, Default)]
struct InId {
    #[serde(default, deserialize_with = "string_or_number")]
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize, Default)]
struct InEndpoint {
    ip: Option<String>,
    port: Option<u16>,
    domain: Option<String>,
    bytes: Option<u64>,
    packets: Option<u64>,
}

#[derive(Deserialize, Default)]
struct InNetwork {
    transport: Option<String>,
    direction: Option<String>,
}

#[derive(Deserialize, Default)]
struct InContainer {
    id: Option<String>,
}

#[derive(Deserialize, Default)]
struct InMonitor {
    enrichment: Option<String>,
    suppressed: Option<u32>,
    dns_resolver: Option<bool>,
    probe: Option<String>,
    domain_source: Option<String>,
    connection_id: Option<String>,
    outcome_reason: Option<String>,
    /// A UDP flow summary's end: `close` or `idle`.
    flow_end: Option<String>,
}

/// ECS keeps ids as strings; accept numbers too, as hand-written fixtures use them. Any
/// other JSON value (an array, an object, a boolean) is no id: an error, not an id made of
/// its JSON text.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(serde::de::Error::custom("an id is a string or a number")),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::record::tests::sample;

    /// Lines of every shape replay meets: what the monitor writes (several variants), the
    /// bench workload's sorted keys, other orders and spacing, and lines the fast path
    /// must leave to the general one (escapes, nulls, duplicates, other kinds, errors).
    pub(in crate::record::json) fn corpus() -> Vec<String> {
        let mut lines = vec![sample().to_json_line().trim_end().to_string()];
        let mut v = sample();
        v.source = Some(Endpoint {
            ip: "192.0.2.200".parse().unwrap(),
            port: 40000,
        });
        v.destination.ip = "2001:db8::7".parse().unwrap();
        v.transport = Transport::Udp;
        v.partial = true;
        v.suppressed = 12;
        v.probe = Some("cgroup");
        let p = Arc::make_mut(&mut v.process);
        p.container_id = Some("abc123".into());
        p.command_line = Some("python3 -c \"print('\u{7}')\"\t\u{e9}\\x".into());
        p.tid = None;
        lines.push(v.to_json_line().trim_end().to_string());
        let fixed = [
            // The bench workload: keys sorted, nine fractional digits.
            r#"{"@timestamp":"2026-11-23T00:00:01.000000005Z","event":{"kind":"event","category":["network"],"type":["connection","start"],"action":"connect"},"host":{"hostname":"bench-host"},"group":{"id":"1000"},"process":{"args":["curl","-s"],"command_line":"curl -s","executable":"/usr/bin/curl","name":"curl","parent":{"executable":"/usr/bin/bash","name":"bash","pid":1},"pid":42,"thread":{"id":42}},"user":{"id":"1000","name":"alice"},"source":{"ip":"192.0.2.200","port":32769},"destination":{"ip":"203.0.113.88","port":8088},"network":{"transport":"tcp","type":"ipv4","direction":"egress"},"monitor":{"enrichment":"full","probe":"tracepoint"}}"#,
            " { \"destination\" : { \"port\" : 443 , \"ip\" : \"198.51.100.1\" } ,\n\t\"@timestamp\" : \"2026-11-23T10:00:00+01:00\" , \"process\" : { } } ",
            r#"{"@timestamp":"2026-11-23T10:00:00Z","user":{"id":0,"name":"root"},"group":{"id":0},"destination":{"ip":"::ffff:203.0.113.9","port":80},"network":{"transport":"UDP"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","container":{"id":"c1"},"source":{"port":5},"destination":{"ip":"203.0.113.9","port":0},"monitor":{"suppressed":0}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","host":{"hostname":"h\u0031"},"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@time\u0073tamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","source":null,"process":null,"event":{"kind":null},"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"event":{"kind":"alert"},"rule":{"id":"x","reference":[]},"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"event":{"kind":"metric"},"monitor":{"events":5}}"#,
            r#"{"event":{"kind":"alert"},"destination":{"ip":"203.0.113.9","port":"80"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"destination":{"ip":"203.0.113.9","port":81}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80,"port":81}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","process":{"pid":1},"process":{"pid":2},"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9"}}"#,
            r#"{"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"yesterday","destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.999","port":80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":65536}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80.0}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":080}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":-80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"network":{"transport":"sctp"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"source":{"port":70000}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"source":{"ip":"x"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"monitor":{"suppressed":4294967296}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"process":{"pid":"x"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"user":{"id":[1]}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80}} trailing"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"x":tru}"#,
            "[]",
            "{}",
            "not json",
            "",
            // Ids that are no plain number are kept as given; other JSON values are no id.
            r#"{"@timestamp":"2026-11-23T10:00:00Z","user":{"id":"S-1-5-18","name":"SYSTEM"},"group":{"id":"007"},"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","user":{"id":"-1"},"group":{"id":-1},"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","user":{"id":"4294967296"},"group":{"id":"a\"b\n"},"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","user":{"id":true},"destination":{"ip":"203.0.113.9","port":80}}"#,
            // The probe is carried; a name the monitor never writes is an error.
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"monitor":{"enrichment":"full","probe":"kprobe"}}"#,
            // DNS (issue #13): a query record, a named connection, and their broken forms.
            r#"{"@timestamp":"2026-11-23T10:00:00Z","event":{"kind":"event","category":["network"],"type":["protocol","info"],"action":"dns-query"},"host":{"hostname":"h1"},"process":{"pid":7,"executable":"/usr/bin/curl"},"destination":{"ip":"192.0.2.53","port":53},"network":{"transport":"udp","type":"ipv4","direction":"egress"},"dns":{"type":"answer","question":{"name":"www.example.org","type":"A"},"response_code":"NOERROR","answers":[{"name":"www.example.org","type":"CNAME","ttl":300,"data":"e.cdn.example"},{"name":"e.cdn.example","type":"A","ttl":60,"data":"203.0.113.9"}],"resolved_ip":["203.0.113.9"]},"monitor":{"enrichment":"full","probe":"raw_tracepoint"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"192.0.2.53","port":53},"dns":{"question":{"name":"x\u0041.example"},"answers":[{"name":"x","type":"TXT","ttl":1}],"resolved_ip":[]}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"192.0.2.53","port":53},"dns":{"question":{"name":"x"},"resolved_ip":["not-an-ip"]}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"192.0.2.53","port":53},"dns":{"question":{"type":"A"}}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"192.0.2.53","port":53},"dns":{"question":{"name":"a"}},"dns":{"question":{"name":"b"}}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"192.0.2.53","port":53},"dns":null}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":443,"domain":"www.example.org"},"monitor":{"enrichment":"full","domain_source":"process"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":443,"domain":"w\u0077w.example.org"},"monitor":{"domain_source":"host"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":443,"domain":"www.example.org"},"monitor":{"domain_source":"elsewhere"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":443},"monitor":{"domain_source":"host"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"domain":"a","ip":"203.0.113.9","port":443,"domain":"b"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"monitor":{"probe":"bogus"}}"#,
            // UDP flow summaries (issue #14): at the close, after the idle period, inbound,
            // without a local address, and an end the monitor never writes.
            r#"{"@timestamp":"2026-11-23T10:00:00Z","event":{"kind":"event","category":["network"],"type":["connection","end"],"action":"flow","duration":67873},"host":{"hostname":"h1"},"process":{"pid":7,"executable":"/usr/bin/python3"},"source":{"ip":"10.0.0.1","port":40000,"bytes":60,"packets":3},"destination":{"ip":"10.0.0.2","port":5300,"bytes":63,"packets":3},"network":{"transport":"udp","type":"ipv4","direction":"egress","bytes":123,"packets":6},"monitor":{"enrichment":"full","probe":"cgroup","connection_id":"0000000000145c2a","flow_end":"close"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","event":{"kind":"event","type":["connection","end"],"action":"flow","duration":1},"source":{"ip":"10.0.0.2","port":5300,"bytes":1,"packets":1},"destination":{"ip":"10.0.0.1","port":40000,"bytes":0,"packets":0},"network":{"transport":"udp","direction":"ingress"},"monitor":{"connection_id":"1","flow_end":"idle"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","event":{"action":"flow"},"source":{"bytes":60,"packets":3},"destination":{"ip":"10.0.0.2","port":5300,"bytes":63,"packets":3},"network":{"transport":"udp"},"monitor":{"flow_end":"idle"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","event":{"action":"flow"},"destination":{"ip":"10.0.0.2","port":5300},"network":{"transport":"udp"},"monitor":{"flow_end":"sometime"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"10.0.0.2","port":5300},"monitor":{"flow_end":"idle"}}"#,
            // Times outside the years replay accepts.
            r#"{"@timestamp":"1000-01-01T00:00:00Z","destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"9999-12-31T23:59:59Z","destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"1969-12-31T23:59:59Z","destination":{"ip":"203.0.113.9","port":80}}"#,
            // Whitespace JSON does not allow, around a line and as one.
            "\u{a0}{\"@timestamp\":\"2026-11-23T10:00:00Z\",\"destination\":{\"ip\":\"203.0.113.9\",\"port\":80}}",
            "{\"@timestamp\":\"2026-11-23T10:00:00Z\",\"destination\":{\"ip\":\"203.0.113.9\",\"port\":80}}\u{2028}",
            "\u{3000}",
            "\u{85}",
            "\u{b}",
            "\u{c}",
        ];
        lines.extend(fixed.iter().map(|s| s.to_string()));
        // Nesting in an unknown field: within serde_json's limit of 128, and beyond it.
        for depth in [60, 100, 130] {
            lines.push(format!(
                r#"{{"@timestamp":"2026-11-23T10:00:00Z","x":{}{},"destination":{{"ip":"203.0.113.9","port":80}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            ));
        }
        // A process longer than the cache takes.
        let mut long = sample();
        Arc::make_mut(&mut long.process).command_line = Some("x".repeat(10_000));
        lines.push(long.to_json_line().trim_end().to_string());
        lines
    }

    /// The decoder (fast path, cold and warm cache, and uncached) gives what the general
    /// path gives, errors included.
    fn assert_paths_agree(dec: &mut RecordDecoder, line: &str) {
        let general = decode_general(line);
        assert_eq!(dec.decode(line), general, "line: {line}");
        assert_eq!(dec.decode(line), general, "again, from the cache: {line}");
        assert_eq!(
            RecordDecoder::uncached().decode(line),
            general,
            "uncached: {line}"
        );
        assert_bytes_agree(dec, line.as_bytes());
    }

    /// What replay made of a line before the decoder read bytes: the whole line checked as
    /// UTF-8, trimmed of JSON whitespace (only), then the general path.
    fn reference_line(line: &[u8]) -> Result<Option<ConnectionRecord>, RecordError> {
        match std::str::from_utf8(line) {
            Err(e) => Err(RecordError::Json(format!(
                "not UTF-8 text (byte {} of the line)",
                e.valid_up_to() + 1
            ))),
            Ok(t) if t.trim_matches([' ', '\t', '\r', '\n']).is_empty() => Ok(None),
            Ok(t) => decode_general(t.trim_matches([' ', '\t', '\r', '\n'])),
        }
    }

    /// A valid line that follows the one under test in place: the decoder must not read
    /// into it.
    const NEXT_LINE: &[u8] =
        br#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80}}"#;

    /// A line as replay hands it over (bytes, and in place with the next line after it),
    /// warm and uncached, gives what `reference_line` gives.
    fn assert_bytes_agree(dec: &mut RecordDecoder, line: &[u8]) {
        let expected = reference_line(line);
        let shown = line.escape_ascii();
        assert_eq!(dec.decode_line(line), expected, "bytes: {shown}");
        assert_eq!(dec.decode_line(line), expected, "bytes, again: {shown}");
        assert_eq!(
            RecordDecoder::uncached().decode_line(line),
            expected,
            "bytes, uncached: {shown}"
        );
        // Replay's lines hold no line feed; in place one ends the line.
        if memchr::memchr(b'\n', line).is_some() {
            return;
        }
        let fast = dec.decode_fast(line, false).map(|(rec, _)| rec);
        let mut input = line.to_vec();
        input.push(b'\n');
        input.extend_from_slice(NEXT_LINE);
        let in_place = dec.decode_in_place(&input);
        if let Some((rec, read)) = &in_place {
            assert_eq!(*read, line.len() + 1, "in place, read: {shown}");
            assert_eq!(Ok(Some(rec.clone())), expected, "in place: {shown}");
        }
        assert_eq!(
            in_place.map(|(rec, _)| rec),
            fast,
            "in place and on its own, the fast path reads the same lines: {shown}"
        );
        // Without a line feed after it, in place, a line is left to the caller.
        assert!(dec.decode_in_place(line).is_none(), "no line feed: {shown}");
    }

    #[test]
    fn fast_and_general_paths_give_the_same_records_and_errors() {
        let lines = corpus();
        let mut dec = RecordDecoder::new();
        for line in &lines {
            assert_paths_agree(&mut dec, line);
        }
        // The common shapes really take the fast path.
        for line in &lines[..6] {
            assert!(
                dec.decode_fast(line.as_bytes(), false).is_some(),
                "fast path refused: {line}"
            );
        }
        // Each error still names its field.
        assert_eq!(
            dec.decode(
                r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9"}}"#
            ),
            Err(RecordError::Missing("destination.port"))
        );
        assert_eq!(
            dec.decode(r#"{"destination":{"ip":"203.0.113.9","port":80}}"#),
            Err(RecordError::Missing("@timestamp"))
        );
        assert_eq!(
            dec.decode(r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"network":{"transport":"sctp"}}"#),
            Err(RecordError::Invalid("network.transport", "sctp".into()))
        );
    }

    /// UDP flow summaries read back as they were written: counts, ends, direction, the
    /// connection id, and a local end without an address (counts only).
    #[test]
    fn udp_flow_records_read_back_as_written() {
        let mut dec = RecordDecoder::new();
        for (idle, ingress, local_address) in [
            (false, false, true),
            (true, false, true),
            (true, true, true),
            (false, false, false),
        ] {
            let mut r = sample();
            r.transport = Transport::Udp;
            r.connection_id = Some(0x145c2a);
            if !local_address {
                r.source = None;
            }
            r.life = Some(Arc::new(Lifecycle {
                action: Some(LifeAction::Flow),
                ingress,
                flow_idle: idle,
                duration_ns: Some(67_873),
                source_bytes: Some(60),
                destination_bytes: Some(63),
                source_packets: Some(3),
                destination_packets: Some(3),
                ..Lifecycle::default()
            }));
            let line = r.to_json_line();
            let back = dec.decode(line.trim_end()).unwrap().unwrap();
            assert_eq!(back, r, "{line}");
            assert_eq!(
                decode_general(line.trim_end()).unwrap().unwrap(),
                r,
                "general path: {line}"
            );
            let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(doc["event"]["action"], "flow");
            assert_eq!(
                doc["event"]["type"],
                serde_json::json!(["connection", "end"])
            );
            assert_eq!(doc["network"]["bytes"], 123);
            assert_eq!(doc["network"]["packets"], 6);
            assert_eq!(
                doc["monitor"]["flow_end"],
                if idle { "idle" } else { "close" }
            );
            assert_eq!(doc["source"]["bytes"], 60);
        }
        assert_eq!(
            dec.decode(r#"{"@timestamp":"2026-11-23T10:00:00Z","event":{"action":"flow"},"destination":{"ip":"10.0.0.2","port":5300},"monitor":{"flow_end":"sometime"}}"#),
            Err(RecordError::Invalid("monitor.flow_end", "sometime".into()))
        );
    }

    #[test]
    fn damaged_lines_decode_as_the_general_path_decodes_them() {
        // Every byte of three lines cut, dropped, or replaced by JSON punctuation, a digit,
        // a letter or a control character: whatever the fast path makes of the damage must
        // be what serde_json makes of it.
        let lines = corpus();
        let mut dec = RecordDecoder::new();
        let mut checked = 0;
        for line in &lines[..3] {
            dec.decode(line).unwrap();
            let b = line.as_bytes();
            for i in 0..b.len() {
                let mut variants = vec![b[..i].to_vec(), [&b[..i], &b[i + 1..]].concat()];
                // ... and bytes that are not UTF-8 on their own, and a line feed.
                for r in *b"\"\\{}[],: 0x-.\x01\xff\xc3\n" {
                    let mut m = b.to_vec();
                    m[i] = r;
                    variants.push(m);
                }
                for v in &variants {
                    match std::str::from_utf8(v) {
                        Ok(s) => assert_paths_agree(&mut dec, s),
                        Err(_) => assert_bytes_agree(&mut dec, v),
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
        // The lines' runs were remembered, and used for the damage around them.
        assert!(dec.runs.runs.iter().flatten().count() >= 2);
    }

    #[test]
    fn one_process_one_shared_process_info() {
        let mut dec = RecordDecoder::new();
        let line = sample().to_json_line();
        let a = dec.decode(line.trim_end()).unwrap().unwrap();
        let other = line.replace("T10:00:00.500Z", "T10:00:01.500Z");
        assert_ne!(other, line);
        let b = dec.decode(other.trim_end()).unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&a.process, &b.process),
            "same process bytes, same Arc"
        );
        assert!(
            Arc::ptr_eq(&a.host_name, &b.host_name),
            "same host, same Arc"
        );
        // Another user is another process, even with the same process object.
        let alice = line.replace(
            r#""user":{"id":"0","name":"root"}"#,
            r#""user":{"id":"1000","name":"alice"}"#,
        );
        assert_ne!(alice, line);
        let c = dec.decode(alice.trim_end()).unwrap().unwrap();
        assert_eq!(c.process.user_name.as_deref(), Some("alice"));
        assert_eq!(c.process.pid, a.process.pid);
    }

    #[test]
    fn timestamp_fast_path_matches_chrono() {
        let mut dec = RecordDecoder::new();
        let mut x = 0x5eed_u64;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        for i in 0..20_000u64 {
            // 1970-01-01 to 2199-12-31.
            let secs = (next() % (230 * 365 * 86_400)) as i64;
            let nanos = (next() % 1_000_000_000) as u32;
            let base = DateTime::<Utc>::from_timestamp(secs, 0)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            let digits = (i % 10) as usize;
            let s = if digits == 0 {
                format!("{base}Z")
            } else {
                let frac = format!("{nanos:09}");
                format!("{base}.{}Z", &frac[..digits])
            };
            let fast = parse_utc_timestamp(s.as_bytes());
            assert!(fast.is_some(), "{s}");
            assert_eq!(fast, Timestamp::parse_rfc3339(&s).ok(), "{s}");
            // The decoder's way (the minute from its last timestamp when it is the same),
            // here with a closing quote after the timestamp as in a line.
            let quoted = format!("{s}\"");
            let cached = dec.utc_timestamp_prefix(quoted.as_bytes());
            assert_eq!(cached, fast.map(|t| (t, s.len())), "{s}");
            // The next second, often in the same minute.
            let next = DateTime::<Utc>::from_timestamp(secs + 1, nanos)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let cached = dec.utc_timestamp_prefix(format!("{next}\"").as_bytes());
            assert_eq!(
                cached,
                Timestamp::parse_rfc3339(&next)
                    .ok()
                    .map(|t| (t, next.len())),
                "{next}"
            );
        }
        for s in [
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2000-02-29T12:00:00.5Z",
            "1900-02-29T12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-11-00T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "2026-11-23t10:00:00z",
            "2026-11-23 10:00:00Z",
            "2026-11-23T10:00:00.1234567891Z",
            "2026-11-23T10:00:00.Z",
            "2026-11-23T10:00:00+02:00",
            "2026-11-23T10:00:00.25-00:30",
            "1899-12-31T23:59:59Z",
            "2201-01-01T00:00:00Z",
            // The ends of the years replay accepts, and what lies beyond them.
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999999Z",
            "1970-01-01T00:30:00+01:00",
            "2200-12-31T23:59:59.999999999Z",
            "2200-12-31T23:30:00-01:00",
            "1000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "1677-09-21T00:12:43.145224191Z",
            "2262-04-11T23:47:16.854775808Z",
            "+2026-11-23T10:00:00Z",
            "2026-1-23T10:00:00Z",
            "2026-11-23T10:00:0aZ",
            "2026-11-23T10:00:60Z",
            "2026-11-23T10:00:5Z",
            "2026-11-23T10:00:00.123456789",
            "2026-11-23T10:00:00.12345678Z",
            "2026-11-23T10:00:00.12345678aZ",
            "2026-11-23T10:00:00.1234567a9Z",
            "2026-11-23T10:00:00.123456789ZZ",
            "2026-11-23T10:00:00.999999999Z",
            "2026-11-23T10:00:00.000000000Z",
            "2026-11-23T10:00:00.0Z",
            "",
        ] {
            // chrono's reading, within the years replay accepts.
            let in_range = Timestamp::parse_rfc3339(s)
                .ok()
                .filter(|t| (Timestamp::REPLAY_MIN..Timestamp::REPLAY_END).contains(t));
            assert_eq!(parse_timestamp(s.as_bytes()), in_range, "{s}");
            // In a line, after a line of the same minute.
            let line =
                format!(r#"{{"@timestamp":"{s}","destination":{{"ip":"203.0.113.9","port":80}}}}"#);
            dec.decode(
                r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80}}"#,
            )
            .unwrap();
            assert_paths_agree(&mut dec, &line);
        }
    }

    #[test]
    fn string_scan_and_ipv4_parse_match_the_plain_definitions() {
        let mut x = 0xface_u64;
        let mut next = move || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        // Mostly printable bytes with the odd stop and high byte, every length to 40.
        let alphabet = b"abc09.:/ -_\"\\\x01\x1f\x7f\x80\xc3\xff";
        for _ in 0..50_000 {
            let len = (next() % 41) as usize;
            let b: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 16 == 0 {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    } else {
                        b'a' + (r >> 8) as u8 % 26
                    }
                })
                .collect();
            let naive = b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            assert_eq!(string_stop(&b), naive, "{b:?}");
        }
        // Addresses and near-addresses: what std accepts, this accepts the same way.
        let mut dec = RecordDecoder::new();
        let parts = [
            "0", "1", "01", "00", "9", "10", "99", "100", "199", "255", "256", "999", "1000", "",
            "a",
        ];
        for _ in 0..50_000 {
            let n = 1 + next() % 5;
            let mut s = String::new();
            for i in 0..n {
                if i > 0 {
                    s.push(if next() % 20 == 0 { ':' } else { '.' });
                }
                s.push_str(parts[(next() % parts.len() as u64) as usize]);
            }
            let std: Option<Ipv4Addr> = s.parse().ok();
            if let Some(fast) = parse_ipv4(s.as_bytes()) {
                assert_eq!(Some(fast), std, "{s}");
            }
            assert_eq!(dec.address(s.as_bytes()), s.parse::<IpAddr>().ok(), "{s}");
            assert_eq!(
                dec.address(s.as_bytes()),
                s.parse::<IpAddr>().ok(),
                "cached: {s}"
            );
        }
        for s in [
            "203.0.113.7",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ] {
            assert_eq!(dec.address(s.as_bytes()), s.parse().ok(), "{s}");
            assert_eq!(dec.address(s.as_bytes()), s.parse().ok(), "cached: {s}");
        }
        assert!(parse_ipv4(b"192.0.2.1").is_some());
        // Eight digits at once, and the words of an address's text: as plainly computed.
        for _ in 0..50_000 {
            let mut b = [0u8; 8];
            for c in &mut b {
                let r = next();
                *c = if r % 32 == 0 {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                } else {
                    b'0' + (r >> 8) as u8 % 10
                };
            }
            let naive = b.iter().try_fold(0u32, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            });
            assert_eq!(eight_digits(&b), naive, "{b:?}");
            let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let naive = (1..8).contains(&digits).then(|| {
                let n = b[..digits]
                    .iter()
                    .fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
                (n, digits)
            });
            assert_eq!(short_number(&b), naive, "{b:?}");
        }
        // More addresses than the cache holds (4,096), of every length it keeps, each seen
        // several times.
        for i in 0..30_000u32 {
            let n = (i * 7) % 10_000;
            let s = match n % 4 {
                0 => format!("2001:db8::{n:x}"),
                1 => format!("2001:db8:{n:x}:ffff:ffff:ffff:ffff:{n:x}"),
                2 => format!("::ffff:198.51.{}.{}", n % 256, n / 256),
                _ => format!("203.0.{}.{}", n % 256, n / 256),
            };
            assert_eq!(dec.address(s.as_bytes()), s.parse().ok(), "{s}");
        }
    }

    /// The bench workload's line for one process: `event` to `user` make one run,
    /// `network` and `monitor` another.
    fn workload_line(pid: u32, user: &str, sport: u16) -> String {
        format!(
            r#"{{"@timestamp":"2026-11-23T00:00:01.000000005Z","event":{{"kind":"event","category":["network"],"type":["connection","start"],"action":"connect"}},"host":{{"hostname":"bench-host"}},"group":{{"id":"1000"}},"process":{{"args":["curl","-s"],"command_line":"curl -s","executable":"/usr/bin/curl","name":"curl","parent":{{"executable":"/usr/bin/bash","name":"bash","pid":1}},"pid":{pid},"thread":{{"id":{pid}}}}},"user":{{"id":"1000","name":"{user}"}},"source":{{"ip":"192.0.2.200","port":{sport}}},"destination":{{"ip":"203.0.113.88","port":8088}},"network":{{"transport":"tcp","type":"ipv4","direction":"egress"}},"monitor":{{"enrichment":"full","probe":"tracepoint"}}}}"#
        )
    }

    #[test]
    fn known_runs_decode_as_the_general_path_decodes_them() {
        let mut dec = RecordDecoder::new();
        let line = workload_line(42, "alice", 40000);
        let head = line.find(r#""event""#).unwrap();
        let tail = line.find(r#","network":"#).unwrap() + 1;
        assert_paths_agree(&mut dec, &line);
        // Both runs are known now, and the next line of the process is read through them,
        // sharing the process.
        assert!(dec.runs.find(&line.as_bytes()[head..]).is_some());
        assert!(dec.runs.find(&line.as_bytes()[tail..]).is_some());
        let first = dec.decode(&line).unwrap().unwrap();
        let next = workload_line(42, "alice", 40001);
        let second = dec.decode(&next).unwrap().unwrap();
        assert_eq!(second.source.unwrap().port, 40001);
        assert!(Arc::ptr_eq(&first.process, &second.process));

        let user = r#""user":{"id":"1000","name":"alice"}"#;
        let cases = [
            // The same process with another user: another run, another process.
            line.replace(user, r#""user":{"id":"1001","name":"bob"}"#),
            // Every byte of the run up to one short: the name after it differs.
            line.replace(r#","source":{"#, r#","sourcf":{"ip":"1.2.3.4"},"source":{"#),
            line.replace(r#","source":"#, r#","source" :"#),
            line.replace(r#""},"source""#, r#""} ,"source""#),
            // The tail run one byte short of the closing brace.
            format!("{},", &line[..line.len() - 1]),
            format!("{} ", &line[..line.len() - 1]),
            format!("{}}}}}", &line[..line.len() - 1]),
            // A known run followed by a duplicate of one of its members.
            line.replace(r#","network""#, &format!(",{user},\"network\"")),
            line.replace(
                r#","network""#,
                r#","host":{"hostname":"bench-host"},"network""#,
            ),
            format!(
                "{},{}}}",
                &line[..line.len() - 1],
                &line[tail..line.len() - 1]
            ),
            // Process objects in a known run and elsewhere: read object by object.
            format!(
                "{},\"container\":{{\"id\":\"c1\"}}}}",
                &line[..line.len() - 1]
            ),
            format!("{},\"container\":null}}", &line[..line.len() - 1]),
            // Known runs cut differently, and at other places in the line.
            line.replace(r#","source":{"ip":"192.0.2.200","port":40000}"#, "")
                .replace(
                    r#","network""#,
                    r#","source":{"ip":"192.0.2.200","port":40000},"network""#,
                ),
            line.replace(r#","host":{"hostname":"bench-host"}"#, "")
                .replace(
                    r#""destination""#,
                    r#""host":{"hostname":"bench-host"},"destination""#,
                ),
            format!("{{{},{}}}", &line[tail..line.len() - 1], &line[1..tail - 1]),
            // Other record kinds around known runs.
            line.replace(r#""kind":"event""#, r#""kind":"alert""#),
        ];
        for (i, case) in cases.iter().enumerate() {
            assert_ne!(case, &line, "case {i}");
            assert_paths_agree(&mut dec, case);
        }
        assert_eq!(
            dec.decode(&cases[0])
                .unwrap()
                .unwrap()
                .process
                .user_name
                .as_deref(),
            Some("bob")
        );
        // The cases went through the known runs: a duplicate after one is refused for the
        // general path, process objects in one and outside it are read object by object
        // (a `null` one goes the general way).
        let refusal = |dec: &mut RecordDecoder, case: &str| {
            dec.decode_fast_with(case.as_bytes(), true, false).err()
        };
        assert!(matches!(
            refusal(&mut dec, &cases[7]),
            Some(Refusal::General)
        ));
        assert!(matches!(
            refusal(&mut dec, &cases[10]),
            Some(Refusal::PerObject)
        ));
        assert!(matches!(
            refusal(&mut dec, &cases[11]),
            Some(Refusal::General)
        ));
        assert!(refusal(&mut dec, &line).is_none());
        // A known run followed by bytes that are not UTF-8 elsewhere in the line: the error
        // names the first of them, as the whole-line check did.
        for (from, to) in [
            (r#""port":8088}"#, "\"port\":8088,\"x\":\"\u{e9}\u{ff}\"}"),
            (r#""probe":"tracepoint""#, "\"probe\":\"trac\u{e9}point\""),
        ] {
            let good = line.replace(from, to);
            assert_paths_agree(&mut dec, &good);
            let mut bad = good.into_bytes();
            let e9 = bad.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
            bad[e9 + 1] = b'x';
            assert_bytes_agree(&mut dec, &bad);
            assert_eq!(
                dec.decode_line(&bad),
                Err(RecordError::Json(format!(
                    "not UTF-8 text (byte {} of the line)",
                    e9 + 1
                )))
            );
        }
        for ip in ["192.0.\u{e9}.1", "2001:db8::\u{ff}"] {
            let mut bad = line.replace("192.0.2.200", ip).into_bytes();
            let at = bad.iter().position(|&b| b >= 0x80).unwrap();
            bad[at + 1] = b'1';
            assert_bytes_agree(&mut dec, &bad);
        }
    }

    #[test]
    fn more_processes_than_the_caches_hold_decode_as_the_general_path() {
        // 3,000 processes in two users: more runs (1,024), objects (2,048) and combinations
        // (1,024) than the caches keep, seen three times in an interleaved order.
        let mut dec = RecordDecoder::new();
        for round in 0..3u32 {
            for i in 0..3000u32 {
                let pid = 1000 + (i * 7 + round * 13) % 3000;
                let line = workload_line(pid, ["alice", "bob"][(pid % 2) as usize], 40000);
                let rec = dec.decode(&line).unwrap().unwrap();
                assert_eq!(Ok(Some(rec)), decode_general(&line), "{line}");
            }
        }
        let runs = dec.runs.runs.iter().flatten().count();
        assert_eq!(runs, RUNS);
        // Every run held is found, and the tree's nodes are all accounted for.
        for run in dec.runs.runs.iter().flatten() {
            let found = dec.runs.find(&run.bytes).unwrap();
            assert_eq!(found.bytes, run.bytes);
        }
        assert_eq!(dec.runs.free_nodes.len(), RUNS - (runs - 1));
    }

    /// A valid line with `ts` as its timestamp, the monitor's shape.
    fn line_at(ts: &str) -> String {
        format!(
            r#"{{"@timestamp":"{ts}","event":{{"kind":"event"}},"destination":{{"ip":"203.0.113.9","port":80}}}}"#
        )
    }

    /// Every way the decoder reads a line, on a fresh decoder: the line's own result.
    fn fresh_results(line: &[u8]) -> Vec<Result<Option<ConnectionRecord>, RecordError>> {
        let mut input = line.to_vec();
        input.push(b'\n');
        vec![
            RecordDecoder::new().decode_line(line),
            RecordDecoder::uncached().decode_line(line),
            match RecordDecoder::new().decode_in_place(&input) {
                Some((rec, _)) => Ok(Some(rec)),
                None => RecordDecoder::decode_line_general(line),
            },
        ]
    }

    #[test]
    fn a_timestamp_of_nul_bytes_is_refused_on_the_first_line_too() {
        // Fault 8: the minute cache started as sixteen zero bytes and was trusted before any
        // timestamp had been read, so this was 1970-01-01 on line 1 and an error on line 2.
        let mut line = br#"{"@timestamp":""#.to_vec();
        line.extend_from_slice(&[0u8; 16]);
        line.extend_from_slice(br#":00Z","destination":{"ip":"203.0.113.9","port":80}}"#);
        for r in fresh_results(&line) {
            assert!(matches!(r, Err(RecordError::Json(_))), "{r:?}");
        }
        // The same after a good line.
        let mut dec = RecordDecoder::new();
        dec.decode_line(line_at("2026-11-23T10:00:00Z").as_bytes())
            .unwrap()
            .unwrap();
        assert!(dec.decode_line(&line).is_err());
    }

    #[test]
    fn times_outside_the_accepted_years_are_errors_not_rewritten() {
        // Fault 9: years 1000 and 9999 came out as 2262-04-11T23:47:16.854775807Z.
        for ts in [
            "1000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "1969-12-31T23:59:59.999999999Z",
            "2201-01-01T00:00:00Z",
            "2200-12-31T23:30:00-01:00",
        ] {
            for r in fresh_results(line_at(ts).as_bytes()) {
                assert_eq!(r, Err(RecordError::TimeOutOfRange(ts.into())), "{ts}");
            }
        }
        for ts in ["1970-01-01T00:00:00Z", "2200-12-31T23:59:59.999999999Z"] {
            for r in fresh_results(line_at(ts).as_bytes()) {
                let t = r.unwrap().unwrap().timestamp;
                assert_eq!(Some(t), Timestamp::parse_rfc3339(ts).ok(), "{ts}");
            }
        }
        let e = RecordError::TimeOutOfRange("9999-12-31T23:59:59Z".into()).to_string();
        assert!(e.contains("1970 to 2200"), "{e}");
    }

    #[test]
    fn unicode_whitespace_around_a_line_is_not_json() {
        // Fault 10: `str::trim` took these off before serde_json saw the line.
        let good = line_at("2026-11-23T10:00:00Z");
        for ws in ["\u{a0}", "\u{2028}", "\u{3000}", "\u{85}", "\u{b}", "\u{c}"] {
            for line in [format!("{ws}{good}"), format!("{good}{ws}"), ws.to_string()] {
                for r in fresh_results(line.as_bytes()) {
                    assert!(matches!(r, Err(RecordError::Json(_))), "{line:?}: {r:?}");
                }
            }
        }
        // JSON's own whitespace is still fine.
        for line in [format!(" \t{good}\r"), " \t\r".to_string()] {
            for r in fresh_results(line.as_bytes()) {
                assert!(r.is_ok(), "{line:?}: {r:?}");
            }
        }
    }

    #[test]
    fn the_probe_is_carried_through() {
        let mut dec = RecordDecoder::new();
        for probe in ["fentry", "kprobe", "tracepoint", "raw_tracepoint", "cgroup"] {
            let line = line_at("2026-11-23T10:00:00Z").replace(
                "port\":80}}",
                &format!(r#"port":80}},"monitor":{{"enrichment":"full","probe":"{probe}"}}}}"#),
            );
            for _ in 0..2 {
                let rec = dec.decode(&line).unwrap().unwrap();
                assert_eq!(rec.probe, Some(probe), "{line}");
            }
            assert_eq!(decode_general(&line).unwrap().unwrap().probe, Some(probe));
        }
        // The bench workload's line, through its known runs.
        let line = workload_line(42, "alice", 40000);
        dec.decode(&line).unwrap();
        assert_eq!(
            dec.decode(&line).unwrap().unwrap().probe,
            Some("tracepoint")
        );
        let bogus = line.replace(r#""probe":"tracepoint""#, r#""probe":"x\nforged""#);
        assert_eq!(
            dec.decode(&bogus),
            Err(RecordError::Invalid("monitor.probe", "x\nforged".into()))
        );
    }

    #[test]
    fn ids_that_are_not_plain_numbers_are_kept_as_given() {
        let mut dec = RecordDecoder::new();
        for (id, expected) in [
            (r#""0""#, AccountId::Num(0)),
            (r#""1000""#, AccountId::Num(1000)),
            ("1000", AccountId::Num(1000)),
            (r#""4294967295""#, AccountId::Num(u32::MAX)),
            (r#""4294967296""#, AccountId::Text("4294967296".into())),
            (r#""S-1-5-18""#, AccountId::Text("S-1-5-18".into())),
            (r#""-1""#, AccountId::Text("-1".into())),
            ("-1", AccountId::Text("-1".into())),
            (r#""007""#, AccountId::Text("007".into())),
            (r#""+7""#, AccountId::Text("+7".into())),
            (r#""""#, AccountId::Text("".into())),
            (r#""a\"b\u0000""#, AccountId::Text("a\"b\0".into())),
        ] {
            let line = format!(
                r#"{{"@timestamp":"2026-11-23T10:00:00Z","user":{{"id":{id}}},"group":{{"id":{id}}},"destination":{{"ip":"203.0.113.9","port":80}}}}"#
            );
            for _ in 0..2 {
                let rec = dec.decode(&line).unwrap().unwrap();
                assert_eq!(rec.process.user_id.as_ref(), Some(&expected), "{line}");
                assert_eq!(rec.process.group_id.as_ref(), Some(&expected), "{line}");
                // Written back as the string it was (escaped), and read back the same.
                let out = rec.to_json_line();
                let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(doc["user"]["id"], expected.to_string(), "{out}");
                assert_eq!(doc["group"]["id"], expected.to_string(), "{out}");
                assert_eq!(dec.decode(out.trim_end()).unwrap().unwrap(), rec);
            }
        }
    }

    #[test]
    fn run_tree_finds_what_it_holds_and_only_that() {
        let mut x = 0x7265_6164_u64;
        let mut next = move || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let run = |bytes: Vec<u8>| KnownRun {
            bytes: bytes.into(),
            seen: 0,
            host: None,
            transport: None,
            monitor: None,
            process: None,
            end: RunEnd::Close,
        };
        // Distinct runs that share long prefixes and differ in a few bytes, each ending in
        // the one `"}` it holds (so none is a prefix of another), three times as many as
        // the tree holds.
        let mut tree = KnownRuns::new(true);
        let mut inserted: Vec<Vec<u8>> = Vec::new();
        for n in 0..3 * RUNS {
            let mut key = br#""event":{"x":"#.to_vec();
            for _ in 0..(next() % 40) {
                key.push(b"0123456789abcdef"[(next() % 16) as usize]);
            }
            key.extend_from_slice(format!("-{n}\"}}").as_bytes());
            tree.insert(run(key.clone()));
            // Known already: left as it is.
            tree.insert(run(key.clone()));
            inserted.push(key);
        }
        let kept: Vec<&[u8]> = tree.runs.iter().flatten().map(|r| &r.bytes[..]).collect();
        assert_eq!(kept.len(), RUNS);
        // The oldest are the ones forgotten.
        let mut newest: Vec<&[u8]> = inserted[2 * RUNS..].iter().map(|k| &k[..]).collect();
        let mut sorted = kept.clone();
        newest.sort();
        sorted.sort();
        assert_eq!(sorted, newest);
        for old in &inserted[..2 * RUNS] {
            assert!(tree.find(old).is_none());
        }
        for k in &kept {
            // Found alone and followed by more of a line.
            assert_eq!(tree.find(k).map(|r| &r.bytes[..]), Some(*k));
            let mut longer = k.to_vec();
            longer.extend_from_slice(br#","source":{}"#);
            assert_eq!(tree.find(&longer).map(|r| &r.bytes[..]), Some(*k));
            // One byte short, or one byte changed: nothing.
            assert!(tree.find(&k[..k.len() - 1]).is_none());
            let mut changed = k.to_vec();
            let i = (next() as usize) % changed.len();
            changed[i] ^= 0x20;
            assert!(
                tree.find(&changed)
                    .is_none_or(|r| r.bytes[..] == changed[..])
            );
        }
    }
}
