//! Errors of the API: a stable code and a message for people.

use serde::{Deserialize, Serialize};

/// What kind of failure an answer reports. The snake_case spelling is part of the API
/// and does not change; new codes may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request line is not a well-formed request (JSON, fields, size, UTF-8).
    BadRequest,
    /// A value in the request is not acceptable (name, address, label, prefix...).
    InvalidArgument,
    /// The named interface, route or VRF does not exist.
    NotFound,
    /// The interface, route or address exists already.
    AlreadyExists,
    /// The object is still in use (an interface that routes point to).
    InUse,
    /// A table is full (interfaces, routes).
    ResourceExhausted,
    /// The change could not be recorded in the state directory; nothing was applied.
    StateDirectory,
    /// The data plane could not attach or detach the port; nothing was applied.
    Datapath,
    /// The caller may not use the API (peer credentials).
    PermissionDenied,
    /// The vrouter is too busy to take the request now (connections, queued changes);
    /// retry later.
    Busy,
    /// The vrouter is shutting down.
    Unavailable,
    /// A bug: the vrouter could not answer.
    Internal,
}

impl ErrorCode {
    /// The stable spelling (as on the wire).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::InUse => "in_use",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::StateDirectory => "state_directory",
            ErrorCode::Datapath => "datapath",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Busy => "busy",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} [{code}]")]
pub struct ApiError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl ApiError {
    /// An error of `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The answer line's JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.message, "code": self.code })
    }
}

impl From<&control_client::ModelError> for ErrorCode {
    fn from(e: &control_client::ModelError) -> Self {
        use control_client::ModelError as M;
        match e {
            M::DuplicateInterface(_) | M::DuplicateRoute { .. } | M::AddressInUse { .. } => ErrorCode::AlreadyExists,
            M::UnknownInterface(_)
            | M::UnknownVrf(_)
            | M::UnknownRoute { .. }
            | M::UnknownService(_)
            | M::UnknownFloatingIp(_)
            | M::UnknownPolicy(_)
            | M::UnknownServiceChain(_)
            | M::UnknownIngress(_) => ErrorCode::NotFound,
            M::TooManyInterfaces(_) | M::TooManyVrfs(_) => ErrorCode::ResourceExhausted,
            M::InterfaceInUse { .. } | M::ParentInUse { .. } | M::HostInterface(_) => ErrorCode::InUse,
            M::InvalidInterfaceName(_)
            | M::InvalidVrfName(_)
            | M::InvalidMac(_)
            | M::InvalidPodAddress(_)
            | M::InvalidAllowedPairs(_)
            | M::InvalidMtu(..)
            | M::GatewayIsOwnAddress(_)
            | M::IdentityUnavailable { .. }
            | M::InterfaceInOtherVrf { .. }
            | M::InvalidTarget(_)
            | M::InvalidVni { .. }
            | M::InvalidVlan(_)
            | M::InvalidService(_)
            | M::InvalidFloatingIp(_)
            | M::InvalidPolicy(_)
            | M::InvalidServiceChain(_)
            | M::InvalidIngress(_) => ErrorCode::InvalidArgument,
        }
    }
}

impl From<control_client::ModelError> for ApiError {
    fn from(e: control_client::ModelError) -> Self {
        Self::new(ErrorCode::from(&e), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_on_the_wire() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::InUse,
            ErrorCode::ResourceExhausted,
            ErrorCode::StateDirectory,
            ErrorCode::Datapath,
            ErrorCode::PermissionDenied,
            ErrorCode::Busy,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), code);
        }
    }
}
