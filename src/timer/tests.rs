use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use proptest::prelude::*;

use super::TimerWheel;

const SECOND: u64 = 1_000;
const DAY: u64 = 86_400 * SECOND;
/// 2024-01-01, so tests run at a realistic wall-clock time.
const T0: u64 = 1_704_067_200_000;

/// Deterministic pseudo-random numbers without pulling in a crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
}

#[test]
fn empty_wheel_fires_nothing_and_has_no_sleep() {
    let mut w: TimerWheel<u64> = TimerWheel::new(T0);
    let a = w.advance(T0 + DAY);
    assert!(a.due.is_empty());
    assert_eq!(a.sleep, None);
    assert!(w.is_empty());
    assert_eq!(w.next_due(), None);
    assert_eq!(w.now_ms(), T0 + DAY);
}

#[test]
fn fires_in_due_order_with_ties_in_insertion_order() {
    let mut w = TimerWheel::new(T0);
    w.insert(T0 + 5_000, 1u32);
    w.insert(T0 + 10, 2);
    w.insert(T0 + 5_000, 3);
    w.insert(T0 + 3 * DAY, 4);
    w.insert(T0 + 10, 5);
    w.insert(T0 + 70, 6);
    assert_eq!(w.len(), 6);
    assert_eq!(w.next_due(), Some(T0 + 10));

    let a = w.advance(T0 + 9);
    assert!(a.due.is_empty());
    assert_eq!(a.sleep, Some(Duration::from_millis(1)));

    let a = w.advance(T0 + 5_000);
    assert_eq!(a.due, vec![2, 5, 6, 1, 3]);
    assert_eq!(a.sleep, Some(Duration::from_millis(3 * DAY - 5_000)));
    assert_eq!(w.next_due(), Some(T0 + 3 * DAY));

    let a = w.advance(T0 + 3 * DAY);
    assert_eq!(a.due, vec![4]);
    assert_eq!(a.sleep, None);
    assert!(w.is_empty());
}

#[test]
fn due_list_is_sorted_across_levels_in_one_advance() {
    let mut w = TimerWheel::new(T0);
    let dues = [DAY, 1, 64, 63, 4096, 4095, 262_144, 3 * DAY + 7, 65, 2];
    for (i, d) in dues.iter().enumerate() {
        w.insert(T0 + d, i);
    }
    let a = w.advance(T0 + 4 * DAY);
    let fired: Vec<u64> = a.due.iter().map(|&i| dues[i]).collect();
    let mut sorted = dues.to_vec();
    sorted.sort();
    assert_eq!(fired, sorted);
}

#[test]
fn items_in_the_past_fire_on_next_advance() {
    let mut w = TimerWheel::new(T0);
    w.insert(T0 - DAY, 'a');
    w.insert(0, 'b');
    w.insert(T0, 'c');
    assert_eq!(w.next_due(), Some(0));
    let a = w.advance(T0);
    assert_eq!(a.due, vec!['b', 'a', 'c']);
    assert_eq!(a.sleep, None);
}

#[test]
fn cancel_removes_and_reports() {
    let mut w = TimerWheel::new(T0);
    w.insert(T0 + 100, 1u64);
    w.insert(T0 + 100, 2);
    w.insert(T0 + 10 * DAY, 3);
    w.insert(T0 - 1, 4);
    assert!(w.cancel(&1));
    assert!(!w.cancel(&1));
    assert!(w.cancel(&3));
    assert!(w.cancel(&4));
    assert!(!w.cancel(&99));
    assert_eq!(w.len(), 1);
    assert!(!w.contains(&1));
    assert_eq!(w.due_time(&2), Some(T0 + 100));
    let a = w.advance(T0 + 20 * DAY);
    assert_eq!(a.due, vec![2]);
    assert!(w.is_empty());
}

#[test]
fn cancelling_the_earliest_updates_next_due() {
    let mut w = TimerWheel::new(T0);
    for i in 0..100u64 {
        w.insert(T0 + 5 * DAY + i, i);
    }
    for i in 0..99u64 {
        assert_eq!(w.next_due(), Some(T0 + 5 * DAY + i));
        assert!(w.cancel(&i));
    }
    assert_eq!(w.next_due(), Some(T0 + 5 * DAY + 99));
    let a = w.advance(T0 + 6 * DAY);
    assert_eq!(a.due, vec![99]);
}

#[test]
fn reinsert_replaces_due_time() {
    let mut w = TimerWheel::new(T0);
    w.insert(T0 + DAY, 7u64);
    w.insert(T0 + 50, 7);
    w.insert(T0 + 50, 8);
    w.insert(T0 + 50, 7); // same time again: now ranks after 8
    assert_eq!(w.len(), 2);
    assert_eq!(w.due_time(&7), Some(T0 + 50));
    let a = w.advance(T0 + 2 * DAY);
    assert_eq!(a.due, vec![8, 7]);

    // Postponing moves it out of reach of an advance that would have fired it.
    w.insert(T0 + 3 * DAY, 9);
    w.insert(T0 + 9 * DAY, 9);
    assert!(w.advance(T0 + 4 * DAY).due.is_empty());
    assert_eq!(w.advance(T0 + 9 * DAY).due, vec![9]);
}

#[test]
fn thirty_day_jump_in_one_call() {
    let mut w = TimerWheel::new(T0);
    let mut rng = Lcg(42);
    let mut expected = Vec::new();
    for id in 0..50_000u64 {
        let due = T0 + rng.next() % (30 * DAY);
        w.insert(due, id);
        expected.push((due, id));
    }
    w.insert(T0 + 31 * DAY, u64::MAX);
    expected.sort();
    let a = w.advance(T0 + 30 * DAY);
    let want: Vec<u64> = expected.iter().map(|&(_, id)| id).collect();
    assert_eq!(a.due, want);
    assert_eq!(a.sleep, Some(Duration::from_millis(DAY)));
    assert_eq!(w.len(), 1);
}

#[test]
fn hundred_thousand_timers_near_and_far() {
    let mut w = TimerWheel::new(T0);
    let mut rng = Lcg(7);
    let mut due_of = HashMap::new();
    for id in 0..100_000u64 {
        // Mix of sub-second, minutes, hours, days and years ahead.
        let span = [SECOND, 600 * SECOND, DAY / 4, 5 * DAY, 400 * DAY][(id % 5) as usize];
        let due = T0 + 1 + rng.next() % span;
        w.insert(due, id);
        due_of.insert(id, due);
    }
    // Cancel every tenth.
    for id in (0..100_000u64).step_by(10) {
        assert!(w.cancel(&id));
        due_of.remove(&id);
    }
    assert_eq!(w.len(), 90_000);

    let mut now = T0;
    let mut last_due = 0;
    let mut seen = 0;
    let mut step = 1;
    while !w.is_empty() {
        let prev = now;
        now += step;
        step = (step * 3).min(30 * DAY);
        let a = w.advance(now);
        for id in &a.due {
            let due = due_of[id];
            assert!(
                due <= now && due > prev,
                "fired {id} due {due} outside ({prev}, {now}]"
            );
            assert!(due >= last_due, "out of order");
            last_due = due;
        }
        seen += a.due.len();
        if let Some(sleep) = a.sleep {
            assert!(sleep > Duration::ZERO);
            assert_eq!(Some(now + sleep.as_millis() as u64), w.next_due());
        }
    }
    assert_eq!(seen, 90_000);
}

#[test]
fn sleep_is_never_zero() {
    let mut w = TimerWheel::new(T0);
    w.insert(T0 + 1, 1u8);
    let a = w.advance(T0);
    assert_eq!(a.sleep, Some(Duration::from_millis(1)));
    let a = w.advance(T0 + 1);
    assert_eq!(a.due, vec![1]);
    assert_eq!(a.sleep, None);
}

#[test]
fn far_future_goes_through_overflow() {
    let mut w = TimerWheel::new(T0);
    let far = T0 + (1u64 << 45);
    w.insert(u64::MAX, 1u8);
    w.insert(far, 2);
    w.insert(T0 + 1, 3);
    assert_eq!(w.next_due(), Some(T0 + 1));
    assert_eq!(w.advance(T0 + 1).due, vec![3]);
    assert_eq!(w.next_due(), Some(far));
    assert!(w.advance(far - 1).due.is_empty());
    assert_eq!(w.next_due(), Some(far));
    let a = w.advance(far);
    assert_eq!(a.due, vec![2]);
    assert_eq!(a.sleep, Some(Duration::from_millis(u64::MAX - far)));
    assert_eq!(w.advance(u64::MAX).due, vec![1]);
}

#[test]
fn clock_stepping_back_fires_only_what_is_due() {
    let mut w = TimerWheel::new(T0);
    w.advance(T0 + DAY);
    w.insert(T0 + 10, 1u8); // behind the wheel's time
    w.insert(T0 + DAY + 10, 2);
    let a = w.advance(T0);
    assert!(a.due.is_empty());
    assert_eq!(a.sleep, Some(Duration::from_millis(10)));
    let a = w.advance(T0 + 10);
    assert_eq!(a.due, vec![1]);
    assert_eq!(w.advance(T0 + DAY + 10).due, vec![2]);
}

/// The obviously correct model: a sorted map.
#[derive(Default)]
struct Reference {
    by_time: BTreeMap<(u64, u64), u8>,
    by_id: HashMap<u8, (u64, u64)>,
    seq: u64,
}

impl Reference {
    fn insert(&mut self, due: u64, id: u8) {
        self.cancel(id);
        self.seq += 1;
        self.by_time.insert((due, self.seq), id);
        self.by_id.insert(id, (due, self.seq));
    }
    fn cancel(&mut self, id: u8) -> bool {
        match self.by_id.remove(&id) {
            Some(key) => {
                self.by_time.remove(&key);
                true
            }
            None => false,
        }
    }
    fn advance(&mut self, now: u64) -> Vec<u8> {
        let later = match now.checked_add(1) {
            Some(next) => self.by_time.split_off(&(next, 0)),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.by_time, later);
        due.values()
            .map(|id| {
                self.by_id.remove(id);
                *id
            })
            .collect()
    }
    fn next_due(&self) -> Option<u64> {
        self.by_time.keys().next().map(|k| k.0)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(i64, u8),
    Cancel(u8),
    Advance(i64),
}

fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        -100i64..200,
        -5_000i64..300_000,
        0i64..(40 * DAY as i64),
        0i64..(1i64 << 44),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (offset(), 0u8..24).prop_map(|(d, id)| Op::Insert(d, id)),
        1 => (0u8..24).prop_map(Op::Cancel),
        3 => offset().prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn matches_reference(ops in proptest::collection::vec(op(), 1..200)) {
        let mut now = T0;
        let mut w = TimerWheel::new(now);
        let mut r = Reference::default();
        for op in ops {
            match op {
                Op::Insert(d, id) => {
                    let due = now.saturating_add_signed(d);
                    w.insert(due, id);
                    r.insert(due, id);
                }
                Op::Cancel(id) => prop_assert_eq!(w.cancel(&id), r.cancel(id)),
                Op::Advance(d) => {
                    now = now.saturating_add_signed(d);
                    let a = w.advance(now);
                    prop_assert_eq!(&a.due, &r.advance(now));
                    let sleep = r.next_due().map(|t| Duration::from_millis(t - now));
                    prop_assert_eq!(a.sleep, sleep);
                }
            }
            prop_assert_eq!(w.next_due(), r.next_due());
            prop_assert_eq!(w.len(), r.by_id.len());
        }
        prop_assert_eq!(w.advance(u64::MAX).due, r.advance(u64::MAX));
    }
}
