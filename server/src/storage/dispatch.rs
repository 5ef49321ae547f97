//! Dispatch state of alarms, the part both backends share: finding an alarm by id, and the
//! dispatcher moves `delivered` → `acknowledged` → `resolved`, which never go backwards, each
//! with an optional message for the crew. Repeating a move changes nothing, except that a new
//! message replaces the old one. Every change is logged as an alarm event in its transaction
//! (`sqlite/dispatch.rs`, `postgres/dispatch.rs`).

use crewsafe_protocol::DispatchStatus;

/// Outcome of looking an alarm up by id alone.
#[derive(Debug)]
pub(crate) enum Lookup<T> {
    /// Exactly one match.
    Found(T),
    /// No alarm with this id (for this device, if one was named).
    NotFound,
    /// Several devices sent an alarm with this id; name the device.
    Ambiguous,
}

impl<T> Lookup<T> {
    /// The lookup of at most two matches.
    pub(crate) fn of(found: Vec<T>) -> Self {
        let mut found = found.into_iter();
        match (found.next(), found.next()) {
            (None, _) => Lookup::NotFound,
            (Some(one), None) => Lookup::Found(one),
            (Some(_), Some(_)) => Lookup::Ambiguous,
        }
    }
}

/// A dispatcher's move of an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Advance {
    /// delivered → acknowledged.
    Acknowledge,
    /// delivered/acknowledged → resolved.
    Resolve,
}

/// A dispatcher's move: which, by whom, with what message for the crew.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    pub(crate) action: Advance,
    pub(crate) dispatcher: String,
    pub(crate) message: Option<String>,
}

/// What a move does to an alarm in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// delivered → acknowledged (with the move's message, if any).
    Acknowledge,
    /// → resolved (with the move's message, if any); acknowledged too if it was not.
    Resolve,
    /// Only the message changes.
    Message,
    /// Nothing changes.
    Nothing,
}

impl Move {
    /// What this move does to an alarm with `status` and the stored `message`.
    pub(crate) fn change(&self, status: DispatchStatus, message: Option<&str>) -> Change {
        let new_message = self.message.as_deref().is_some_and(|m| message != Some(m));
        match (self.action, status) {
            (Advance::Acknowledge, DispatchStatus::Delivered) => Change::Acknowledge,
            (Advance::Resolve, DispatchStatus::Delivered | DispatchStatus::Acknowledged) => {
                Change::Resolve
            }
            // Acknowledging a resolved alarm changes nothing; repeating a move may only bring
            // a new message.
            (Advance::Acknowledge, DispatchStatus::Resolved) => Change::Nothing,
            _ if new_message => Change::Message,
            _ => Change::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_never_go_back_and_a_repeat_only_brings_a_new_message() {
        let mv = |action, message: Option<&str>| Move {
            action,
            dispatcher: "desk".into(),
            message: message.map(str::to_string),
        };
        use DispatchStatus::*;
        let ack = mv(Advance::Acknowledge, Some("on our way"));
        assert_eq!(ack.change(Delivered, None), Change::Acknowledge);
        assert_eq!(
            ack.change(Acknowledged, Some("on our way")),
            Change::Nothing
        );
        assert_eq!(ack.change(Acknowledged, Some("wait")), Change::Message);
        assert_eq!(ack.change(Resolved, None), Change::Nothing);
        let resolve = mv(Advance::Resolve, None);
        assert_eq!(resolve.change(Delivered, None), Change::Resolve);
        assert_eq!(resolve.change(Acknowledged, None), Change::Resolve);
        assert_eq!(resolve.change(Resolved, Some("x")), Change::Nothing);
        assert_eq!(
            mv(Advance::Resolve, Some("y")).change(Resolved, Some("x")),
            Change::Message
        );
        assert!(matches!(Lookup::of(vec![1, 2]), Lookup::Ambiguous));
        assert!(matches!(Lookup::<i32>::of(vec![]), Lookup::NotFound));
    }
}
