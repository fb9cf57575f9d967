//! A plugin's concurrency slots, shared fairly between the pods its calls are
//! about: no pod holds more than half of them (calls about no pod may hold
//! all), and a freed slot goes to the waiting pod that holds fewest (the
//! oldest waiter among equals). So a pod whose probes hang delays another
//! pod's by at most one call, never for ever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Who a call is for: a pod's UID, or `None` for calls about no pod.
pub(crate) type SlotKey = Option<String>;

#[derive(Debug)]
struct Waiter {
    key: SlotKey,
    seq: u64,
    wake: oneshot::Sender<()>,
}

#[derive(Debug)]
struct State {
    free: usize,
    per_key: usize,
    held: HashMap<SlotKey, usize>,
    waiting: Vec<Waiter>,
    next_seq: u64,
}

impl State {
    fn held(&self, key: &SlotKey) -> usize {
        self.held.get(key).copied().unwrap_or(0)
    }

    /// Calls about no pod (admission, settings) share no pod's fairness.
    fn may_take(&self, key: &SlotKey) -> bool {
        key.is_none() || self.held(key) < self.per_key
    }

    fn take(&mut self, key: &SlotKey) {
        self.free -= 1;
        *self.held.entry(key.clone()).or_default() += 1;
    }

    fn give_back(&mut self, key: &SlotKey) {
        if let Some(held) = self.held.get_mut(key) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(key);
            }
        }
        self.free += 1;
    }

    /// Gives free slots to waiters: fewest held first, then oldest.
    fn hand_on(&mut self) {
        self.waiting.retain(|w| !w.wake.is_closed());
        while self.free > 0 {
            let Some(next) = self
                .waiting
                .iter()
                .enumerate()
                .filter(|(_, w)| self.may_take(&w.key))
                .min_by_key(|(_, w)| (self.held(&w.key), w.seq))
                .map(|(i, _)| i)
            else {
                return;
            };
            let waiter = self.waiting.swap_remove(next);
            self.take(&waiter.key);
            if waiter.wake.send(()).is_err() {
                self.give_back(&waiter.key);
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct FairSlots {
    capacity: usize,
    state: Arc<Mutex<State>>,
}

/// A slot, given back (and on to a waiter) when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    key: SlotKey,
    state: Arc<Mutex<State>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.give_back(&self.key);
        state.hand_on();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FairSlots {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            state: Arc::new(Mutex::new(State {
                free: capacity,
                per_key: capacity.div_ceil(2),
                held: HashMap::new(),
                waiting: Vec::new(),
                next_seq: 0,
            })),
        }
    }

    /// How many slots are held now.
    pub fn busy(&self) -> usize {
        self.capacity - lock(&self.state).free
    }

    /// Waits for a slot for `key`. Cancel-safe: a wait dropped in the queue
    /// leaves it, and one dropped just after being handed a slot gives it on.
    pub async fn acquire(&self, key: SlotKey) -> Slot {
        let (seq, woken) = {
            let mut state = lock(&self.state);
            let (wake, woken) = oneshot::channel();
            let seq = state.next_seq;
            state.next_seq += 1;
            state.waiting.push(Waiter {
                key: key.clone(),
                seq,
                wake,
            });
            state.hand_on();
            (seq, woken)
        };
        let mut wait = Wait {
            woken,
            seq,
            key: Some(key),
            state: self.state.clone(),
        };
        // The sender sits in the state, which this wait keeps alive: it is
        // dropped unsent only once this receiver is gone.
        let _ = (&mut wait.woken).await;
        Slot {
            key: wait.key.take().flatten(),
            state: self.state.clone(),
        }
    }
}

/// A wait in the queue; `key` is taken once it was handed its slot.
struct Wait {
    woken: oneshot::Receiver<()>,
    seq: u64,
    key: Option<SlotKey>,
    state: Arc<Mutex<State>>,
}

impl Drop for Wait {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        if self.woken.try_recv().is_ok() {
            // Handed a slot, but gone: give it on.
            drop(Slot {
                key,
                state: self.state.clone(),
            });
        } else {
            lock(&self.state).waiting.retain(|w| w.seq != self.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pod(uid: &str) -> SlotKey {
        Some(uid.to_owned())
    }

    async fn within<T>(f: impl Future<Output = T>) -> Option<T> {
        tokio::time::timeout(Duration::from_millis(50), f)
            .await
            .ok()
    }

    fn queue(slots: &Arc<FairSlots>, uid: &str) -> tokio::task::JoinHandle<Slot> {
        let (slots, key) = (slots.clone(), pod(uid));
        tokio::spawn(async move { slots.acquire(key).await })
    }

    #[tokio::test(start_paused = true)]
    async fn no_pod_holds_more_than_half_and_the_pod_holding_fewest_comes_first() {
        let slots = Arc::new(FairSlots::new(4));
        let a1 = slots.acquire(pod("a")).await;
        let c1 = slots.acquire(pod("c")).await;
        let _c2 = slots.acquire(pod("c")).await;
        // A third for `c` waits although one is free; `d` gets it at once.
        assert!(within(slots.acquire(pod("c"))).await.is_none());
        let d1 = within(slots.acquire(pod("d")))
            .await
            .expect("d is not held up");
        assert_eq!(slots.busy(), 4);

        // `a` (holding one) queues before `b` (holding none): `b` comes first.
        let queued_a = queue(&slots, "a");
        tokio::task::yield_now().await;
        let queued_b = queue(&slots, "b");
        tokio::task::yield_now().await;
        drop(d1);
        let b1 = within(queued_b).await.expect("b first").expect("task");
        assert_eq!(b1.key, pod("b"));
        assert!(!queued_a.is_finished());
        drop(c1);
        let a2 = within(queued_a).await.expect("then a").expect("task");
        assert_eq!(a2.key, pod("a"));
        drop(a1);
        assert_eq!(slots.busy(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_given_up_loses_no_slot() {
        let slots = FairSlots::new(1);
        let held = slots.acquire(pod("a")).await;
        assert!(within(slots.acquire(pod("b"))).await.is_none());
        assert!(
            lock(&slots.state).waiting.is_empty(),
            "the given-up wait left"
        );
        drop(held);
        assert_eq!(slots.busy(), 0);
        let _again = within(slots.acquire(pod("b"))).await.expect("free again");
        assert_eq!(slots.busy(), 1);
    }
}
