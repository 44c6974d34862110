//! A bounded, numbered journal with live subscribers: the storage behind the log
//! buffer and the event stream.
//!
//! Every entry gets the next id (starting at 1). The journal keeps the last
//! `capacity` entries; a subscriber first reads what is kept after a given id, then
//! follows new entries. A subscriber that falls too far behind skips what was
//! dropped and is told how many entries it missed.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::broadcast;

/// A journal of `T` entries.
pub struct Journal<T: Clone> {
    inner: Mutex<Inner<T>>,
    capacity: usize,
}

struct Inner<T> {
    entries: VecDeque<(u64, T)>,
    next_id: u64,
    closed: bool,
    tx: broadcast::Sender<(u64, T)>,
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<T> {
    Entry(u64, T),
    /// This many entries were dropped before the subscriber could read them.
    Missed(u64),
}

impl<T: Clone + Send + 'static> Journal<T> {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, _) = broadcast::channel(capacity.min(4096));
        Journal {
            inner: Mutex::new(Inner {
                entries: VecDeque::new(),
                next_id: 1,
                closed: false,
                tx,
            }),
            capacity,
        }
    }

    /// Appends an entry and returns its id.
    pub fn push(&self, value: T) -> u64 {
        let mut g = self.inner.lock().expect("journal");
        let id = g.next_id;
        g.next_id += 1;
        if g.entries.len() == self.capacity {
            g.entries.pop_front();
        }
        g.entries.push_back((id, value.clone()));
        let _ = g.tx.send((id, value));
        id
    }

    /// Marks the journal finished: followers end after the last entry.
    pub fn close(&self) {
        let mut g = self.inner.lock().expect("journal");
        g.closed = true;
        // Replacing the sender drops the old one, which ends every receiver.
        let (tx, _) = broadcast::channel(1);
        g.tx = tx;
    }

    /// Entries with an id greater than `after`, oldest first.
    pub fn since(&self, after: u64) -> Vec<(u64, T)> {
        let g = self.inner.lock().expect("journal");
        g.entries
            .iter()
            .filter(|(id, _)| *id > after)
            .cloned()
            .collect()
    }

    /// The last `n` entries, oldest first.
    pub fn tail(&self, n: usize) -> Vec<(u64, T)> {
        let g = self.inner.lock().expect("journal");
        let skip = g.entries.len().saturating_sub(n);
        g.entries.iter().skip(skip).cloned().collect()
    }

    /// Id of the newest entry (0 when empty).
    pub fn last_id(&self) -> u64 {
        self.inner.lock().expect("journal").next_id - 1
    }

    /// Kept entries after `after` that match `keep`, then every new entry.
    pub fn subscribe(&self, after: u64) -> Subscription<T> {
        let g = self.inner.lock().expect("journal");
        let backlog: VecDeque<(u64, T)> = g
            .entries
            .iter()
            .filter(|(id, _)| *id > after)
            .cloned()
            .collect();
        let first_kept = g.entries.front().map(|(id, _)| *id).unwrap_or(g.next_id);
        let missed = first_kept.saturating_sub(after + 1);
        Subscription {
            backlog,
            rx: if g.closed {
                None
            } else {
                Some(g.tx.subscribe())
            },
            last: after,
            missed,
        }
    }
}

/// A reader of a [`Journal`].
pub struct Subscription<T> {
    backlog: VecDeque<(u64, T)>,
    rx: Option<broadcast::Receiver<(u64, T)>>,
    last: u64,
    missed: u64,
}

impl<T: Clone> Subscription<T> {
    /// The next item; `None` once the journal is closed and everything was read.
    pub async fn next(&mut self) -> Option<Item<T>> {
        if self.missed > 0 {
            let m = self.missed;
            self.missed = 0;
            return Some(Item::Missed(m));
        }
        if let Some((id, v)) = self.backlog.pop_front() {
            self.last = id;
            return Some(Item::Entry(id, v));
        }
        loop {
            let rx = self.rx.as_mut()?;
            match rx.recv().await {
                Ok((id, v)) if id > self.last => {
                    let gap = id - self.last - 1;
                    self.last = id;
                    if gap > 0 {
                        // Only possible after a lag; report it before the entry.
                        self.backlog.push_back((id, v));
                        return Some(Item::Missed(gap));
                    }
                    return Some(Item::Entry(id, v));
                }
                Ok(_) => continue, // already delivered from the backlog
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => {
                    self.rx = None;
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
