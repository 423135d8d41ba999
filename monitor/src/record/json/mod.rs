//! Records as JSON lines, the one boundary of the hand-written JSON code: `read` (bytes in,
//! record out), `lines` (a stream of lines in, records out), `write` (record in, bytes
//! out). serde_json is the reference their tests compare against.

use super::*;

mod addresses;
pub(super) mod lines;
pub(super) mod read;
pub(super) mod write;

/// The decoder `JsonLines` reads with. (A sonic-rs one was measured in its place and
/// replayed at about a third of the rate: BENCHMARKS.md, "JSON reader".)
type LineDecoder = read::RecordDecoder;
