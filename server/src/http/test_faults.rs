//! `/test/faults` (only with the test fault mode): read, queue and clear faults.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use crewsafe_protocol::{TestFault, TestFaultsState};
use serde::Deserialize;

use super::error::ApiError;
use super::{json_response, read_body, AppState};

/// Largest body of a test fault list.
const MAX_FAULTS_BODY: usize = 64 * 1024;

pub(super) async fn get(State(state): State<AppState>) -> Response {
    json_response(&state.faults.state())
}

/// Accepts a JSON list of faults (or a single fault object) and queues them.
pub(super) async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&state, &headers, body, MAX_FAULTS_BODY).await?;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<TestFault>),
        One(TestFault),
    }
    let faults = match serde_json::from_slice::<OneOrMany>(&bytes) {
        Ok(OneOrMany::Many(v)) => v,
        Ok(OneOrMany::One(f)) => vec![f],
        Err(_) => {
            return Err(ApiError::malformed(
                "expected a JSON list of faults, e.g. [{\"fault\":\"status\",\"code\":503}]",
            ))
        }
    };
    for f in &faults {
        if let TestFault::Status { code, .. } = f {
            if !(400..=599).contains(code) {
                return Err(ApiError::malformed("status fault code must be 400 to 599"));
            }
        }
    }
    state.faults.push_all(faults);
    Ok(json_response::<TestFaultsState>(&state.faults.state()))
}

pub(super) async fn delete(State(state): State<AppState>) -> Response {
    state.faults.clear();
    json_response(&state.faults.state())
}
