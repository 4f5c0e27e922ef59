-- The outbox and the inbox are queues: every row is inserted, updated once soon after
-- (published_at, outcome) and then only read. At thousands of rows a second the default
-- autovacuum (after 20 % of the table changed) lets dead row versions pile up, and the
-- relay's scan for unpublished rows (outbox_pending) and the input position rows walk over
-- them: make bench saw the relay's pending query grow to 4-5 ms. Vacuum these tables after
-- a fixed number of changes instead, without the cost-based pause.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE processed_events SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE input_positions SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
