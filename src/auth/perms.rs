//! Roles and permissions in the spirit of Flask-AppBuilder: a role is a set of permissions
//! `can_<action>` on a resource — a table of the tenant schema (or `*` for every table) or an
//! area (`members`, `settings`, `audit`, `usage`, `api_keys`).

use std::collections::BTreeSet;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
    Write,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Write => "write",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    Members,
    Settings,
    Audit,
    Usage,
    ApiKeys,
    /// The tenant's subscription and invoices: owners, and roles with `can_manage:billing`.
    Billing,
}

impl Area {
    pub const ALL: [Area; 6] = [Area::Members, Area::Settings, Area::Audit, Area::Usage, Area::ApiKeys, Area::Billing];

    pub fn as_str(self) -> &'static str {
        match self {
            Area::Members => "members",
            Area::Settings => "settings",
            Area::Audit => "audit",
            Area::Usage => "usage",
            Area::ApiKeys => "api_keys",
            Area::Billing => "billing",
        }
    }
}

/// What a request needs, as a resource string: a table name or an area name.
#[derive(Clone, Copy, Debug)]
pub enum Resource<'a> {
    Table(&'a str),
    Area(Area),
}

pub const BUILTIN_ROLES: [&str; 4] = ["owner", "admin", "member", "viewer"];

/// A role's permissions, normalised to `action:resource` strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PermSet {
    all: bool,
    perms: BTreeSet<String>,
    /// When set (API keys limited to some tables), table permissions apply to these only.
    only_tables: Option<BTreeSet<String>>,
}

impl PermSet {
    pub fn everything() -> PermSet {
        PermSet { all: true, ..Default::default() }
    }

    pub fn from_strings(perms: &[String]) -> Result<PermSet> {
        let mut set = PermSet::default();
        for p in perms {
            set.perms.insert(parse_permission(p)?);
        }
        Ok(set)
    }

    fn with(mut self, perms: &[&str]) -> PermSet {
        self.perms.extend(perms.iter().map(|p| p.to_string()));
        self
    }

    pub fn restrict_tables(mut self, tables: Option<&[String]>) -> PermSet {
        self.only_tables = tables.map(|t| t.iter().cloned().collect());
        self
    }

    pub fn allows(&self, action: Action, resource: Resource<'_>) -> bool {
        if let (Resource::Table(t), Some(only)) = (resource, &self.only_tables) {
            if !only.contains(t) {
                return false;
            }
        }
        if self.all {
            return true;
        }
        match resource {
            Resource::Table(t) => {
                self.perms.contains(&format!("{}:{t}", action.as_str()))
                    || self.perms.contains(&format!("{}:*", action.as_str()))
            }
            // `can_manage:billing` is billing's write (and read).
            Resource::Area(Area::Billing) if self.perms.contains("manage:billing") => {
                matches!(action, Action::Read | Action::Write)
            }
            Resource::Area(a) => {
                self.perms.contains(&format!("{}:{}", action.as_str(), a.as_str()))
                    // Writing an area implies reading it.
                    || (action == Action::Read && self.perms.contains(&format!("write:{}", a.as_str())))
            }
        }
    }

    /// The permissions as `can_<action>:<resource>` strings.
    pub fn to_strings(&self) -> Vec<String> {
        if self.all {
            return vec!["can_*:*".into()];
        }
        self.perms.iter().map(|p| format!("can_{p}")).collect()
    }
}

/// Parses `can_<action>:<resource>` (resource a table name, `*`, or an area).
pub fn parse_permission(s: &str) -> Result<String> {
    let bad = || {
        Error::invalid(
            "invalid_permission",
            format!(
                "{:?} is not a permission: use can_<read|create|update|delete>:<table or *>, can_<read|write>:<members|settings|audit|usage|api_keys|billing> or can_manage:billing",
                crate::ids::truncate_for_message(s)
            ),
        )
    };
    let rest = s.strip_prefix("can_").ok_or_else(bad)?;
    let (action, resource) = rest.split_once(':').ok_or_else(bad)?;
    let is_area = Area::ALL.iter().any(|a| a.as_str() == resource);
    let ok = match action {
        "read" => true,
        "create" | "update" | "delete" => !is_area,
        "write" => is_area,
        "manage" => resource == "billing",
        _ => false,
    };
    let valid_name = resource == "*"
        || (!resource.is_empty()
            && resource.len() <= 64
            && resource.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    if !ok || !valid_name {
        return Err(bad());
    }
    Ok(format!("{action}:{resource}"))
}

/// The built-in roles.
pub fn builtin(role: &str) -> Option<PermSet> {
    let tables = ["read:*", "create:*", "update:*", "delete:*"];
    Some(match role {
        "owner" => PermSet::everything(),
        "admin" => PermSet::default().with(&tables).with(&[
            "write:members",
            "write:settings",
            "write:api_keys",
            "read:audit",
            "read:usage",
        ]),
        "member" => PermSet::default().with(&tables).with(&["read:members"]),
        "viewer" => PermSet::default().with(&["read:*"]),
        _ => return None,
    })
}

/// API key scopes: read (tables), write (tables), admin (what an admin may do).
pub fn for_scope(scope: &str) -> Option<PermSet> {
    match scope {
        "read" => Some(PermSet::default().with(&["read:*"])),
        "write" => Some(PermSet::default().with(&["read:*", "create:*", "update:*", "delete:*"])),
        "admin" => builtin("admin"),
        _ => None,
    }
}

/// Role names follow slug rules.
pub fn validate_role_name(name: &str) -> Result<()> {
    crate::ids::Slug::parse(name).map(|_| ()).map_err(|_| {
        Error::invalid(
            "invalid_role",
            format!("role name {:?} must use a-z, 0-9 and '-'", crate::ids::truncate_for_message(name)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_roles() {
        let viewer = builtin("viewer").unwrap();
        assert!(viewer.allows(Action::Read, Resource::Table("customers")));
        assert!(!viewer.allows(Action::Create, Resource::Table("customers")));
        assert!(!viewer.allows(Action::Read, Resource::Area(Area::Members)));
        let admin = builtin("admin").unwrap();
        assert!(admin.allows(Action::Read, Resource::Area(Area::Members)), "write implies read");
        assert!(admin.allows(Action::Write, Resource::Area(Area::ApiKeys)));
        assert!(builtin("owner").unwrap().allows(Action::Write, Resource::Area(Area::Settings)));
        assert!(builtin("root").is_none());
    }

    #[test]
    fn custom_permissions_parse() {
        let p = PermSet::from_strings(&["can_read:customers".into(), "can_write:members".into()]).unwrap();
        assert!(p.allows(Action::Read, Resource::Table("customers")));
        assert!(!p.allows(Action::Read, Resource::Table("tasks")));
        for bad in
            ["read:customers", "can_fly:x", "can_write:customers", "can_delete:members", "can_read:a;drop", "can_read:"]
        {
            assert!(parse_permission(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_table_restriction() {
        let p = for_scope("write").unwrap().restrict_tables(Some(&["tasks".to_string()]));
        assert!(p.allows(Action::Create, Resource::Table("tasks")));
        assert!(!p.allows(Action::Read, Resource::Table("customers")));
    }
}
