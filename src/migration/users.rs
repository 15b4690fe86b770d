//! The source app's users become tenantd users with memberships, keeping their password
//! hashes (verified on sign-in by `auth::password`, re-hashed to argon2id on the first
//! success). Flask-AppBuilder's `ab_user`/`ab_role` and Django's `auth_user`/`auth_group` are
//! recognised; any other user table is named in the config.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use super::config::{MembershipLink, RoleLink, UsersSpec};
use super::inspect::{q, Schema};
use super::map::map_table;
use crate::error::Result;

/// One source user bound for one tenant.
#[derive(Clone, Debug, Serialize)]
pub struct SourceUser {
    pub source_id: i64,
    pub email: String,
    #[serde(skip)]
    pub password_hash: String,
    pub hash_format: &'static str,
    pub role: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct UsersReport {
    pub table: Option<String>,
    /// Users skipped, with why (no valid email, inactive).
    pub skipped: Vec<String>,
    /// Count of users per password hash format.
    pub formats: BTreeMap<String, u64>,
    /// `table.column` whose value gave each member's role in its tenant.
    pub membership_table: Option<String>,
}

/// The users spec the config gives, else one recognised from well-known frameworks.
pub fn detect(schema: &Schema, given: Option<&UsersSpec>) -> Option<UsersSpec> {
    if let Some(g) = given {
        return g.import.then(|| g.clone());
    }
    let has = |t: &str, cols: &[&str]| schema.table(t).is_some_and(|t| cols.iter().all(|c| t.column(c).is_some()));
    if has("ab_user", &["email", "password"]) {
        return Some(UsersSpec {
            import: true,
            table: "ab_user".into(),
            email: "email".into(),
            password: "password".into(),
            active: has("ab_user", &["active"]).then(|| "active".into()),
            admin_flag: None,
            role_link: has("ab_user_role", &["user_id", "role_id"]).then(|| RoleLink {
                table: "ab_user_role".into(),
                user_column: "user_id".into(),
                role_column: "role_id".into(),
                roles_table: "ab_role".into(),
                role_id: "id".into(),
                role_name: "name".into(),
            }),
            roles: BTreeMap::new(),
            membership: None,
        });
    }
    if has("auth_user", &["email", "password"]) {
        return Some(UsersSpec {
            import: true,
            table: "auth_user".into(),
            email: "email".into(),
            password: "password".into(),
            active: has("auth_user", &["is_active"]).then(|| "is_active".into()),
            admin_flag: has("auth_user", &["is_superuser"]).then(|| "is_superuser".into()),
            role_link: has("auth_user_groups", &["user_id", "group_id"]).then(|| RoleLink {
                table: "auth_user_groups".into(),
                user_column: "user_id".into(),
                role_column: "group_id".into(),
                roles_table: "auth_group".into(),
                role_id: "id".into(),
                role_name: "name".into(),
            }),
            roles: BTreeMap::new(),
            membership: None,
        });
    }
    for name in ["users", "user", "accounts_user"] {
        for pw in ["password_hash", "password", "hashed_password", "encrypted_password"] {
            if has(name, &["email", pw]) {
                return Some(UsersSpec {
                    import: true,
                    table: schema.table(name).map(|t| t.name.clone()).unwrap_or_default(),
                    email: "email".into(),
                    password: pw.into(),
                    active: ["active", "is_active", "enabled"].into_iter().find(|c| has(name, &[c])).map(String::from),
                    admin_flag: ["is_admin", "is_superuser", "admin", "superuser"]
                        .into_iter()
                        .find(|c| has(name, &[c]))
                        .map(String::from),
                    ..Default::default()
                });
            }
        }
    }
    None
}

/// What a stored hash is, for the report (verification is `auth::password`'s).
pub fn hash_format(hash: &str) -> &'static str {
    if hash.is_empty() {
        return "none";
    }
    crate::auth::password::classify(hash).name()
}

fn mapped_role(spec: &UsersSpec, source_roles: &[String], admin_flag: bool) -> String {
    for r in source_roles {
        if let Some(m) = spec.roles.iter().find(|(k, _)| k.eq_ignore_ascii_case(r)).map(|(_, v)| v) {
            return m.clone();
        }
    }
    let adminish = |r: &String| {
        matches!(
            r.to_ascii_lowercase().as_str(),
            "admin" | "admins" | "administrator" | "administrators" | "superuser" | "owner"
        )
    };
    if admin_flag || source_roles.iter().any(adminish) {
        "admin".into()
    } else {
        "member".into()
    }
}

/// Users per tenant number: every user for a single-tenant run (`tenants` = [tn]), or the users
/// a split's map gave each tenant (rows of the user table its data references).
pub fn collect(
    reader: &Connection,
    schema: &Schema,
    spec: &UsersSpec,
    split_index: Option<usize>,
    tenants: &[i64],
    mapped_tables: &[usize],
) -> Result<(BTreeMap<i64, Vec<SourceUser>>, UsersReport)> {
    let mut report = UsersReport { table: Some(spec.table.clone()), ..Default::default() };
    let table = schema.table(&spec.table).ok_or_else(|| super::roles::unknown_table(schema, &spec.table))?;
    for c in
        [Some(&spec.email), Some(&spec.password), spec.active.as_ref(), spec.admin_flag.as_ref()].into_iter().flatten()
    {
        if table.column(c).is_none() {
            return Err(super::config::pointer_error("/users", &super::roles::unknown_column(table, c).to_string()));
        }
    }
    let mut roles_of: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    if let Some(link) = &spec.role_link {
        let sql = format!(
            "SELECT l.{}, r.{} FROM src.{} l JOIN src.{} r ON r.{} = l.{}",
            q(&link.user_column),
            q(&link.role_name),
            q(&link.table),
            q(&link.roles_table),
            q(&link.role_id),
            q(&link.role_column)
        );
        let mut stmt =
            reader.prepare(&sql).map_err(|e| super::config::pointer_error("/users/role_link", &e.to_string()))?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (u, name) = row?;
            roles_of.entry(u).or_default().push(name);
        }
    }
    let opt = |c: &Option<String>| c.as_ref().map(|c| format!("t.{}", q(c))).unwrap_or_else(|| "1".into());
    let select = format!(
        "t.rowid, t.{}, t.{}, {}, {}",
        q(&spec.email),
        q(&spec.password),
        opt(&spec.active),
        spec.admin_flag.as_ref().map(|c| format!("t.{}", q(c))).unwrap_or_else(|| "0".into())
    );
    let sql = match split_index {
        Some(i) => format!(
            "SELECT m.tn, {select} FROM {} m JOIN src.{} t ON t.rowid = m.rid ORDER BY m.tn, t.rowid",
            map_table(i),
            q(&table.name)
        ),
        None => format!("SELECT ?1, {select} FROM src.{} t ORDER BY t.rowid", q(&table.name)),
    };
    let mut stmt = reader.prepare(&sql)?;
    let single = tenants.first().copied().unwrap_or(0);
    let mut rows = if split_index.is_some() { stmt.query([])? } else { stmt.query([single])? };
    let mut out: BTreeMap<i64, Vec<SourceUser>> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let tn: i64 = r.get(0)?;
        let id: i64 = r.get(1)?;
        let email: Option<String> = r.get::<_, Option<String>>(2).unwrap_or(None);
        let hash: String = r.get::<_, Option<String>>(3).unwrap_or(None).unwrap_or_default();
        let active: bool = r.get::<_, Option<i64>>(4).unwrap_or(Some(1)).unwrap_or(0) != 0;
        let admin: bool = r.get::<_, Option<i64>>(5).unwrap_or(Some(0)).unwrap_or(0) != 0;
        let Some(email) = email.and_then(|e| crate::auth::validate_email(&e).ok()) else {
            report.skipped.push(format!("{} id {id}: no valid email", table.name));
            continue;
        };
        if !active {
            report.skipped.push(format!("{email}: inactive in the source"));
            continue;
        }
        let format = hash_format(&hash);
        *report.formats.entry(format.to_string()).or_default() += 1;
        let role = mapped_role(spec, roles_of.get(&id).map(Vec::as_slice).unwrap_or(&[]), admin);
        out.entry(tn).or_default().push(SourceUser {
            source_id: id,
            email,
            password_hash: hash,
            hash_format: format,
            role,
        });
    }
    // A membership table of the source (the tenant's own record of who is in it, and as what)
    // decides each member's role there.
    if let Some(m) = membership_table(schema, spec, mapped_tables) {
        let tenant_roles = membership_roles(reader, schema, spec, &m, split_index.is_some(), single)?;
        report.membership_table = Some(format!("{}.{}", m.table, m.role_column));
        for (tn, users) in out.iter_mut() {
            for u in users.iter_mut() {
                if let Some(r) = tenant_roles.get(&(*tn, u.source_id)) {
                    u.role = r.clone();
                }
            }
        }
    }
    // A tenant without an owner: its first administrator owns it.
    for users in out.values_mut() {
        if users.iter().any(|u| u.role == "owner") {
            continue;
        }
        if let Some(first) = users.iter_mut().find(|u| u.role == "admin") {
            first.role = "owner".into();
        }
    }
    Ok((out, report))
}

/// The source's membership table: tenant data with a key into the user table and a role
/// column (`role`, or a flag such as `is_owner`); named in the config, or found.
fn membership_table(schema: &Schema, spec: &UsersSpec, mapped_tables: &[usize]) -> Option<MembershipLink> {
    if let Some(m) = &spec.membership {
        return Some(m.clone());
    }
    for &i in mapped_tables {
        let t = &schema.tables[i];
        if t.name.eq_ignore_ascii_case(&spec.table) {
            continue;
        }
        let Some(fk) = t.foreign_keys.iter().find(|f| f.table.eq_ignore_ascii_case(&spec.table) && f.from.len() == 1)
        else {
            continue;
        };
        let role =
            ["role", "role_name", "is_owner", "is_admin"].into_iter().find_map(|c| t.column(c).map(|c| c.name.clone()));
        if let Some(role_column) = role {
            return Some(MembershipLink { table: t.name.clone(), user_column: fk.from[0].clone(), role_column });
        }
    }
    None
}

/// Role by (tenant number, source user id) from the membership table; the highest one when a
/// user has several rows in one tenant.
fn membership_roles(
    reader: &Connection,
    schema: &Schema,
    spec: &UsersSpec,
    m: &MembershipLink,
    split: bool,
    single: i64,
) -> Result<BTreeMap<(i64, i64), String>> {
    let table = schema.table(&m.table).ok_or_else(|| super::roles::unknown_table(schema, &m.table))?;
    for c in [&m.user_column, &m.role_column] {
        if table.column(c).is_none() {
            return Err(super::config::pointer_error(
                "/users/membership",
                &super::roles::unknown_column(table, c).to_string(),
            ));
        }
    }
    let cols = format!("t.{}, t.{}", q(&m.user_column), q(&m.role_column));
    let sql = match (split, schema.index_of(&m.table)) {
        (true, Some(i)) => {
            format!("SELECT m.tn, {cols} FROM {} m JOIN src.{} t ON t.rowid = m.rid", map_table(i), q(&table.name))
        }
        _ => format!("SELECT ?1, {cols} FROM src.{} t", q(&table.name)),
    };
    let mut stmt = reader.prepare(&sql)?;
    let mut rows = if split { stmt.query([])? } else { stmt.query([single])? };
    let flag = m.role_column.to_ascii_lowercase().starts_with("is_");
    let rank = |r: &str| ["viewer", "member", "admin", "owner"].iter().position(|x| *x == r).unwrap_or(1);
    let mut out: BTreeMap<(i64, i64), String> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let tn: i64 = r.get(0)?;
        let Some(user) = r.get::<_, Option<i64>>(1)? else { continue };
        let value: rusqlite::types::Value = r.get(2)?;
        let role = if flag {
            let on = matches!(value, rusqlite::types::Value::Integer(v) if v != 0);
            match (on, m.role_column.to_ascii_lowercase().as_str()) {
                (true, "is_owner") => "owner".to_string(),
                (true, _) => "admin".to_string(),
                (false, _) => "member".to_string(),
            }
        } else {
            let text = super::map::value_text(&value);
            match spec.roles.iter().find(|(k, _)| k.eq_ignore_ascii_case(&text)) {
                Some((_, mapped)) => mapped.clone(),
                None => builtin_or(&text, || mapped_role(spec, std::slice::from_ref(&text), false)),
            }
        };
        let e = out.entry((tn, user)).or_insert_with(|| role.clone());
        if rank(&role) > rank(e) {
            *e = role;
        }
    }
    Ok(out)
}

/// A role value that already names a tenantd role keeps it; anything else is `other()`.
fn builtin_or(value: &str, other: impl FnOnce() -> String) -> String {
    let v = value.to_ascii_lowercase();
    match v.as_str() {
        "owner" | "admin" | "member" | "viewer" => v,
        _ => other(),
    }
}
