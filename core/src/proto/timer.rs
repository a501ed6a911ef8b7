//! The engine's deadlines: one named [`Timer`] per thing it waits for, in
//! a table whose earliest entry is what [`super::Output::Wait`] reports
//! (as quinn-proto's `TimerTable`). A timeout input that finds nothing due
//! does nothing.

use std::time::Instant;

/// Named deadlines; the earliest one is reported in [`super::Output::Wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The whole negotiation, from connecting to `Online`.
    Negotiation,
    /// Idle time after which we probe the connection.
    KeepAlive,
    /// How long the probe may go unanswered.
    PingAnswer,
    /// How long an ack request (XEP-0198 `<r/>`) may go unanswered.
    AckAnswer,
    /// How long we wait for the server's `</stream:stream>`.
    Close,
}

impl Timer {
    /// Every timer, in the order a timeout input handles them.
    pub const ALL: [Timer; 5] = [
        Timer::Negotiation,
        Timer::KeepAlive,
        Timer::PingAnswer,
        Timer::AckAnswer,
        Timer::Close,
    ];
}

/// When each [`Timer`] fires, if it is set.
#[derive(Debug, Clone, Default)]
pub(super) struct TimerTable {
    at: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer as usize]
    }

    pub fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    pub fn clear(&mut self) {
        self.at = Default::default();
    }

    /// The earliest deadline set.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// Whether `timer` is due at `now`; a due timer is stopped.
    pub fn expire(&mut self, timer: Timer, now: Instant) -> bool {
        match self.at[timer as usize] {
            Some(at) if at <= now => {
                self.stop(timer);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_earliest_deadline_is_next_and_only_due_timers_expire() {
        let now = Instant::now();
        let mut table = TimerTable::default();
        assert_eq!(table.next_deadline(), None);
        table.set(Timer::KeepAlive, now + Duration::from_secs(60));
        table.set(Timer::PingAnswer, now + Duration::from_secs(10));
        assert_eq!(table.next_deadline(), Some(now + Duration::from_secs(10)));
        let later = now + Duration::from_secs(10);
        assert!(!table.expire(Timer::KeepAlive, later));
        assert!(table.expire(Timer::PingAnswer, later));
        assert!(!table.expire(Timer::PingAnswer, later), "stopped once due");
        assert_eq!(table.next_deadline(), Some(now + Duration::from_secs(60)));
        table.clear();
        assert_eq!(table.next_deadline(), None);
    }
}
