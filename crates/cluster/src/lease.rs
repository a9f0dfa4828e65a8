//! The leader's lease: how recently a quorum acknowledged this node as its leader, so that
//! it can answer reads without a quorum round of its own for each.
//!
//! A follower that accepts an `AppendEntries` from the leader refuses every vote request for
//! openraft's leader lease (`election_timeout_max`) after it received it. So once a quorum
//! has accepted a message the leader sent at `t`, no other leader can be elected before
//! `t + election_timeout_max`: every quorum that could elect one includes a node of that
//! quorum. The leader counts from the time it *sent* the message (never later than the
//! follower's receipt) on its own monotonic clock, and trusts the lease for less than that
//! (see [`LeaderLease::new`]) to leave room for clocks that tick at slightly different rates.
//!
//! The follower's refusal lives in memory: a node that restarts would vote at once. So a
//! node neither votes nor stands for election for the whole lease after it starts
//! ([`LeaderLease::may_vote`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::Vote;

use crate::types::NodeId;

/// Per follower: the vote it last accepted from this node, and when this node sent the
/// newest message it accepted under that vote.
type Acknowledged = HashMap<NodeId, (Vote<NodeId>, Instant)>;

#[derive(Clone)]
pub struct LeaderLease {
    acknowledged: Arc<Mutex<Acknowledged>>,
    /// How long after a quorum's acknowledgement the lease is trusted.
    trusted_for: Duration,
    /// How long followers keep refusing votes after a leader's message (openraft's lease).
    follower_lease: Duration,
    started: Instant,
}

impl LeaderLease {
    /// `election_timeout_min` and `election_timeout_max` as openraft is configured. The lease
    /// is trusted for `election_timeout_max - election_timeout_min / 2`: with the default 500
    /// and 1,000 ms, 750 ms after each acknowledgement, which heartbeats (every 100 ms) renew
    /// long before it ends, and a margin of 250 ms for clock-rate drift and the read itself.
    pub fn new(election_timeout_min: Duration, election_timeout_max: Duration) -> Self {
        Self {
            acknowledged: Arc::default(),
            trusted_for: election_timeout_max.saturating_sub(election_timeout_min / 2),
            follower_lease: election_timeout_max,
            started: Instant::now(),
        }
    }

    /// Records that `follower` accepted, under `vote`, a message sent at `sent`.
    pub fn acknowledged(&self, follower: NodeId, vote: Vote<NodeId>, sent: Instant) {
        let mut acknowledged = self
            .acknowledged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match acknowledged.get_mut(&follower) {
            Some((known, at)) if *known == vote => *at = (*at).max(sent),
            _ => {
                acknowledged.insert(follower, (vote, sent));
            }
        }
    }

    /// Whether `me`, leading under `vote`, holds the lease now: in each of `configs` (one, or
    /// two during a membership change), a majority of voters, `me` included if it is one,
    /// accepted a message sent under `vote` within the trusted span.
    pub fn held(&self, me: NodeId, vote: &Vote<NodeId>, configs: &[BTreeSet<NodeId>]) -> bool {
        if configs.is_empty() {
            return false;
        }
        let now = Instant::now();
        let acknowledged = self
            .acknowledged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        configs.iter().all(|voters| {
            let fresh = voters
                .iter()
                .filter(|&&id| {
                    id == me
                        || acknowledged.get(&id).is_some_and(|(known, sent)| {
                            known == vote && now.duration_since(*sent) < self.trusted_for
                        })
                })
                .count();
            fresh > voters.len() / 2
        })
    }

    /// Whether this node may grant votes: not until a lease it may have granted before it
    /// (re)started has surely run out.
    pub fn may_vote(&self) -> bool {
        self.until_may_vote().is_zero()
    }

    /// How long until [`Self::may_vote`]: this node neither votes nor stands for election
    /// before then.
    pub fn until_may_vote(&self) -> Duration {
        self.follower_lease.saturating_sub(self.started.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(term: u64, leader: NodeId) -> Vote<NodeId> {
        Vote::new_committed(term, leader)
    }

    #[test]
    fn a_majority_acknowledging_the_same_vote_recently_holds_the_lease() {
        let lease = LeaderLease::new(Duration::from_millis(500), Duration::from_millis(1000));
        let voters = [BTreeSet::from([1, 2, 3])];
        let leading = vote(4, 1);
        assert!(
            !lease.held(1, &leading, &voters),
            "no follower has answered yet"
        );

        lease.acknowledged(2, vote(3, 1), Instant::now());
        assert!(
            !lease.held(1, &leading, &voters),
            "an older vote does not count"
        );

        let stale = Instant::now() - Duration::from_millis(800);
        lease.acknowledged(3, leading, stale);
        assert!(!lease.held(1, &leading, &voters), "past the trusted span");

        lease.acknowledged(3, leading, Instant::now());
        assert!(lease.held(1, &leading, &voters));
        lease.acknowledged(3, leading, stale);
        assert!(
            lease.held(1, &leading, &voters),
            "an older answer arriving late"
        );

        assert!(
            !lease.held(
                1,
                &leading,
                &[BTreeSet::from([1, 2, 3]), BTreeSet::from([2, 4, 5])]
            ),
            "a joint membership needs a majority of each half"
        );
        assert!(!lease.held(1, &leading, &[]));
        assert!(
            lease.held(1, &leading, &[BTreeSet::from([1])]),
            "a single voter"
        );
    }

    #[test]
    fn a_node_does_not_vote_until_a_lease_it_granted_has_ended() {
        let lease = LeaderLease::new(Duration::from_millis(500), Duration::from_secs(3600));
        assert!(!lease.may_vote());
        let lease = LeaderLease::new(Duration::ZERO, Duration::ZERO);
        assert!(lease.may_vote());
    }
}
