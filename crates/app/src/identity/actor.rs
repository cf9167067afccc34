//! Who performs a change, as the audit log records it.

use std::net::IpAddr;

use berth_meta::AuditEntry;

/// The account (or anonymous caller) behind a change, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// A login name, a robot's full name, or `anonymous`.
    pub name: String,
    /// The client's address, when known.
    pub client: Option<IpAddr>,
}

impl Actor {
    /// An actor named `name` calling from `client`.
    pub fn new(name: impl Into<String>, client: Option<IpAddr>) -> Self {
        Actor {
            name: name.into(),
            client,
        }
    }

    /// The audit entry of a successful `operation` on `resource`.
    pub fn audit(
        &self,
        operation: &str,
        resource_type: &str,
        resource: &str,
        project_id: Option<i64>,
        now: i64,
    ) -> AuditEntry {
        AuditEntry {
            project_id,
            username: self.name.clone(),
            operation: operation.to_owned(),
            resource_type: resource_type.to_owned(),
            resource: resource.to_owned(),
            success: true,
            client_ip: self.client.map(|c| c.to_string()).unwrap_or_default(),
            op_time: now,
        }
    }
}
