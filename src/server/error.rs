//! How the server refuses: one error type carrying a wire error code and plain
//! words, turned into the JSON error body (docs/protocol.md §10) in exactly one
//! place, and the JSON extractor that reports malformed or oversized bodies the
//! same way.

use axum::extract::rejection::JsonRejection;
use axum::extract::FromRequest;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::server::store::StoreError;
use crate::smimp::wire::{ErrorBody, ErrorCode};

/// A refusal or failure, as the client will see it.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

/// Short for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with its code and reason.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "storage failure");
        Self::new(ErrorCode::Internal, "the server could not read or write its storage")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody::new(self.code, self.message);
        let status = StatusCode::from_u16(body.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(body)).into_response()
    }
}

/// A JSON body whose rejections are API errors (malformed JSON, wrong content,
/// oversized), never plain-text responses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than this server accepts"))
            }
            Err(rejection) => Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("the request body is not accepted: {}", rejection.body_text()),
            )),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
