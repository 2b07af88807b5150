//! A live session's mailbox: orders in, in the order sent; the session takes the next.
//! Every WebSocket session has one, so an empty mailbox is small: a lock, an empty queue
//! and a `Notify` (a channel would allocate a block of slots up front).

use crate::lock;
use crate::session::Order;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Slot {
    orders: Mutex<VecDeque<Order>>,
    arrived: Notify,
}

/// The registry's end: where orders are put.
#[derive(Debug, Clone)]
pub(crate) struct Post(Arc<Slot>);

impl Post {
    pub fn send(&self, order: Order) {
        lock(&self.0.orders).push_back(order);
        self.0.arrived.notify_one();
    }
}

/// Where a live session's orders arrive: kept apart from its [`crate::Enrolment`] so that
/// one task can wait on it while the enrolment is used elsewhere. Orders still in it when
/// the session's registry entry goes are dropped, and their askers hear that it ended.
#[derive(Debug)]
pub struct Mailbox(Arc<Slot>);

impl Mailbox {
    /// A mailbox, and where to post to it.
    pub(crate) fn new() -> (Post, Mailbox) {
        let slot = Arc::new(Slot::default());
        (Post(slot.clone()), Mailbox(slot))
    }

    /// The next order (waits while there is none).
    pub async fn next(&mut self) -> Order {
        loop {
            if let Some(order) = lock(&self.0.orders).pop_front() {
                return order;
            }
            // A post between the look and the wait leaves a permit: nothing is missed.
            self.0.arrived.notified().await;
        }
    }
}
