-- Demo tenant schema, version 1: a small CRM. Operators point `tenant_schema_dir` at their own
-- directory of numbered migrations; this one ships so `tenantd demo` has something to show.
CREATE TABLE customers (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email      TEXT UNIQUE,
    company    TEXT,
    status     TEXT NOT NULL DEFAULT 'lead' CHECK (status IN ('lead', 'active', 'churned')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customers(id) ON DELETE SET NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    budget      REAL CHECK (budget >= 0),
    status      TEXT NOT NULL DEFAULT 'planned' CHECK (status IN ('planned', 'active', 'done')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX projects_customer ON projects(customer_id);

CREATE TABLE tasks (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title      TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    done       INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    priority   INTEGER NOT NULL DEFAULT 2 CHECK (priority BETWEEN 1 AND 4),
    due_date   TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX tasks_project ON tasks(project_id);
