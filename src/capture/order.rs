//! Frames of several interfaces handed out in capture-time order.
//!
//! Each reader delivers its interface's frames in order, but in blocks (a TPACKET_V3 block is
//! retired up to 100 ms late), so frames of two interfaces arrive interleaved out of time
//! order: a ping's reply on eth0 before its request on the pod's lxc. This is a k-way merge of
//! the per-interface queues: the oldest head is safe to hand out once every live interface has
//! a frame waiting (none can still deliver an older one), or once it has waited `HOLD`, which
//! bounds the latency an idle interface adds. Under pressure (half the queue bound waiting)
//! frames go out at once rather than be dropped.

use super::Frame;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a frame waits for older ones from other interfaces: one block timeout (100 ms)
/// and the reader's poll (100 ms), with room to spare.
pub const HOLD: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct Order {
    /// Per handle: frames in arrival order, with when they arrived.
    queues: Vec<VecDeque<(Instant, Frame)>>,
    waiting: usize,
}

impl Order {
    pub fn push(&mut self, f: Frame, now: Instant) {
        if self.queues.len() <= f.handle {
            self.queues.resize_with(f.handle + 1, VecDeque::new);
        }
        self.queues[f.handle].push_back((now, f));
        self.waiting += 1;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.waiting
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// The handle whose head frame is the oldest.
    fn oldest(&self) -> Option<usize> {
        (0..self.queues.len())
            .filter_map(|h| self.queues[h].front().map(|(_, f)| (f.ts, h)))
            .min()
            .map(|(_, h)| h)
    }

    /// The next frame in time order, if it may go now. `live(h)` for each of the session's
    /// `handles`: handle h can still deliver. `pressure`: this many waiting frames release
    /// the oldest at once. (A predicate, not a list: this runs once per frame.)
    pub fn pop(
        &mut self,
        now: Instant,
        handles: usize,
        live: impl Fn(usize) -> bool,
        pressure: usize,
    ) -> Option<Frame> {
        let h = self.oldest()?;
        let arrived = self.queues[h].front()?.0;
        let others_have_frames = (0..handles)
            .filter(|&i| i != h && live(i))
            .all(|i| self.queues.get(i).is_some_and(|q| !q.is_empty()));
        let go = others_have_frames
            || now.saturating_duration_since(arrived) >= HOLD
            || self.waiting >= pressure.max(1);
        if !go {
            return None;
        }
        self.waiting -= 1;
        self.queues[h].pop_front().map(|(_, f)| f)
    }

    /// How long until the oldest frame may go by waiting alone.
    pub fn next_release(&self, now: Instant) -> Option<Duration> {
        let h = self.oldest()?;
        let arrived = self.queues[h].front()?.0;
        Some(HOLD.saturating_sub(now.saturating_duration_since(arrived)))
    }

    /// Everything still waiting, in time order (the capture is ending).
    pub fn drain(&mut self) -> Vec<Frame> {
        let mut out = Vec::with_capacity(self.waiting);
        while let Some(h) = self.oldest() {
            if let Some((_, f)) = self.queues[h].pop_front() {
                out.push(f);
            }
        }
        self.waiting = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::analyze::Ts;

    fn frame(handle: usize, ms: u32) -> Frame {
        Frame {
            handle,
            ts: Ts {
                sec: 100,
                nsec: ms * 1_000_000,
            },
            len: 0,
            data: vec![],
        }
    }

    fn ms(f: &Frame) -> u32 {
        f.ts.nsec / 1_000_000
    }

    #[test]
    fn two_interfaces_are_merged_by_capture_time() {
        let t0 = Instant::now();
        let mut o = Order::default();
        // eth0's block arrives first, with a reply newer than lxc's request.
        for m in [12, 13] {
            o.push(frame(0, m), t0);
        }
        for m in [10, 14] {
            o.push(frame(1, m), t0);
        }
        let live = |_: usize| true;
        let got: Vec<u32> = std::iter::from_fn(|| o.pop(t0, 2, live, 1000))
            .map(|f| ms(&f))
            .collect();
        // 14 stays: eth0 has nothing waiting and could still deliver something older.
        assert_eq!(got, [10, 12, 13]);
        assert_eq!(o.len(), 1);
        assert_eq!(o.next_release(t0), Some(HOLD));
        assert_eq!(o.pop(t0 + HOLD, 2, live, 1000).map(|f| ms(&f)), Some(14));
        assert!(o.is_empty());
    }

    #[test]
    fn an_interface_that_ended_holds_nothing_back() {
        let t0 = Instant::now();
        let mut o = Order::default();
        o.push(frame(1, 5), t0);
        assert_eq!(o.pop(t0, 2, |_| true, 1000).map(|f| ms(&f)), None);
        assert_eq!(o.pop(t0, 2, |h| h == 1, 1000).map(|f| ms(&f)), Some(5));
    }

    #[test]
    fn pressure_releases_before_the_hold_and_drain_keeps_order() {
        let t0 = Instant::now();
        let mut o = Order::default();
        for m in [3, 1, 2] {
            o.push(frame(m as usize, m), t0);
        }
        assert_eq!(o.pop(t0, 4, |_| true, 3).map(|f| ms(&f)), Some(1));
        assert_eq!(o.pop(t0, 4, |_| true, 3).map(|f| ms(&f)), None);
        let rest: Vec<u32> = o.drain().iter().map(ms).collect();
        assert_eq!(rest, [2, 3]);
        assert!(o.is_empty());
    }
}
