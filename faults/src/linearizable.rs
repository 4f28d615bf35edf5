//! A linearizability checker for one key of an object store (Wing & Gong's search with
//! Lowe's memoisation, as Porcupine and Knossos do it).
//!
//! A history is every operation on one key with the times it was invoked and answered.
//! It is linearizable when each operation can be given a single instant between its
//! invocation and its answer such that, taken in that order, the answers are those of a
//! sequential register holding `Option<value>`. Linearizability is local (Herlihy &
//! Wing), so a store's history is linearizable when each key's is: multi-key operations
//! (a copy, a batch delete, a listing) are split into one operation per key they touch.
//!
//! An operation whose outcome is unknown (a 503, a dropped connection) has no answer time:
//! it may take effect at any instant after its invocation, or never.

use std::collections::HashSet;
use std::fmt;

/// A value: the id of the write that produced it.
pub type Value = u64;

/// What an operation asked of the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// An unconditional write (a PUT, a copy's target, a multipart completion).
    Write(Value),
    /// A write with `If-None-Match: *`.
    Create(Value),
    /// An unconditional delete (idempotent: deleting nothing succeeds).
    Delete,
    /// A read (a GET, a copy's source, a listing's view of the key).
    Read,
}

/// What the store answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// The write or delete took effect.
    Done,
    /// The condition did not hold (412); nothing changed.
    Refused,
    /// A read's result: the value, or nothing there.
    Saw(Option<Value>),
    /// No answer that says what happened (503, a transport error).
    Unknown,
}

/// One operation on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub op: Op,
    pub ret: Ret,
    /// When it was invoked (any monotonic clock, the same for the whole history).
    pub call: u64,
    /// When its answer arrived; ignored for [`Ret::Unknown`].
    pub answered: u64,
    /// Which client did it, for the report.
    pub client: usize,
}

impl Event {
    fn end(&self) -> u64 {
        if self.ret == Ret::Unknown {
            u64::MAX
        } else {
            self.answered
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = if self.ret == Ret::Unknown {
            "?".to_owned()
        } else {
            self.answered.to_string()
        };
        write!(
            f,
            "client {} {:?} -> {:?} [{}, {end}]",
            self.client, self.op, self.ret, self.call
        )
    }
}

/// A small xorshift generator, so that generated workloads and histories are reproducible
/// from a printed seed without a crate. The seed must not be 0.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (which must not be 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }
}

/// An answer the register could not have given in that state.
struct Impossible;

/// The register's next state after `op` answered `ret` in `state`.
fn step(state: Option<Value>, op: Op, ret: Ret) -> Result<Option<Value>, Impossible> {
    let possible = |ok: bool, next: Option<Value>| if ok { Ok(next) } else { Err(Impossible) };
    match (op, ret) {
        (Op::Write(v), Ret::Done | Ret::Unknown) => Ok(Some(v)),
        (Op::Create(v), Ret::Done) => possible(state.is_none(), Some(v)),
        (Op::Create(v), Ret::Unknown) => Ok(state.or(Some(v))),
        (Op::Create(_), Ret::Refused) => possible(state.is_some(), state),
        (Op::Delete, Ret::Done | Ret::Unknown) => Ok(None),
        (Op::Read, Ret::Saw(seen)) => possible(seen == state, state),
        (Op::Read, Ret::Unknown) => Ok(state),
        _ => Err(Impossible),
    }
}

/// A level of the search: the candidates there, the next one to try, and the operation
/// and state that led into it (to undo on the way back).
struct Frame {
    candidates: Vec<usize>,
    next: usize,
    entered_by: Option<(usize, Option<Value>)>,
}

/// Why a history is not linearizable: the longest prefix that could be ordered, and the
/// operations that could come next, none of which fits.
#[derive(Debug, Clone)]
pub struct Violation {
    /// How many operations the deepest attempt ordered.
    pub ordered: usize,
    /// The register's value at that point.
    pub state: Option<Value>,
    /// The operations that were candidates there.
    pub stuck: Vec<Event>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "not linearizable: after {} operations the value is {:?}, and none of these fits next:",
            self.ordered, self.state
        )?;
        for e in &self.stuck {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Checks one key's history, starting from `initial`.
pub fn check(initial: Option<Value>, history: &[Event]) -> Result<(), Violation> {
    let mut events: Vec<Event> = history.to_vec();
    events.sort_by_key(|e| (e.call, e.end()));
    let n = events.len();
    let must = events.iter().filter(|e| e.ret != Ret::Unknown).count();
    let mut done = vec![0_u64; n.div_ceil(64)];
    let mut done_count = 0; // of operations with a known outcome
    let mut state = initial;
    let mut seen: HashSet<(Vec<u64>, Option<Value>)> = HashSet::new();
    let is_done = |done: &[u64], i: usize| done[i / 64] & (1 << (i % 64)) != 0;
    let candidates = |done: &[u64]| -> Vec<usize> {
        let mut min_end = u64::MAX;
        let mut out = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if is_done(done, i) {
                continue;
            }
            if e.call > min_end {
                break;
            }
            min_end = min_end.min(e.end());
            out.push(i);
        }
        // Only those invoked before every pending answer.
        out.retain(|&i| events[i].call <= min_end);
        out
    };
    let mut deepest: Option<Violation> = None;
    let mut stack = vec![Frame {
        candidates: candidates(&done),
        next: 0,
        entered_by: None,
    }];
    let mut ordered = 0;
    while let Some(frame) = stack.last_mut() {
        if done_count == must {
            return Ok(());
        }
        if frame.next < frame.candidates.len() {
            let i = frame.candidates[frame.next];
            frame.next += 1;
            let e = events[i];
            let Ok(after) = step(state, e.op, e.ret) else {
                continue;
            };
            done[i / 64] |= 1 << (i % 64);
            if !seen.insert((done.clone(), after)) {
                done[i / 64] &= !(1 << (i % 64));
                continue;
            }
            if e.ret != Ret::Unknown {
                done_count += 1;
            }
            ordered += 1;
            let before = state;
            state = after;
            stack.push(Frame {
                candidates: candidates(&done),
                next: 0,
                entered_by: Some((i, before)),
            });
        } else {
            if deepest.as_ref().is_none_or(|d| ordered > d.ordered) {
                deepest = Some(Violation {
                    ordered,
                    state,
                    stuck: frame.candidates.iter().map(|&i| events[i]).collect(),
                });
            }
            let frame = stack.pop().expect("a frame");
            if let Some((i, before)) = frame.entered_by {
                done[i / 64] &= !(1 << (i % 64));
                if events[i].ret != Ret::Unknown {
                    done_count -= 1;
                }
                ordered -= 1;
                state = before;
            }
        }
    }
    Err(deepest.unwrap_or(Violation {
        ordered: 0,
        state: initial,
        stuck: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(client: usize, op: Op, ret: Ret, call: u64, answered: u64) -> Event {
        Event {
            op,
            ret,
            call,
            answered,
            client,
        }
    }

    use Op::{Create, Delete, Read, Write};
    use Ret::{Done, Refused, Saw, Unknown};

    #[test]
    fn sequential_histories_follow_the_register() {
        let h = [
            ev(0, Read, Saw(None), 0, 1),
            ev(0, Write(1), Done, 2, 3),
            ev(0, Read, Saw(Some(1)), 4, 5),
            ev(0, Create(2), Refused, 6, 7),
            ev(0, Delete, Done, 8, 9),
            ev(0, Delete, Done, 10, 11),
            ev(0, Create(3), Done, 12, 13),
            ev(0, Read, Saw(Some(3)), 14, 15),
        ];
        check(None, &h).unwrap();
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        let h = [
            ev(0, Write(1), Done, 0, 1),
            ev(0, Write(2), Done, 2, 3),
            ev(1, Read, Saw(Some(1)), 4, 5),
        ];
        let v = check(None, &h).unwrap_err();
        assert_eq!(v.ordered, 2, "{v}");
    }

    #[test]
    fn overlapping_operations_may_take_effect_in_either_order() {
        for seen in [Some(1), Some(2)] {
            let h = [
                ev(0, Write(1), Done, 0, 10),
                ev(1, Write(2), Done, 1, 9),
                ev(2, Read, Saw(seen), 11, 12),
            ];
            check(None, &h).unwrap();
        }
        // But both readers after the writes must agree.
        let h = [
            ev(0, Write(1), Done, 0, 10),
            ev(1, Write(2), Done, 1, 9),
            ev(2, Read, Saw(Some(1)), 11, 12),
            ev(3, Read, Saw(Some(2)), 13, 14),
        ];
        check(None, &h).unwrap_err();
    }

    #[test]
    fn a_read_may_see_a_concurrent_write_or_not_but_never_go_back() {
        let h = [
            ev(0, Write(1), Done, 0, 1),
            ev(1, Write(2), Done, 2, 20),
            ev(2, Read, Saw(Some(2)), 3, 4),
            ev(3, Read, Saw(Some(1)), 5, 6),
        ];
        check(None, &h).unwrap_err();
        let h = [
            ev(0, Write(1), Done, 0, 1),
            ev(1, Write(2), Done, 2, 20),
            ev(3, Read, Saw(Some(1)), 3, 4),
            ev(2, Read, Saw(Some(2)), 5, 6),
        ];
        check(None, &h).unwrap();
    }

    #[test]
    fn the_phantom_an_acknowledged_delete_still_there_is_caught() {
        let h = [
            ev(0, Write(1), Done, 0, 1),
            ev(0, Delete, Done, 2, 3),
            ev(1, Read, Saw(Some(1)), 4, 5),
        ];
        check(None, &h).unwrap_err();
        // A failed delete left out of the history (it must have changed nothing), then the
        // key reads as gone: the delete happened after all.
        let h = [ev(0, Write(1), Done, 0, 1), ev(1, Read, Saw(None), 4, 5)];
        check(None, &h).unwrap_err();
    }

    #[test]
    fn two_creates_cannot_both_win() {
        let h = [ev(0, Create(1), Done, 0, 10), ev(1, Create(2), Done, 1, 11)];
        check(None, &h).unwrap_err();
        let h = [
            ev(0, Create(1), Done, 0, 10),
            ev(1, Create(2), Refused, 1, 11),
            ev(1, Read, Saw(Some(1)), 12, 13),
        ];
        check(None, &h).unwrap();
    }

    #[test]
    fn an_unknown_outcome_may_happen_late_or_never_but_once() {
        // Never.
        let h = [
            ev(0, Write(1), Done, 0, 1),
            ev(1, Write(2), Unknown, 2, 0),
            ev(2, Read, Saw(Some(1)), 10, 11),
        ];
        check(None, &h).unwrap();
        // Long after its call.
        let h = [
            ev(0, Write(1), Done, 0, 1),
            ev(1, Write(2), Unknown, 2, 0),
            ev(2, Read, Saw(Some(1)), 10, 11),
            ev(2, Read, Saw(Some(2)), 12, 13),
        ];
        check(None, &h).unwrap();
        // But not twice.
        let h = [
            ev(0, Write(1), Done, 0, 1),
            ev(1, Write(2), Unknown, 2, 0),
            ev(2, Read, Saw(Some(2)), 10, 11),
            ev(2, Write(3), Done, 12, 13),
            ev(2, Read, Saw(Some(2)), 14, 15),
        ];
        check(None, &h).unwrap_err();
        // And never before it was asked for.
        let h = [
            ev(2, Read, Saw(Some(2)), 0, 1),
            ev(1, Write(2), Unknown, 2, 0),
        ];
        check(None, &h).unwrap_err();
    }

    #[test]
    fn a_value_nobody_wrote_is_caught() {
        let h = [ev(0, Write(1), Done, 0, 1), ev(1, Read, Saw(Some(7)), 2, 3)];
        check(None, &h).unwrap_err();
    }

    /// A history of `clients` clients over one register, produced by running it for real:
    /// each operation takes effect at one instant inside its interval.
    fn linearizable_history(rng: &mut Rng, clients: usize, ops: usize) -> Vec<Event> {
        let mut state = None;
        let mut free_at = vec![0_u64; clients];
        let mut events = Vec::new();
        let mut now = 0;
        for id in 1..=ops as u64 {
            now += 1 + rng.below(3) as u64;
            let client = rng.below(clients);
            // The instant it takes effect: after the previous one, and after this
            // client's previous operation answered.
            now = now.max(free_at[client]);
            let at = now;
            let call = free_at[client].max(at.saturating_sub(rng.below(6) as u64));
            let op = match rng.below(4) {
                0 => Write(id),
                1 => Create(id),
                2 => Delete,
                _ => Read,
            };
            let ret = match op {
                Create(_) if state.is_some() => Refused,
                Write(_) | Delete | Create(_) => Done,
                Read => Saw(state),
            };
            state = step(state, op, ret).ok().unwrap();
            let answered = at + rng.below(6) as u64;
            free_at[client] = answered + 1;
            events.push(ev(client, op, ret, call, answered));
        }
        events
    }

    #[test]
    fn real_executions_pass_and_their_mutants_fail() {
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        let mut caught = 0;
        let mut mutants = 0;
        for _ in 0..300 {
            let history = linearizable_history(&mut rng, 4, 60);
            check(None, &history).unwrap_or_else(|v| panic!("{v}\n{history:#?}"));
            // Mutant 1: a read sees a value no write produced.
            let reads: Vec<usize> = (0..history.len())
                .filter(|&i| history[i].op == Read)
                .collect();
            if let Some(&i) = reads.get(rng.below(reads.len().max(1))) {
                let mut m = history.clone();
                m[i].ret = Saw(Some(10_000));
                check(None, &m).unwrap_err();
                mutants += 1;
                caught += 1;
            }
            // Mutant 2: an acknowledged delete with nothing concurrent, followed by a read
            // with nothing concurrent that still sees a value.
            let mut m = history.clone();
            let end = m.iter().map(|e| e.answered).max().unwrap_or(0);
            m.push(ev(0, Delete, Done, end + 1, end + 2));
            m.push(ev(1, Read, Saw(Some(1)), end + 3, end + 4));
            check(None, &m).unwrap_err();
            // Mutant 3: a read's answer swapped for another value the key once held; some
            // of these remain linearizable (a concurrent write explains them), most not.
            let values: Vec<Value> = history
                .iter()
                .filter_map(|e| match e.op {
                    Write(v) | Create(v) => Some(v),
                    _ => None,
                })
                .collect();
            for &i in &reads {
                if let (Saw(Some(v)), Some(&other)) = (history[i].ret, values.first()) {
                    if other != v {
                        let mut m = history.clone();
                        m[i].ret = Saw(Some(other));
                        mutants += 1;
                        if check(None, &m).is_err() {
                            caught += 1;
                        }
                    }
                }
            }
        }
        assert!(
            caught * 10 >= mutants * 8,
            "the checker caught only {caught} of {mutants} mutants"
        );
    }

    #[test]
    fn long_histories_with_many_clients_check_quickly() {
        let mut rng = Rng(42);
        let history = linearizable_history(&mut rng, 16, 5_000);
        check(None, &history).unwrap();
    }
}
