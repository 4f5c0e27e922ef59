-- Routing (DOMAIN.md "Per child", "Identity and history"):
-- * a sibling of a level-4 child in the same contact (R3-SIBLING) joins that child's
--   strategy discussion: its item names the s47 item of the same decision, and takes the
--   discussion's strategy_outcome when the discussion is recorded as held;
-- * a child with an open early-help case and a level-3 concern steps up to assessment: a
--   new initial-assessment item, marked step_up.
ALTER TABLE queue_items
    ADD COLUMN joins_strategy_discussion_of text REFERENCES queue_items (queue_item_id),
    ADD COLUMN step_up boolean NOT NULL DEFAULT false;

-- What a recorded strategy discussion looks up: the items that join it.
CREATE INDEX queue_items_joins_strategy_discussion ON queue_items (joins_strategy_discussion_of)
    WHERE joins_strategy_discussion_of IS NOT NULL;
