//! The source app's users become tenantd users with memberships, keeping their password
//! hashes (verified on sign-in by `auth::password`, re-hashed to argon2id on the first
//! success). Flask-AppBuilder's `ab_user`/`ab_role` and Django's `auth_user`/`auth_group` are
//! recognised; any other user table is named in the config.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use super::config::{MembershipLink, RoleLink, UsersSpec};
use super::inspect::{q, Schema, Table};
use super::map::map_table;
use super::map::value_text;
use crate::error::Result;
use rusqlite::types::Value;

/// One source user bound for one tenant.
#[derive(Clone, Debug, Serialize)]
pub struct SourceUser {
    /// The user's key in the source (its primary key, as text).
    pub source_id: String,
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

/// Users per tenant number: every user for a single-tenant run (`tenants` = [tn]); for a
/// split, the users the tenant's own data references (its rows' keys into the user table, or
/// the user table's own map when users belong to one tenant each). References from lookups or
/// from other system tables copy the user's row for the foreign keys but make no member.
/// `tenant_data`: the tables whose rows belong to tenants (for a split).
pub fn collect(
    reader: &Connection,
    schema: &Schema,
    spec: &UsersSpec,
    split: bool,
    tenants: &[i64],
    tenant_data: &[usize],
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
    let rid = table.rowid_or_err()?;
    // Users are known by their key (what other tables reference), as text.
    let id_col = match table.pk.as_slice() {
        [pk] => format!("t.{}", q(pk)),
        _ => format!("t.{rid}"),
    };
    let mut roles_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
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
        for row in stmt.query_map([], |r| Ok((r.get::<_, Value>(0)?, r.get::<_, Value>(1)?)))? {
            let (u, name) = row?;
            roles_of.entry(value_text(&u)).or_default().push(value_text(&name));
        }
    }
    let opt = |c: &Option<String>, none: &str| c.as_ref().map(|c| format!("t.{}", q(c))).unwrap_or_else(|| none.into());
    let select = format!(
        "{id_col}, t.{}, t.{}, {}, {}",
        q(&spec.email),
        q(&spec.password),
        opt(&spec.active, "1"),
        opt(&spec.admin_flag, "0")
    );
    let sql = if split {
        members_of_tenants(reader, schema, table, tenant_data)?;
        format!(
            "SELECT m.tn, {select} FROM temp.members m JOIN src.{} t ON t.{rid} = m.rid ORDER BY m.tn, t.{rid}",
            q(&table.name)
        )
    } else {
        format!("SELECT ?1, {select} FROM src.{} t ORDER BY t.{rid}", q(&table.name))
    };
    let mut stmt = reader.prepare(&sql)?;
    let single = tenants.first().copied().unwrap_or(0);
    let mut rows = if split { stmt.query([])? } else { stmt.query([single])? };
    let mut out: BTreeMap<i64, Vec<SourceUser>> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let tn: i64 = r.get(0)?;
        let id = value_text(&r.get::<_, Value>(1)?);
        let email = match r.get::<_, Value>(2)? {
            Value::Text(e) => crate::auth::validate_email(&e).ok(),
            _ => None,
        };
        let hash = match r.get::<_, Value>(3)? {
            Value::Text(h) => h,
            _ => String::new(),
        };
        let Some(email) = email else {
            report.skipped.push(format!("{} id {id}: no valid email", table.name));
            continue;
        };
        match truth(&r.get::<_, Value>(4)?) {
            Some(true) => {}
            Some(false) => {
                report.skipped.push(format!("{email}: inactive in the source"));
                continue;
            }
            None => {
                report.skipped.push(format!("{email}: active flag is neither true nor false"));
                continue;
            }
        }
        let admin = truth(&r.get::<_, Value>(5)?).unwrap_or(false);
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
    if let Some(m) = membership_table(schema, spec, tenant_data) {
        let tenant_roles = membership_roles(reader, schema, spec, &m, split, single)?;
        report.membership_table = Some(format!("{}.{}", m.table, m.role_column));
        for (tn, users) in out.iter_mut() {
            for u in users.iter_mut() {
                if let Some(r) = tenant_roles.get(&(*tn, u.source_id.clone())) {
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
) -> Result<BTreeMap<(i64, String), String>> {
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
        (true, Some(_)) => format!(
            "SELECT m.tn, {cols} FROM {} m JOIN src.{} t ON t.{} = m.rid",
            map_table(&table.name),
            q(&table.name),
            table.rowid_or_err()?
        ),
        _ => format!("SELECT ?1, {cols} FROM src.{} t", q(&table.name)),
    };
    let mut stmt = reader.prepare(&sql)?;
    let mut rows = if split { stmt.query([])? } else { stmt.query([single])? };
    let flag = m.role_column.to_ascii_lowercase().starts_with("is_");
    let rank = |r: &str| ["viewer", "member", "admin", "owner"].iter().position(|x| *x == r).unwrap_or(1);
    let mut out: BTreeMap<(i64, String), String> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let tn: i64 = r.get(0)?;
        let user = match r.get::<_, Value>(1)? {
            Value::Null => continue,
            v => value_text(&v),
        };
        let value: Value = r.get(2)?;
        let role = if flag {
            let on = truth(&value).unwrap_or(false);
            match (on, m.role_column.to_ascii_lowercase().as_str()) {
                (true, "is_owner") => "owner".to_string(),
                (true, _) => "admin".to_string(),
                (false, _) => "member".to_string(),
            }
        } else {
            let text = value_text(&value);
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

/// A flag as the source stored it: integers, reals, and the usual spellings of true and false
/// in text (`t`/`f` from PostgreSQL, `true`/`false`, `yes`/`no`); NULL is false; anything else
/// is unknown.
fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Null => Some(false),
        Value::Integer(i) => Some(*i != 0),
        Value::Real(f) => Some(*f != 0.0),
        Value::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "y" | "yes" | "on" => Some(true),
            "0" | "f" | "false" | "n" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        Value::Blob(_) => None,
    }
}

/// Fills `temp.members` (tenant number, user rowid) with the users each tenant's own data
/// references, or the user table's own map when its rows belong to tenants.
fn members_of_tenants(reader: &Connection, schema: &Schema, users: &Table, tenant_data: &[usize]) -> Result<()> {
    let urid = users.rowid_or_err()?;
    reader.execute_batch(
        "DROP TABLE IF EXISTS temp.members; CREATE TEMP TABLE members (tn INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (tn, rid)) WITHOUT ROWID;",
    )?;
    let own = schema.index_of(&users.name).is_some_and(|i| tenant_data.contains(&i));
    if own {
        reader.execute(
            &format!("INSERT OR IGNORE INTO temp.members SELECT tn, rid FROM {}", map_table(&users.name)),
            [],
        )?;
    }
    for &ci in tenant_data {
        let child = &schema.tables[ci];
        let crid = child.rowid_or_err()?;
        for fk in child.foreign_keys.iter().filter(|f| f.table.eq_ignore_ascii_case(&users.name)) {
            let on: Vec<String> =
                fk.from.iter().zip(&fk.to).map(|(f, to)| format!("u.{} = c.{}", q(to), q(f))).collect();
            reader.execute(
                &format!(
                    "INSERT OR IGNORE INTO temp.members SELECT cm.tn, u.{urid} FROM {} cm JOIN src.{} c ON c.{crid} = cm.rid JOIN src.{} u ON {}",
                    map_table(&child.name),
                    q(&child.name),
                    q(&users.name),
                    on.join(" AND ")
                ),
                [],
            )?;
        }
    }
    Ok(())
}

/// A role value that already names a tenantd role keeps it; anything else is `other()`.
fn builtin_or(value: &str, other: impl FnOnce() -> String) -> String {
    let v = value.to_ascii_lowercase();
    match v.as_str() {
        "owner" | "admin" | "member" | "viewer" => v,
        _ => other(),
    }
}
