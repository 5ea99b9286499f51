//! Workspace roles and what each may do.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A member's role in one workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Settings, members, API keys, and everything a marketer does.
    Admin,
    /// Builds and launches campaigns and Canvases.
    Marketer,
    /// Reads everything, changes nothing.
    Viewer,
}

/// A kind of action, checked against the caller's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// See the workspace and its objects.
    Read,
    /// Create, edit and launch campaigns, Canvases, segments, templates.
    Build,
    /// Workspace settings, members, API keys.
    Administer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Marketer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Marketer => "marketer",
            Role::Viewer => "viewer",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Marketer => "Marketer",
            Role::Viewer => "Viewer",
        }
    }

    pub fn parse(text: &str) -> Result<Role, DomainError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "marketer" => Ok(Role::Marketer),
            "viewer" => Ok(Role::Viewer),
            _ => Err(DomainError::invalid(
                "role",
                "must be admin, marketer or viewer",
            )),
        }
    }

    pub fn allows(self, capability: Capability) -> bool {
        match capability {
            Capability::Read => true,
            Capability::Build => matches!(self, Role::Admin | Role::Marketer),
            Capability::Administer => self == Role::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_administer_and_viewers_only_read() {
        assert!(Role::Admin.allows(Capability::Administer));
        assert!(!Role::Marketer.allows(Capability::Administer));
        assert!(Role::Marketer.allows(Capability::Build));
        assert!(!Role::Viewer.allows(Capability::Build));
        assert!(Role::Viewer.allows(Capability::Read));
    }

    #[test]
    fn roles_parse_from_their_names_and_reject_others() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
        assert_eq!(Role::parse(" Admin ").unwrap(), Role::Admin);
        assert_eq!(Role::parse("owner").unwrap_err().field(), Some("role"));
    }
}
