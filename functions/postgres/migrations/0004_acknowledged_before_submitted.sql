-- submitted_at is the client's clock and acknowledged_at the order API's: a client whose
-- clock runs ahead sends an order acknowledged "before" it was submitted. It is
-- acknowledged, so it is applied; refusing it here failed its whole batch on every
-- redelivery (#18). The two times stay as evidence, in no required order.
-- Migration 1 left the check unnamed (PostgreSQL chose the name): find it by its definition.
DO $$
DECLARE
    name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
     WHERE conrelid = 'orders'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%acknowledged_at >= submitted_at%';
    IF name IS NULL THEN
        -- Already gone (dropped by hand): nothing to do.
        RAISE NOTICE 'orders has no check of acknowledged_at >= submitted_at: nothing to drop';
    ELSE
        EXECUTE format('ALTER TABLE orders DROP CONSTRAINT %I', name);
    END IF;
END $$;
