-- Sample rows `tenantd demo` puts in every demo tenant it creates (demo_seed_sql).
INSERT INTO projects(name, status) VALUES
    ('Website relaunch', 'active'), ('Quarterly report', 'active'), ('Old intranet', 'archived');
INSERT INTO documents(project_id, title, body, status) VALUES
    (1, 'Launch plan', 'Milestones, owners and the go-live checklist.', 'published'),
    (1, 'Copy for the home page', 'First draft of the hero text.', 'draft'),
    (2, 'Q3 numbers', 'Revenue, churn and the pipeline.', 'draft'),
    (3, 'Migration notes', 'What moved where.', 'published');
INSERT INTO comments(document_id, author, body) VALUES
    (1, 'Ada', 'Can we move the launch a week earlier?'),
    (1, 'Grace', 'Only if QA signs off by Friday.'),
    (3, 'Alan', 'Churn looks better than last quarter.');
