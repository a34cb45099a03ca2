//! A zone's journal for IXFR (RFC 1995): the records deleted and added at each serial
//! step, the newest `depth` steps kept.

use std::collections::VecDeque;

use super::records::Rr;

/// One serial step: the SOAs at both ends and what changed between them.
#[derive(Debug, Clone)]
pub(crate) struct Delta {
    pub(crate) from: Rr,
    pub(crate) to: Rr,
    pub(crate) deleted: Vec<Rr>,
    pub(crate) added: Vec<Rr>,
}

/// The steps, oldest first; each starts at the serial the previous one ended at.
#[derive(Debug, Clone, Default)]
pub(crate) struct Journal {
    steps: VecDeque<(u32, u32, Delta)>,
}

impl Journal {
    /// Appends the step from `from` to `to`, dropping the oldest beyond `depth`. A step
    /// that does not start where the journal ends (a reload that reset the zone) starts
    /// the journal afresh: a chain with a gap would give a secondary wrong data.
    pub(crate) fn push(&mut self, from: u32, to: u32, delta: Delta, depth: usize) {
        if self.steps.back().is_some_and(|(_, end, _)| *end != from) {
            self.steps.clear();
        }
        self.steps.push_back((from, to, delta));
        while self.steps.len() > depth.max(1) {
            self.steps.pop_front();
        }
    }

    /// Steps kept.
    pub(crate) fn depth(&self) -> usize {
        self.steps.len()
    }

    /// The steps from `serial` to the newest, when the journal reaches back to it.
    pub(crate) fn since(&self, serial: u32) -> Option<Vec<&Delta>> {
        let start = self.steps.iter().position(|(from, _, _)| *from == serial)?;
        Some(self.steps.iter().skip(start).map(|(_, _, d)| d).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::rtype;

    fn soa(serial: u32) -> Rr {
        Rr { owner: Box::new([0]), rtype: rtype::SOA, rdata: serial.to_be_bytes().into(), ttl: 1 }
    }

    fn step(from: u32, to: u32) -> Delta {
        Delta { from: soa(from), to: soa(to), deleted: vec![], added: vec![] }
    }

    /// The journal answers every serial it reaches back to, forgets the oldest beyond
    /// its depth, and restarts after a gap.
    #[test]
    fn keeps_depth_steps_and_restarts_after_a_gap() {
        let mut j = Journal::default();
        for s in 1..=5 {
            j.push(s, s + 1, step(s, s + 1), 3);
        }
        assert_eq!(j.depth(), 3);
        assert!(j.since(2).is_none(), "older than the journal");
        assert_eq!(j.since(3).map(|v| v.len()), Some(3));
        assert_eq!(j.since(5).map(|v| v.len()), Some(1));
        assert!(j.since(6).is_none(), "the current serial has no step after it");
        j.push(100, 101, step(100, 101), 3);
        assert_eq!(j.depth(), 1, "a gap starts afresh");
        assert!(j.since(5).is_none());
    }
}
