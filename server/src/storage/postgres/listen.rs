//! The notification listener of a running instance: one dedicated PostgreSQL connection that
//! `LISTEN`s on [`CHANNEL`] and feeds the hub, so that status watches and event streams on
//! this instance hear of alarm changes committed by any instance (see `mod.rs`).
//!
//! A notification `e <event id> <device id>` becomes one hub event; `t` wakes the timer (a
//! check-in or an alarm arrived somewhere, so the next deadline may have moved). Events reach
//! the hub in commit order, and each at most once: the listener remembers the newest event id
//! it published. When the connection is lost it reconnects (every second until it succeeds),
//! `LISTEN`s again, then publishes every event of the log after that id, and wakes the timer:
//! a change committed while it was away is late, never lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio_postgres::{AsyncMessage, NoTls, Notification};

use super::events::{EVENTS_AFTER, HIGH_WATER};
use super::CHANNEL;
use crate::error::Result;
use crate::hub::{AlarmEvent, Hub};

/// Pause between two reconnection attempts.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Starts listening and returns once `LISTEN` is in effect: every change committed from then
/// on reaches `hub`. The listener runs on the current runtime until it shuts down.
pub(crate) async fn start(url: &str, hub: Hub, timer_wake: Arc<Notify>) -> Result<()> {
    let config = super::config(url)?;
    let session = Session::open(&config).await?;
    let last_seen = session
        .client
        .query_one(HIGH_WATER, &[])
        .await?
        .try_get(0)?;
    let mut listener = Listener {
        config,
        hub,
        timer_wake,
        last_seen,
    };
    tokio::spawn(async move { listener.run(session).await });
    Ok(())
}

/// One connection with `LISTEN` in effect, and the notifications it receives.
struct Session {
    client: tokio_postgres::Client,
    notes: mpsc::UnboundedReceiver<Notification>,
}

impl Session {
    async fn open(config: &tokio_postgres::Config) -> Result<Session> {
        let (client, mut connection) = config.connect(NoTls).await?;
        let (tx, notes) = mpsc::unbounded_channel();
        // Drives the connection; ends (dropping `tx`) when it is lost.
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if tx.send(n).is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        log::warn!("PostgreSQL notification connection: {e}");
                        return;
                    }
                    None => return,
                }
            }
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        Ok(Session { client, notes })
    }

    /// The events of the log after `after`, oldest first.
    async fn missed(&self, after: i64) -> Result<Vec<AlarmEvent>> {
        self.client
            .query(EVENTS_AFTER, &[&after])
            .await?
            .iter()
            .map(|r| {
                Ok(AlarmEvent {
                    event_id: r.try_get(0)?,
                    device_id: r.try_get(1)?,
                })
            })
            .collect()
    }
}

struct Listener {
    config: tokio_postgres::Config,
    hub: Hub,
    timer_wake: Arc<Notify>,
    /// The newest event id published to the hub.
    last_seen: i64,
}

impl Listener {
    async fn run(&mut self, first: Session) {
        let mut session = first;
        loop {
            while let Some(n) = session.notes.recv().await {
                self.handle(n.payload());
            }
            log::warn!("lost the PostgreSQL notification connection; reconnecting");
            session = self.reconnect().await;
        }
    }

    /// A new session, after which every event missed meanwhile has been published.
    async fn reconnect(&mut self) -> Session {
        loop {
            tokio::time::sleep(RECONNECT_AFTER).await;
            let session = match Session::open(&self.config).await {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("PostgreSQL notification connection: {e}");
                    continue;
                }
            };
            match session.missed(self.last_seen).await {
                Ok(missed) => {
                    for e in missed {
                        self.publish(e);
                    }
                    self.timer_wake.notify_one();
                    log::info!("PostgreSQL notification connection restored");
                    return session;
                }
                Err(e) => log::warn!("PostgreSQL notification catch-up: {e}"),
            }
        }
    }

    fn handle(&mut self, payload: &str) {
        let mut parts = payload.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("t"), None, None) => self.timer_wake.notify_one(),
            (Some("e"), Some(id), Some(device_id)) => match id.parse() {
                Ok(event_id) => self.publish(AlarmEvent {
                    event_id,
                    device_id: device_id.to_string(),
                }),
                Err(_) => log::warn!("unreadable alarm notification"),
            },
            _ => log::warn!("unreadable alarm notification"),
        }
    }

    fn publish(&mut self, event: AlarmEvent) {
        if event.event_id > self.last_seen {
            self.last_seen = event.event_id;
            self.hub.publish([event]);
        }
    }
}
