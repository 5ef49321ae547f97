//! The storage contract suite (`contract/mod.rs`) on SQLite, the embedded default.

mod common;
mod contract;

use common::alarms::Backend;

contract::suite!(Backend::Sqlite);
