-- Input order: per service and input partition, the next offset the service may apply.
-- Checked and moved in the same transaction as each effect (or dead letter), under a row
-- lock, so a partition's events are applied in offset order even when a rebalance lets
-- two workers, or a re-fetch, hand them over out of order (see services/common/order.py).
CREATE TABLE input_positions (
    service     text    NOT NULL,
    topic       text    NOT NULL,
    "partition" integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (service, topic, "partition")
);
