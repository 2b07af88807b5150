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
    queue: Mutex<Queue>,
    arrived: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    orders: VecDeque<Order>,
    /// The session stopped reading (its [`Mailbox`] is gone): an order posted now is
    /// dropped at once, so its asker hears that the session ended.
    closed: bool,
}

/// The registry's end: where orders are put.
#[derive(Debug, Clone)]
pub(crate) struct Post(Arc<Slot>);

impl Post {
    /// Puts `order` in the mailbox; `false` when the session reads no more orders (the
    /// order is dropped, which tells its asker the session ended).
    pub fn send(&self, order: Order) -> bool {
        let mut queue = lock(&self.0.queue);
        if queue.closed {
            // Not dropped under the queue's lock.
            drop(queue);
            drop(order);
            return false;
        }
        queue.orders.push_back(order);
        drop(queue);
        self.0.arrived.notify_one();
        true
    }
}

/// Where a live session's orders arrive: kept apart from its [`crate::Enrolment`] so that
/// one task can wait on it while the enrolment is used elsewhere. When it goes (the
/// session stopped reading orders), the orders still in it are dropped and so are any
/// posted later, even while a timer still holds a [`Post`]: their askers hear at once that
/// the session ended, rather than waiting on a mailbox nobody reads.
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
            if let Some(order) = lock(&self.0.queue).orders.pop_front() {
                return order;
            }
            // A post between the look and the wait leaves a permit: nothing is missed.
            self.0.arrived.notified().await;
        }
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let left = {
            let mut queue = lock(&self.0.queue);
            queue.closed = true;
            std::mem::take(&mut queue.orders)
        };
        // Their askers hear that the session ended; not under the queue's lock.
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Request;
    use tokio::sync::oneshot;
    use wstap_trace::Decider;

    fn asked() -> (Order, oneshot::Receiver<Result<(), wstap_relay::Refused>>) {
        let (reply, answer) = oneshot::channel();
        (
            Order::new(Request::Reconsider, Decider::Api, Some(reply)),
            answer,
        )
    }

    #[tokio::test]
    async fn orders_come_in_order_and_a_closed_mailbox_refuses_and_answers_them() {
        let (post, mut mailbox) = Mailbox::new();
        let (first, _) = asked();
        let (second, mut unread) = asked();
        assert!(post.send(first));
        assert!(post.send(second));
        let _ = mailbox.next().await;
        drop(mailbox);
        assert!(unread.try_recv().is_err(), "an unread order is dropped");
        let (late, mut refused) = asked();
        assert!(!post.send(late), "a post to a session that reads no more");
        assert!(matches!(
            refused.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}
