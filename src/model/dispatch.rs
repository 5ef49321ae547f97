//! What dispatch answered to an SOS, as the phone holds it.

use std::time::SystemTime;

use crewsafe_protocol as proto;

use super::DispatchStatus;

/// The national dispatch's latest answer to an SOS: who acknowledged it and when, and the
/// dispatcher's message to the crew. Times are the server's clock. The library keeps it up to
/// date by itself while the SOS is open and the host says the network is up.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DispatchAnswer {
    /// How far dispatch has got.
    pub status: DispatchStatus,
    /// When the status or the message last changed.
    pub updated_at: SystemTime,
    /// When a dispatcher acknowledged the alarm.
    pub acknowledged_at: Option<SystemTime>,
    /// Which dispatcher acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When dispatch resolved it.
    pub resolved_at: Option<SystemTime>,
    /// The dispatcher's latest message to the crew ("crew 7 on the way, 6 min").
    pub message: Option<String>,
}

impl From<proto::SosStatus> for DispatchAnswer {
    fn from(s: proto::SosStatus) -> Self {
        DispatchAnswer {
            status: s.status.into(),
            updated_at: s.updated_at.into(),
            acknowledged_at: s.acknowledged_at.map(Into::into),
            acknowledged_by: s.acknowledged_by,
            resolved_at: s.resolved_at.map(Into::into),
            message: s.message,
        }
    }
}
