//! Per table: a list with paging, sorting and filters; create and edit forms with validation
//! messages next to the field; delete. Data goes through `records`, as the data API's does.

use maud::{html, Markup};
use rusqlite::types::Value;
use serde_json::{Map, Value as Json};

use super::{back, csrf_field, field, flash, form, page, Chrome};
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::records::{self, Affinity, Column, Table};
use crate::util::percent_encode;

fn base(ctx: &Ctx<'_>) -> Result<String> {
    Ok(format!("/admin/t/{}/data/{}", ctx.tenant()?.slug, ctx.param("table")?))
}

fn cell(v: &Json) -> Markup {
    match v {
        Json::Null => html! { td.null { "null" } },
        Json::String(s) => html! { td title=(s) { (s) } },
        other => html! { td { (other.to_string()) } },
    }
}

/// Query string without `page` (for pager links) or with a new order.
fn query_without(req: &Req, drop: &[&str]) -> String {
    req.query
        .iter()
        .filter(|(k, _)| !drop.contains(&k.as_str()))
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn list(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let w = ctx.work(req, None)?;
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let params = list_params(req);
    let b = base(ctx)?;
    let (q, page_data, error) =
        match records::parse_list(table, &params).and_then(|q| w.list(table, &q).map(|p| (q, p))) {
            Ok((q, p)) => (Some(q), Some(p), None),
            Err(e @ Error::Invalid { .. }) => (None, None, Some(e.to_string())),
            Err(e) => return Err(e),
        };
    let cols: Vec<&Column> = table.columns.iter().collect();
    let current_order = q.as_ref().and_then(|q| q.order_by.clone());
    let keep = query_without(req, &["page", "order_by", "ok", "error"]);
    let chrome = Chrome::for_ctx(ctx, &table.name, "home")?;
    let (page_no, per_page) = q.as_ref().map(|q| (q.page, q.per_page)).unwrap_or((1, 20));
    let total = page_data.as_ref().and_then(|p| p.total).unwrap_or(0);
    let pages = ((total + per_page - 1) / per_page).max(1);
    let filter_col = req.query_param("filter_col").unwrap_or("");
    Ok(page(
        &chrome,
        html! {
            h1 { (table.name) }
            p.lead { (total) " records" }
            (flash(req))
            @if let Some(e) = &error { div.flash.error { (e) } }
            div.toolbar {
                a.button href={ (b) "/new" } { "New " (table.name) }
                form method="get" action=(b) {
                    select name="filter_col" aria-label="column" {
                        @for c in &cols { option value=(c.name) selected[c.name == filter_col] { (c.name) } }
                    }
                    input type="text" name="filter_val" placeholder="equals…" value=(req.query_param("filter_val").unwrap_or(""));
                    button.secondary type="submit" { "Filter" }
                    @if !params.is_empty() { a href=(b) { "clear" } }
                }
            }
            @if let Some(p) = &page_data {
                table.data {
                    thead { tr {
                        @for c in &cols {
                            @let desc = current_order.as_ref().is_some_and(|(n, d)| n == &c.name && !d);
                            th { a href={ (b) "?order_by=" @if desc { "-" } (c.name) @if !keep.is_empty() { "&" (keep) } } {
                                (c.name)
                                @if let Some((n, d)) = &current_order { @if n == &c.name { @if *d { " ↓" } @else { " ↑" } } }
                            } }
                        }
                    } }
                    tbody {
                        @for item in &p.items {
                            @let id = item.get(&table.pk).cloned().unwrap_or(Json::Null);
                            tr {
                                @for c in &cols {
                                    @if c.name == table.pk {
                                        td { a href={ (b) "/" (id.to_string()) } { (id.to_string()) } }
                                    } @else {
                                        (cell(item.get(&c.name).unwrap_or(&Json::Null)))
                                    }
                                }
                            }
                        }
                    }
                }
                div.pager {
                    @if page_no > 1 { a href={ (b) "?page=" (page_no - 1) @if !keep.is_empty() { "&" (keep) } } { "← Previous" } }
                    span { "Page " (page_no) " of " (pages) }
                    @if page_no < pages { a href={ (b) "?page=" (page_no + 1) @if !keep.is_empty() { "&" (keep) } } { "Next →" } }
                }
            }
        },
    ))
}

/// Query parameters for the list: the filter form's `filter_col`/`filter_val` become `col=val`;
/// empty values and flash messages are dropped.
fn list_params(req: &Req) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = req
        .query
        .iter()
        .filter(|(k, v)| !v.is_empty() && !["ok", "error", "filter_col", "filter_val"].contains(&k.as_str()))
        .cloned()
        .collect();
    if let (Some(c), Some(v)) = (req.query_param("filter_col"), req.query_param("filter_val")) {
        if !v.is_empty() {
            out.push((c.to_string(), v.to_string()));
        }
    }
    out
}

fn input_for(c: &Column, value: &str, error: Option<&str>) -> Markup {
    let kind = match c.affinity {
        Affinity::Integer | Affinity::Real => "number",
        _ => "text",
    };
    let step = if c.affinity == Affinity::Real { Some("any") } else { None };
    html! {
        div.field.error[error.is_some()] {
            label for=(c.name) {
                (c.name) " " span.hint { (c.decl_type.to_lowercase()) @if c.not_null && !c.has_default { ", required" } }
            }
            input id=(c.name) type=(kind) step=[step] name=(c.name) value=(value) required[c.not_null && !c.has_default];
            @if let Some(e) = error { div.msg { (e) } }
        }
    }
}

fn record_form(
    ctx: &Ctx<'_>,
    table: &Table,
    action: &str,
    values: &Map<String, Json>,
    error: Option<(&str, &str)>,
) -> Result<Markup> {
    let text = |c: &Column| match values.get(&c.name) {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    Ok(html! {
        form method="post" action=(action) {
            (csrf_field(ctx))
            @if let Some((col, msg)) = error { @if col.is_empty() { div.flash.error { (msg) } } }
            @for c in table.columns.iter().filter(|c| c.name != table.pk) {
                (input_for(c, &text(c), error.filter(|(col, _)| *col == c.name).map(|(_, m)| m)))
            }
            button type="submit" { "Save" }
            " " a.button.secondary href=(base(ctx)?) { "Cancel" }
        }
    })
}

/// Form strings to column values: empty is NULL (or the default, when omitted on create).
fn form_values(table: &Table, fields: &[(String, String)], creating: bool) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for c in table.columns.iter().filter(|c| c.name != table.pk) {
        let Some(raw) = field(fields, &c.name) else { continue };
        if raw.is_empty() {
            if creating && c.has_default {
                continue;
            }
            out.push((c.name.clone(), Value::Null));
            continue;
        }
        let json = match c.affinity {
            Affinity::Integer => raw
                .trim()
                .parse::<i64>()
                .map(Json::from)
                .map_err(|_| Error::invalid("type_error", format!("column {} expects an integer", c.name)))?,
            Affinity::Real => raw
                .trim()
                .parse::<f64>()
                .map(Json::from)
                .map_err(|_| Error::invalid("type_error", format!("column {} expects a number", c.name)))?,
            _ => Json::from(raw),
        };
        out.push((c.name.clone(), records::json_to_sql(c, &json)?));
    }
    Ok(out)
}

/// Which column an error message is about, for showing it next to the field.
fn error_column<'a>(table: &'a Table, msg: &str) -> &'a str {
    table.columns.iter().map(|c| c.name.as_str()).find(|c| msg.contains(&format!("column {c}"))).unwrap_or("")
}

fn form_page(
    ctx: &Ctx<'_>,
    table: &Table,
    title: &str,
    action: &str,
    values: &Map<String, Json>,
    error: Option<&str>,
    extra: Markup,
) -> Result<Resp> {
    let err = error.map(|m| (error_column(table, m), m));
    let chrome = Chrome::for_ctx(ctx, title, "home")?;
    let mut r =
        page(&chrome, html! { h1 { (title) } div.card { (record_form(ctx, table, action, values, err)?) } (extra) });
    if error.is_some() {
        r.status = 400;
    }
    Ok(r)
}

pub fn new_form(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let w = ctx.work(req, None)?;
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let b = base(ctx)?;
    form_page(ctx, table, &format!("New {}", table.name), &b, &Map::new(), None, html! {})
}

fn submitted(fields: &[(String, String)]) -> Map<String, Json> {
    fields.iter().filter(|(k, _)| k != "_csrf").map(|(k, v)| (k.clone(), Json::from(v.clone()))).collect()
}

pub fn create(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let f = form(req)?;
    let w = ctx.work(req, Some(false))?;
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let b = base(ctx)?;
    let res = w.create(&table.name, |table| form_values(table, &f, true));
    match res {
        Ok(rec) => Ok(back(
            &b,
            "ok",
            &format!("created {} {}", table.name, rec.get(&table.pk).map(|v| v.to_string()).unwrap_or_default()),
        )),
        Err(e @ (Error::Invalid { .. } | Error::Conflict { .. })) => {
            form_page(ctx, table, &format!("New {}", table.name), &b, &submitted(&f), Some(&e.to_string()), html! {})
        }
        Err(e) => Err(e),
    }
}

fn delete_form(ctx: &Ctx<'_>, action: &str) -> Markup {
    html! {
        div.card {
            form method="post" action=(action) {
                (csrf_field(ctx))
                button.danger type="submit" { "Delete this record" }
            }
        }
    }
}

pub fn edit_form(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = records::parse_id(ctx.param("id")?)?;
    let w = ctx.work(req, None)?;
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let rec = w.get(table, id)?;
    let b = base(ctx)?;
    let action = format!("{b}/{id}");
    form_page(
        ctx,
        table,
        &format!("{} {id}", table.name),
        &action,
        &rec,
        None,
        delete_form(ctx, &format!("{action}/delete")),
    )
}

pub fn update(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = records::parse_id(ctx.param("id")?)?;
    let f = form(req)?;
    let w = ctx.work(req, Some(false))?;
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let b = base(ctx)?;
    let action = format!("{b}/{id}");
    let res = w.update(&table.name, id, |table| form_values(table, &f, false));
    match res {
        Ok(_) => Ok(back(&b, "ok", &format!("saved {} {id}", table.name))),
        Err(e @ (Error::Invalid { .. } | Error::Conflict { .. })) => form_page(
            ctx,
            table,
            &format!("{} {id}", table.name),
            &action,
            &submitted(&f),
            Some(&e.to_string()),
            delete_form(ctx, &format!("{action}/delete")),
        ),
        Err(e) => Err(e),
    }
}

pub fn delete(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = records::parse_id(ctx.param("id")?)?;
    let table = ctx.param("table")?;
    let b = base(ctx)?;
    let res = ctx.work(req, Some(true))?.delete(table, id);
    match res {
        Ok(()) => Ok(back(&b, "ok", &format!("deleted {table} {id}"))),
        Err(e @ Error::Invalid { .. }) => Ok(back(&format!("{b}/{id}"), "error", &e.to_string())),
        Err(e) => Err(e),
    }
}
