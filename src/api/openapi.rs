//! `GET /api/v1/t/{slug}/openapi.json`: an OpenAPI 3.1 description of the tenant's data API,
//! generated from the same introspection that serves it.

use serde_json::{json, Map, Value};

use crate::error::Result;
use crate::http::{Ctx, Req, Resp};
use crate::store::query::{Affinity, Table};

fn column_schema(c: &crate::store::query::Column) -> Value {
    let t = c.affinity.json_type();
    let mut s = if c.not_null { json!({"type": t}) } else { json!({"type": [t, "null"]}) };
    if c.affinity == Affinity::Numeric && c.decl_type.to_ascii_uppercase().contains("DATE") {
        s["description"] = json!(format!("{} (declared {})", t, c.decl_type));
    }
    s
}

fn record_schema(t: &Table) -> Value {
    let props: Map<String, Value> = t.columns.iter().map(|c| (c.name.clone(), column_schema(c))).collect();
    json!({"type": "object", "properties": props})
}

fn input_schema(t: &Table, create: bool) -> Value {
    let cols: Vec<_> = t.columns.iter().filter(|c| c.name != t.pk).collect();
    let props: Map<String, Value> = cols.iter().map(|c| (c.name.clone(), column_schema(c))).collect();
    let required: Vec<&str> = if create {
        cols.iter().filter(|c| c.not_null && !c.has_default).map(|c| c.name.as_str()).collect()
    } else {
        Vec::new()
    };
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn error_ref() -> Value {
    json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn responses(ok_code: &str, ok: Value) -> Value {
    let mut r = json!({
        "400": error_ref(), "401": error_ref(), "403": error_ref(), "404": error_ref(),
        "409": error_ref(), "413": error_ref(), "415": error_ref(), "423": error_ref(), "429": error_ref(), "503": error_ref()
    });
    r[ok_code] = ok;
    r
}

pub fn spec(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let opened = ctx.app.open_tenant(t)?;
    let conn = opened.handle.read_conn()?;
    let schema = opened.handle.schema_info(&conn)?;
    let mut paths = Map::new();
    let id_param = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}});
    for table in schema.tables.values() {
        let name = &table.name;
        let rec = json!({"$ref": format!("#/components/schemas/{name}")});
        let mut params = vec![
            json!({"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}}),
            json!({"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1}}),
            json!({"name": "order_by", "in": "query", "schema": {"type": "string"}}),
            json!({"name": "fields", "in": "query", "schema": {"type": "string"}}),
            json!({"name": "count", "in": "query", "schema": {"type": "boolean"}}),
        ];
        for c in &table.columns {
            params.push(json!({"name": c.name, "in": "query", "schema": {"type": "string"}, "description": "equals"}));
        }
        let list_ok = json!({"description": "a page of records", "content": {"application/json": {"schema": {
            "type": "object", "required": ["items", "page", "per_page"],
            "properties": {"items": {"type": "array", "items": rec}, "page": {"type": "integer"},
                           "per_page": {"type": "integer"}, "total": {"type": ["integer", "null"]}}}}}});
        let one_ok = |d: &str| json!({"description": d, "content": {"application/json": {"schema": rec}}});
        let body = |create: bool| json!({"required": true, "content": {"application/json": {"schema": input_schema(table, create)}}});
        paths.insert(
            format!("/api/v1/t/{}/{name}", t.slug),
            json!({
                "get": {"operationId": format!("list_{name}"), "parameters": params, "responses": responses("200", list_ok)},
                "post": {"operationId": format!("create_{name}"), "requestBody": body(true), "responses": responses("201", one_ok("created"))}
            }),
        );
        paths.insert(
            format!("/api/v1/t/{}/{name}/{{id}}", t.slug),
            json!({
                "parameters": [id_param],
                "get": {"operationId": format!("get_{name}"), "responses": responses("200", one_ok("the record"))},
                "patch": {"operationId": format!("update_{name}"), "requestBody": body(false), "responses": responses("200", one_ok("updated"))},
                "delete": {"operationId": format!("delete_{name}"), "responses": responses("204", json!({"description": "deleted"}))}
            }),
        );
    }
    let mut schemas: Map<String, Value> = schema.tables.values().map(|t| (t.name.clone(), record_schema(t))).collect();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
            "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}),
    );
    let doc = json!({
        "openapi": "3.1.0",
        "info": {"title": format!("{} data API", t.name), "version": format!("schema-{}", schema.cookie)},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": schemas},
        "paths": paths
    });
    Ok(Resp::json(200, &doc))
}
