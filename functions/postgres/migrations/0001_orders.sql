-- Trade orders as the order consumer applies them: one row per order id, written once.
-- The columns after acknowledged_at are evidence: who applied the order, when, under which
-- writer epoch, from which SQS message.
CREATE TABLE orders (
    order_id        text           PRIMARY KEY,
    account         text           NOT NULL,
    instrument      text           NOT NULL,
    side            text           NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity        bigint         NOT NULL CHECK (quantity > 0),
    price           numeric(18, 6) NOT NULL CHECK (price > 0),
    submitted_at    timestamptz    NOT NULL,
    acknowledged_at timestamptz    NOT NULL CHECK (acknowledged_at >= submitted_at),
    -- sha256 of the order's content: a redelivery matches it, a reused order id does not.
    fingerprint     text           NOT NULL,
    applied_at      timestamptz    NOT NULL DEFAULT clock_timestamp(),
    applied_region  text           NOT NULL,
    applied_epoch   bigint         NOT NULL CHECK (applied_epoch > 0),
    message_id      text           NOT NULL
);

-- "Orders applied since the failover" and "first order applied" for the timeline.
CREATE INDEX orders_applied_at ON orders (applied_at);
