-- A table made by plain SQL beside Django's, in the types a converter to
-- SQLite has to map: an enum, numeric(12,2), boolean, timestamptz, json (kept
-- as written, duplicate key and all), jsonb, int[] (with a NULL element, an
-- empty one and a 2-D one), uuid, bytea (with an empty one), an identity key.
-- Tenant key: account_id -> crm_account.id; one row has none (NULL).
\set ON_ERROR_STOP on
BEGIN;
CREATE TYPE ledger_kind AS ENUM ('invoice', 'payment', 'refund', 'credit-note');

CREATE TABLE ledger_entry (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint REFERENCES crm_account (id),
    kind        ledger_kind NOT NULL,
    amount      numeric(12,2) NOT NULL,
    settled     boolean NOT NULL DEFAULT false,
    booked_at   timestamptz NOT NULL,
    raw         json,
    meta        jsonb,
    line_counts int[],
    external_id uuid UNIQUE,
    attachment  bytea,
    memo        text
);
CREATE INDEX ledger_entry_account_id ON ledger_entry (account_id);
CREATE INDEX ledger_entry_meta ON ledger_entry USING gin (meta);

INSERT INTO ledger_entry (account_id, kind, amount, settled, booked_at, raw, meta,
                          line_counts, external_id, attachment, memo)
SELECT a.id,
       (enum_range(NULL::ledger_kind))[1 + ((a.id + g) % 4)::int],
       round((a.id * 1000 + g * 37.25 - 120)::numeric, 2),
       (a.id + g) % 3 = 0,
       timestamptz '2025-01-01 00:00:00+00' + a.id * interval '1 day' + g * interval '97 minutes 13.25 seconds',
       ('{"n": ' || g || ',  "slug": "' || a.slug || '", "n": "dup"}')::json,
       jsonb_build_object('n', g, 'slug', a.slug, 'tags', jsonb_build_array('x', g, null), 'ok', g % 2 = 0),
       ARRAY[g, a.id::int, NULL],
       md5(a.slug || ':' || g)::uuid,
       decode(md5(a.slug || g), 'hex'),
       CASE WHEN g % 4 = 0 THEN NULL ELSE 'entry ' || g || ' für ' || a.name || ' ✓' END
FROM crm_account a CROSS JOIN generate_series(1, 6) AS g
ORDER BY a.id, g;

INSERT INTO ledger_entry (account_id, kind, amount, settled, booked_at, raw, meta,
                          line_counts, external_id, attachment, memo) VALUES
    -- the row that belongs to no tenant
    (NULL, 'credit-note', -0.01, true, '2025-06-01 12:00:00+05:30', '[]', '{}',
     '{}', NULL, '\x'::bytea, 'no account'),
    -- extremes that still fit the declared types
    ((SELECT min(id) FROM crm_account), 'invoice', 9999999999.99, false,
     '1999-12-31 23:59:59.999999-08', 'null', '{"deep": {"a": [1, 2.5, "three", {"b": false}]}}',
     '{{1,2},{3,4}}', '00000000-0000-0000-0000-000000000000', '\x00ff00'::bytea, E'tab\tnewline\nquote''');
COMMIT;
