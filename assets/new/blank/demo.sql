-- Sample rows `tenantd demo` puts in every demo tenant it creates (demo_seed_sql).
INSERT INTO items(name) VALUES ('First item'), ('Second item'), ('Third item');
