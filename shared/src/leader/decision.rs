//! The rules of the election as pure functions of what a replica saw and when, on its own
//! monotonic clock (every instant is injected, so the rules are tested without a cluster or
//! a clock).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use super::LeaderError;

/// How long a lease lasts, how often its holder renews it, and how long a lease call may
/// take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// The lease's `leaseDurationSeconds`: how long others wait for a record to change
    /// before they take the lease over.
    pub duration: Duration,
    /// How often the holder renews; it also stops working this long before its lease
    /// could lapse, a margin for writes in flight and for clocks that run at different
    /// rates.
    pub renew_every: Duration,
    /// The bound on every lease API call.
    pub call_timeout: Duration,
}

impl LeaseTiming {
    /// A lease of `seconds`, renewed every third of it, each call bounded by half a
    /// renewal period (so a read and a write fit in one).
    pub fn from_seconds(seconds: u32) -> Result<LeaseTiming, LeaderError> {
        let duration = Duration::from_secs(u64::from(seconds));
        let renew_every = duration / 3;
        // Most of a renewal period: an API server slowed by load (two control planes starting
        // on two cores) answers a lease read in seconds, and a lost lease stops all work.
        LeaseTiming::new(duration, renew_every, renew_every * 4 / 5)
    }

    pub fn new(
        duration: Duration,
        renew_every: Duration,
        call_timeout: Duration,
    ) -> Result<LeaseTiming, LeaderError> {
        let broken = |rule| LeaderError::Timing {
            rule,
            duration,
            renew_every,
            call_timeout,
        };
        if duration.subsec_nanos() != 0 || duration.is_zero() {
            return Err(broken(
                "the duration must be a whole number of seconds, at least one",
            ));
        }
        if i32::try_from(duration.as_secs()).is_err() {
            return Err(broken("the duration must fit leaseDurationSeconds (i32)"));
        }
        if call_timeout.is_zero() || call_timeout >= renew_every {
            return Err(broken(
                "calls must be bounded by a timeout shorter than the renewal period",
            ));
        }
        // The holder must get at least one more renewal in before it stops working.
        if renew_every * 2 >= duration {
            return Err(broken(
                "the renewal period must be shorter than half the duration",
            ));
        }
        Ok(LeaseTiming {
            duration,
            renew_every,
            call_timeout,
        })
    }

    /// Until when a holder may work after a renewal that started at `renewal_started`.
    pub fn works_until(&self, renewal_started: Instant) -> Instant {
        // Overflow is out of reach for real durations; stopping at once would be the safe side.
        renewal_started
            .checked_add(self.duration - self.renew_every)
            .unwrap_or(renewal_started)
    }
}

/// What tells one version of the lease from another: every write changes at least its
/// resourceVersion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `None` when nobody holds it (never held, or given up).
    pub holder: Option<String>,
    pub renew_time: Option<MicroTime>,
    pub resource_version: Option<String>,
    /// The holder's `leaseDurationSeconds`.
    pub duration: Option<Duration>,
}

impl LeaseRecord {
    pub fn of(lease: &Lease) -> LeaseRecord {
        let spec = lease.spec.as_ref();
        LeaseRecord {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            renew_time: spec.and_then(|s| s.renew_time.clone()),
            resource_version: lease.metadata.resource_version.clone(),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
        }
    }
}

/// A record and when this replica first saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub record: LeaseRecord,
    pub since: Instant,
}

impl Sighting {
    /// After reading `record` at `now`: the same record keeps its first sighting, a changed
    /// one starts anew.
    pub fn next(previous: Option<Sighting>, record: LeaseRecord, now: Instant) -> Sighting {
        match previous {
            Some(seen) if seen.record == record => seen,
            _ => Sighting { record, since: now },
        }
    }
}

/// What a replica should do with the lease as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseDecision {
    /// There is none: create it.
    Create,
    /// We hold it: renew it.
    Renew,
    /// Nobody holds it, or its holder has not renewed it for a whole duration: take it over.
    TakeOver,
    /// Someone else holds it: wait.
    Standby,
}

/// Decides from what this replica saw of the lease (`None`: it does not exist) at `now`.
/// The holder's `renewTime` plays no part: it was written with the holder's clock.
pub fn decide(
    current: Option<&Sighting>,
    me: &str,
    timing: &LeaseTiming,
    now: Instant,
) -> LeaseDecision {
    let Some(seen) = current else {
        return LeaseDecision::Create;
    };
    match seen.record.holder.as_deref() {
        Some(holder) if holder == me => LeaseDecision::Renew,
        None => LeaseDecision::TakeOver,
        Some(_) => {
            let duration = seen.record.duration.unwrap_or(timing.duration);
            if now.saturating_duration_since(seen.since) >= duration {
                LeaseDecision::TakeOver
            } else {
                LeaseDecision::Standby
            }
        }
    }
}

/// What one replica knows of the election, round after round.
#[derive(Debug, Clone, Default)]
pub struct ElectionState {
    sighting: Option<Sighting>,
    /// The start of this replica's last successful write of the lease, while it holds it.
    renewed: Option<Instant>,
}

impl ElectionState {
    /// The lease as read at `now` (`None`: it does not exist).
    pub fn saw(&mut self, record: Option<LeaseRecord>, now: Instant) {
        self.sighting = record.map(|r| Sighting::next(self.sighting.take(), r, now));
    }

    pub fn decide(&self, me: &str, timing: &LeaseTiming, now: Instant) -> LeaseDecision {
        decide(self.sighting.as_ref(), me, timing, now)
    }

    /// Our write that started at `started` succeeded and left `record`, read back at `now`.
    pub fn wrote(&mut self, started: Instant, record: LeaseRecord, now: Instant) {
        self.sighting = Some(Sighting::next(self.sighting.take(), record, now));
        self.renewed = Some(started);
    }

    /// Someone else holds the lease.
    pub fn stand_by(&mut self) {
        self.renewed = None;
    }

    /// Until when this replica may work; `None` when it does not hold the lease.
    pub fn works_until(&self, timing: &LeaseTiming) -> Option<Instant> {
        self.renewed.map(|started| timing.works_until(started))
    }

    /// Whether this replica may work at `now`. Failed renewals change nothing here: the
    /// last successful one alone says how long the lease is ours for sure.
    pub fn leads(&self, timing: &LeaseTiming, now: Instant) -> bool {
        self.works_until(timing).is_some_and(|until| now < until)
    }

    /// When this replica's last successful write of the lease started, while it holds it.
    pub fn renewed(&self) -> Option<Instant> {
        self.renewed
    }

    pub fn sighting(&self) -> Option<&Sighting> {
        self.sighting.as_ref()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use k8s_openapi::jiff::{SignedDuration, Timestamp};

    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn timing() -> LeaseTiming {
        LeaseTiming::from_seconds(15).unwrap()
    }

    fn record(holder: Option<&str>, renewed: Timestamp, version: &str) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(String::from),
            renew_time: Some(MicroTime(renewed)),
            resource_version: Some(version.into()),
            duration: Some(secs(15)),
        }
    }

    fn shifted(by_secs: i64) -> Timestamp {
        Timestamp::now()
            .checked_add(SignedDuration::from_secs(by_secs))
            .unwrap()
    }

    #[test]
    fn default_timing_is_a_third_and_four_fifths_of_that() {
        let t = timing();
        assert_eq!(
            (t.duration, t.renew_every, t.call_timeout),
            (secs(15), secs(5), Duration::from_millis(4000))
        );
        assert_eq!(LeaseTiming::from_seconds(3).unwrap().renew_every, secs(1));
    }

    #[test]
    fn timing_that_breaks_a_rule_is_refused() {
        let cases = [
            (
                Duration::from_millis(1500),
                secs(0),
                Duration::from_millis(100),
            ),
            (secs(0), secs(0), secs(0)),
            (secs(15), secs(5), secs(5)),
            (secs(15), secs(5), secs(0)),
            (secs(15), Duration::from_millis(7500), secs(1)),
        ];
        for (duration, renew_every, call_timeout) in cases {
            let result = LeaseTiming::new(duration, renew_every, call_timeout);
            assert!(
                matches!(result, Err(LeaderError::Timing { .. })),
                "{duration:?} {renew_every:?} {call_timeout:?}: {result:?}"
            );
        }
        assert!(LeaseTiming::from_seconds(0).is_err());
        assert!(LeaseTiming::new(secs(15), secs(5), secs(2)).is_ok());
    }

    #[test]
    fn decisions() {
        let t0 = Instant::now();
        let seen = |holder: Option<&str>, renewed: Timestamp, since: Instant| Sighting {
            record: record(holder, renewed, "7"),
            since,
        };
        let cases = [
            (None, t0, LeaseDecision::Create),
            (
                Some(seen(Some("me"), shifted(-3600), t0)),
                t0,
                LeaseDecision::Renew,
            ),
            (
                Some(seen(None, shifted(0), t0)),
                t0,
                LeaseDecision::TakeOver,
            ),
            (
                Some(seen(Some("other"), shifted(0), t0)),
                t0 + secs(14),
                LeaseDecision::Standby,
            ),
            (
                Some(seen(Some("other"), shifted(0), t0)),
                t0 + secs(15),
                LeaseDecision::TakeOver,
            ),
            // renewTime skewed far into the past or the future changes nothing: only how
            // long this replica has seen the record unchanged counts.
            (
                Some(seen(Some("other"), shifted(-3600), t0)),
                t0 + secs(1),
                LeaseDecision::Standby,
            ),
            (
                Some(seen(Some("other"), shifted(-120), t0)),
                t0 + Duration::from_millis(14_999),
                LeaseDecision::Standby,
            ),
            (
                Some(seen(Some("other"), shifted(3600), t0)),
                t0 + secs(15),
                LeaseDecision::TakeOver,
            ),
            // Time before the sighting (an instant from an earlier read) is not negative.
            (
                Some(seen(Some("other"), shifted(0), t0 + secs(5))),
                t0,
                LeaseDecision::Standby,
            ),
        ];
        for (current, now, expected) in cases {
            assert_eq!(
                decide(current.as_ref(), "me", &timing(), now),
                expected,
                "{current:?} at +{:?}",
                now.saturating_duration_since(t0)
            );
        }
    }

    #[test]
    fn the_holders_own_duration_counts_and_ours_stands_in_when_it_has_none() {
        let t0 = Instant::now();
        let mut short = record(Some("other"), shifted(0), "1");
        short.duration = Some(secs(5));
        let seen = Sighting {
            record: short.clone(),
            since: t0,
        };
        assert_eq!(
            decide(Some(&seen), "me", &timing(), t0 + secs(5)),
            LeaseDecision::TakeOver
        );
        short.duration = None;
        let seen = Sighting {
            record: short,
            since: t0,
        };
        assert_eq!(
            decide(Some(&seen), "me", &timing(), t0 + secs(5)),
            LeaseDecision::Standby
        );
        assert_eq!(
            decide(Some(&seen), "me", &timing(), t0 + secs(15)),
            LeaseDecision::TakeOver
        );
    }

    #[test]
    fn an_empty_holder_is_nobody() {
        let lease = Lease {
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: Some(String::new()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(LeaseRecord::of(&lease).holder, None);
    }

    #[test]
    fn a_record_that_keeps_changing_is_never_taken_over() {
        let t = timing();
        let t0 = Instant::now();
        let mut state = ElectionState::default();
        // Renewed every 5 s for ten minutes, with a renewTime an hour in the past.
        for i in 0..120u64 {
            let now = t0 + secs(5 * i);
            state.saw(
                Some(record(Some("other"), shifted(-3600), &i.to_string())),
                now,
            );
            for later in [secs(0), secs(4), Duration::from_millis(4999)] {
                assert_eq!(
                    state.decide("me", &t, now + later),
                    LeaseDecision::Standby,
                    "round {i}"
                );
            }
        }
        // Only a resourceVersion changing is a change too (a write that kept renewTime).
        let mut state = ElectionState::default();
        state.saw(Some(record(Some("other"), shifted(0), "1")), t0);
        let same_time = state.sighting().unwrap().record.renew_time.clone();
        let mut next = record(Some("other"), shifted(0), "2");
        next.renew_time = same_time;
        state.saw(Some(next), t0 + secs(10));
        assert_eq!(
            state.decide("me", &t, t0 + secs(20)),
            LeaseDecision::Standby
        );
        assert_eq!(
            state.decide("me", &t, t0 + secs(25)),
            LeaseDecision::TakeOver
        );
    }

    #[test]
    fn an_unchanged_record_is_taken_over_a_whole_duration_after_it_was_first_seen() {
        let t = timing();
        let t0 = Instant::now();
        let mut state = ElectionState::default();
        let stale = record(Some("other"), shifted(-86_400), "9");
        // Seen for the first time late, as a replica that just started would.
        state.saw(Some(stale.clone()), t0);
        for at in [5, 10, 14] {
            state.saw(Some(stale.clone()), t0 + secs(at));
            assert_eq!(
                state.decide("me", &t, t0 + secs(at)),
                LeaseDecision::Standby
            );
        }
        state.saw(Some(stale), t0 + secs(15));
        assert_eq!(
            state.decide("me", &t, t0 + secs(15)),
            LeaseDecision::TakeOver
        );
        // A lease deleted and recreated is a new record.
        state.saw(None, t0 + secs(16));
        assert_eq!(state.decide("me", &t, t0 + secs(16)), LeaseDecision::Create);
        state.saw(Some(record(Some("other"), shifted(0), "10")), t0 + secs(17));
        assert_eq!(
            state.decide("me", &t, t0 + secs(31)),
            LeaseDecision::Standby
        );
    }

    #[test]
    fn a_holder_whose_renewals_fail_stops_a_renewal_period_before_its_lease_could_lapse() {
        let t = timing();
        let t0 = Instant::now();
        let mut state = ElectionState::default();
        assert!(!state.leads(&t, t0));
        // The write started at t0 and was answered a second later.
        state.wrote(t0, record(Some("me"), shifted(0), "1"), t0 + secs(1));
        assert_eq!(state.works_until(&t), Some(t0 + secs(10)));
        // Its renewals at +5 s and +7.5 s fail: nothing is written, nothing changes.
        for (at, leads) in [
            (Duration::from_secs(4), true),
            (Duration::from_millis(9_900), true),
            (Duration::from_secs(10), false),
            (Duration::from_secs(16), false),
        ] {
            assert_eq!(state.leads(&t, t0 + at), leads, "+{at:?}");
        }
        // An observer who saw the write only when it was answered waits until +16 s:
        // six seconds after the holder stopped.
        let mut observer = ElectionState::default();
        observer.saw(Some(record(Some("me"), shifted(0), "1")), t0 + secs(1));
        assert_eq!(
            observer.decide("other", &t, t0 + secs(15)),
            LeaseDecision::Standby
        );
        assert_eq!(
            observer.decide("other", &t, t0 + secs(16)),
            LeaseDecision::TakeOver
        );
        // A successful renewal that started at +5 s extends it to +15 s.
        state.wrote(
            t0 + secs(5),
            record(Some("me"), shifted(0), "2"),
            t0 + secs(6),
        );
        assert!(state.leads(&t, t0 + secs(14)));
        assert!(!state.leads(&t, t0 + secs(15)));
        // Someone else holding it ends it at once.
        state.stand_by();
        assert!(!state.leads(&t, t0 + secs(6)));
        assert_eq!(state.works_until(&t), None);
    }
}
