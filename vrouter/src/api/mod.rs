//! The local API as the daemon serves it: the types of the `vrouter-api` crate
//! (re-exported here), flow filter matching, and the server.

mod server;

pub use crate::flows::flow_matches;
pub use server::{serve, ApiListener, ServerLimits};
pub use vrouter_api::*;
