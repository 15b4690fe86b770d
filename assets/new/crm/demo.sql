-- Sample rows `tenantd demo` puts in every demo tenant it creates (demo_seed_sql).
INSERT INTO customers(name, email, company, status, phone) VALUES
    ('Ada Lovelace', 'ada@northwind.example', 'Northwind', 'active', '+1-555-0101'),
    ('Grace Hopper', 'grace@contoso.example', 'Contoso', 'active', '+1-555-0102'),
    ('Alan Turing', 'alan@fabrikam.example', 'Fabrikam', 'lead', '+1-555-0103'),
    ('Barbara Liskov', 'barbara@tailspin.example', 'Tailspin', 'churned', NULL);
INSERT INTO projects(customer_id, name, budget, status) VALUES
    (1, 'Website relaunch for Northwind', 25000, 'active'),
    (2, 'Data migration for Contoso', 40000, 'planned');
INSERT INTO tasks(project_id, title, done, priority, due_date) VALUES
    (1, 'Kick-off call', 1, 2, date('now', '-10 days')),
    (1, 'Set up staging', 0, 3, date('now', '+5 days')),
    (2, 'Import legacy data', 0, 4, date('now', '+20 days'));
INSERT INTO notes(customer_id, body) VALUES
    (1, 'Prefers email over phone.'), (3, 'Asked about the enterprise plan.');
