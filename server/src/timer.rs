//! The alarm timer: a task of the server runtime that raises missed check-ins at their due
//! time and escalates unacknowledged alarms (see `storage/check_ins.rs` and
//! `storage/escalation.rs`), and prunes the alarm event log once an hour.
//!
//! It keeps no state of its own: each round reads what is due from the database, so due
//! check-ins survive a restart (a check-in that fell due while the server was down is raised
//! in the first round). Between rounds it sleeps until the next due time, or until storage
//! says a check-in or an alarm arrived (on PostgreSQL: at any instance), or the server stops.
//! On PostgreSQL every instance runs it; storage makes each round safe against the others.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::storage::{now, Storage};

/// How often the event log is pruned (and the longest sleep).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Pause after a database error before the next round.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Runs until `closing` turns true.
pub(crate) async fn run(storage: Arc<Storage>, mut closing: watch::Receiver<bool>) {
    let mut next_prune = tokio::time::Instant::now();
    loop {
        let now = now();
        let prune = tokio::time::Instant::now() >= next_prune;
        let round = async {
            if prune {
                let pruned = storage.prune_events(now).await?;
                if pruned > 0 {
                    log::info!("pruned {pruned} alarm events");
                }
            }
            storage.run_due(now).await
        }
        .await;
        let sleep = match round {
            Ok(next) => {
                if prune {
                    next_prune = tokio::time::Instant::now() + PRUNE_EVERY;
                }
                let until_prune = next_prune.saturating_duration_since(tokio::time::Instant::now());
                next.map_or(until_prune, |t| {
                    (t - chrono::Utc::now())
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                        .min(until_prune)
                })
            }
            Err(e) => {
                log::error!("alarm timer: database error: {e}");
                RETRY_AFTER_ERROR
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = storage.timer_wake().notified() => {}
            _ = closing.wait_for(|c| *c) => return,
        }
    }
}
