//! Each zone's SOA serial (RFC 1982 arithmetic), kept across reloads: a reload that
//! leaves a zone's content as it was keeps its serial, anything else advances it, so
//! secondaries and caches see a change exactly when there is one.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// A zone's serial and the hash of the content it was given for.
#[derive(Debug, Clone, Copy)]
struct SerialState {
    serial: u32,
    content_hash: u64,
}

/// The serials of every zone served so far, by apex.
#[derive(Debug, Default)]
pub(crate) struct Serials {
    by_zone: HashMap<String, SerialState>,
}

impl Serials {
    /// The serial of the zone at `apex`, just built from content hashing to
    /// `content_hash` (with `file_serial` when its file has an SOA). A zone seen for the
    /// first time starts at the file's serial or the current time, whichever is later;
    /// one whose content changed moves past both its previous serial and the file's.
    pub(crate) fn on_load(&mut self, apex: &str, file_serial: Option<u32>, content_hash: u64) -> u32 {
        let serial = match self.by_zone.get(apex) {
            None => file_serial.unwrap_or(0).max(unix_now()),
            Some(st) if st.content_hash == content_hash => st.serial,
            Some(st) => file_serial.unwrap_or(0).max(st.serial.wrapping_add(1)),
        };
        self.by_zone.insert(apex.to_owned(), SerialState { serial, content_hash });
        serial
    }

    /// The serial after `current` for the zone at `apex`, whose discovered names changed:
    /// the current Unix time when that is later (RFC 1982), else `current + 1`. Instances
    /// with synchronised clocks that step a zone in the same second agree on its serial,
    /// and none ever goes back (see the crate's README on several primaries).
    pub(crate) fn advance(&mut self, apex: &str, current: u32) -> u32 {
        let plus_one = current.wrapping_add(1);
        let now = unix_now();
        let next = if (now.wrapping_sub(plus_one) as i32) > 0 { now } else { plus_one };
        if let Some(st) = self.by_zone.get_mut(apex) {
            st.serial = next;
        }
        next
    }
}

fn unix_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs() as u32)
}
