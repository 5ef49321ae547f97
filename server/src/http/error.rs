//! [`ApiError`]: every 4xx/5xx answer, as an [`ErrorBody`] with its status and headers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crewsafe_protocol::{DecodeError, ErrorBody, ErrorCode, PROTOCOL_VERSION};

/// A 4xx/5xx answer with an [`ErrorBody`].
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: ErrorCode,
    pub(super) message: String,
    pub(super) retry_after: Option<u64>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(super) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing or unknown bearer token",
        )
    }

    pub(super) fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::Malformed, message)
    }

    pub(super) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, message)
    }

    pub(super) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; nothing was stored, retry later",
        )
    }

    pub(super) fn decode(e: DecodeError) -> Self {
        match e {
            DecodeError::Malformed(m) => Self::malformed(format!("malformed body: {m}")),
            DecodeError::Version(v) => Self::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {v} is not supported (this server speaks {PROTOCOL_VERSION})"
                ),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Same sanitizing as the protocol crate: category and position, never names or values.
pub(super) fn json_error(e: &serde_json::Error) -> String {
    format!(
        "malformed body: {:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}
