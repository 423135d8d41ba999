//! Records as JSON lines, the one boundary of the hand-written JSON code: `read` (bytes in,
//! record out), `lines` (a stream of lines in, records out), `write` (record in, bytes
//! out). serde_json is the reference their tests compare against.

use super::*;

mod addresses;
pub(super) mod lines;
pub(super) mod read;
#[cfg(feature = "json-sonic")]
mod sonic;
pub(super) mod write;

/// The decoder `JsonLines` reads with: the hand-written one, or with the `json-sonic`
/// feature the sonic-rs one it was measured against (BENCHMARKS.md, "JSON reader").
#[cfg(not(feature = "json-sonic"))]
type LineDecoder = read::RecordDecoder;
#[cfg(feature = "json-sonic")]
type LineDecoder = sonic::SonicDecoder;
