//! IF-MAP over XMPP as the control node sends it: `<config>` holding `<update>` and
//! `<delete>` blocks of `<node type="..."><name>...</name>...</node>` and
//! `<link><node/><node/><metadata type="..."/></link>`, read into [`ConfigOp`]s in
//! document order. An entry that cannot be read (no type, no name, a link without
//! two nodes) is reported and skipped; the rest of the message still applies.

use super::{props, Link, ObjectKey, ObjectType, Properties, Uuid};
use crate::xmpp::Element;

/// One change to the configuration graph.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigOp {
    /// An object created or changed (its properties replace the old ones).
    UpdateNode {
        /// Which object.
        key: ObjectKey,
        /// Its UUID, when sent.
        uuid: Option<Uuid>,
        /// Its properties.
        props: Properties,
    },
    /// An object deleted (with its links).
    DeleteNode {
        /// Which object.
        key: ObjectKey,
    },
    /// A link created.
    UpdateLink(Link),
    /// A link deleted.
    DeleteLink(Link),
}

/// An entry of a config message that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config entry skipped: {0}")]
pub struct IfmapError(pub String);

/// Longest fully qualified name accepted (the API server's own limit is far lower).
pub const MAX_NAME: usize = 1024;
/// Longest object or link type accepted (the schema's longest is about 60).
pub const MAX_TYPE: usize = 128;

/// Reads a `<config>` element into operations, in order, and the entries skipped.
pub fn decode(config: &Element) -> (Vec<ConfigOp>, Vec<IfmapError>) {
    let mut ops = Vec::new();
    let mut errors = Vec::new();
    for block in &config.children {
        let delete = match block.name.as_str() {
            "update" => false,
            "delete" => true,
            other => {
                errors.push(IfmapError(format!("unknown block <{other}>")));
                continue;
            }
        };
        for entry in &block.children {
            let op = match entry.name.as_str() {
                "node" => node(entry, delete),
                "link" => link(entry).map(|l| {
                    if delete {
                        ConfigOp::DeleteLink(l)
                    } else {
                        ConfigOp::UpdateLink(l)
                    }
                }),
                other => Err(IfmapError(format!("unknown entry <{other}>"))),
            };
            match op {
                Ok(op) => ops.push(op),
                Err(e) => errors.push(e),
            }
        }
    }
    (ops, errors)
}

fn key(node: &Element) -> Result<ObjectKey, IfmapError> {
    let kind = node
        .attr("type")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| IfmapError("node without a type".into()))?;
    if kind.len() > MAX_TYPE {
        return Err(IfmapError(format!("node type longer than {MAX_TYPE} bytes")));
    }
    let name = node
        .child_text("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| IfmapError(format!("{kind} node without a name")))?;
    if name.len() > MAX_NAME {
        return Err(IfmapError(format!("{kind} node name longer than {MAX_NAME} bytes")));
    }
    Ok(ObjectKey::new(ObjectType::parse(kind), name))
}

fn node(node: &Element, delete: bool) -> Result<ConfigOp, IfmapError> {
    let key = key(node)?;
    if delete {
        return Ok(ConfigOp::DeleteNode { key });
    }
    let props = props::read(&key.kind, node);
    Ok(ConfigOp::UpdateNode {
        uuid: uuid(node),
        props,
        key,
    })
}

fn link(link: &Element) -> Result<Link, IfmapError> {
    let mut nodes = link.children_named("node");
    let (Some(left), Some(right)) = (nodes.next(), nodes.next()) else {
        return Err(IfmapError("link without two nodes".into()));
    };
    let metadata = link
        .child("metadata")
        .and_then(|m| m.attr("type"))
        .unwrap_or_default()
        .to_string();
    if metadata.len() > MAX_TYPE {
        return Err(IfmapError(format!("link metadata type longer than {MAX_TYPE} bytes")));
    }
    Ok(Link {
        left: key(left)?,
        right: key(right)?,
        metadata,
    })
}

/// `<id-perms><uuid><uuid-mslong>..</uuid-mslong><uuid-lslong>..</uuid-lslong>`.
fn uuid(node: &Element) -> Option<Uuid> {
    let uuid = node.child("id-perms")?.child("uuid")?;
    let high: u64 = uuid.child_text("uuid-mslong")?.trim().parse().ok()?;
    let low: u64 = uuid.child_text("uuid-lslong")?.trim().parse().ok()?;
    Some(Uuid::from_u64_pair(high, low))
}
