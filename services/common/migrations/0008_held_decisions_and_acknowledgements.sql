-- Routing: an s47 routing held by the hub's confirmation gate is on the queue, awaiting
-- practitioners (with its screening_decision clock), until police and children's social
-- care confirm it; routing_decisions.effect is then 'held' until the release ('routed').
ALTER TABLE queue_items
    ADD COLUMN awaiting_practitioners boolean NOT NULL DEFAULT false;
CREATE INDEX queue_items_awaiting_practitioners ON queue_items (hub)
    WHERE awaiting_practitioners AND status <> 'closed';

-- The acknowledge_referrer clocks still unmet: routing meets each one from the referrer's
-- automatic acknowledgement (feedback, kind 'acknowledgement') at the time it was issued.
-- Most are met when their item is routed; this keeps the scan over the rest small.
CREATE INDEX queue_item_deadlines_unacknowledged ON queue_item_deadlines (queue_item_id)
    WHERE deadline = 'acknowledge_referrer' AND met_at IS NULL;
