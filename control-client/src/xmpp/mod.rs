//! The XMPP protocol between the vrouter and Tungsten Fabric / OpenSDN control nodes,
//! without I/O: [`Framer`] cuts the byte stream into stanzas (bounded), [`Element`]
//! parses one with quick-xml, [`Incoming`] reads what the control node sends (route
//! updates and retracts, end-of-RIB, config), the functions of [`messages`] write what
//! the agent writes, and [`Session`] is one channel's state machine (stream open,
//! keepalive, hold timer) fed bytes and time; [`routes::changes`] turns a route
//! message into the route changes it asks of the forwarding state. The channels that run sessions over
//! TCP live with the control task.

pub mod agent;
mod element;
mod framer;
pub mod messages;
pub mod reflector;
pub mod routes;
mod session;

pub use element::{Element, ParseError, MAX_DEPTH};
pub use framer::{Frame, FrameError, Framer};
pub use messages::{DecodeError, Family, Incoming, RouteItem, RouteNextHop, RouteUpdate};
pub use session::{reconnect_delay, CloseReason, Event, Session, SessionConfig, State};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors_tests;
