//! Records as JSON lines: `read` (bytes in, record out) and `write` (record in, bytes out).

use super::*;

mod addresses;
pub(super) mod read;
pub(super) mod write;
