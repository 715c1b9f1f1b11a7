-- The writer lease, enforced on the database's own clock (see switchyard_core::epoch).
-- The consumer sets switchyard.lease_deadline for its transaction (set_config, local) just
-- before the strong read of the claim that allows its commit. The check runs at COMMIT (a
-- deferred constraint trigger), so a COMMIT held up by the network past the deadline is
-- refused, and so is an insert of orders without a deadline: orders are applied only under
-- a lease. Rows that ON CONFLICT skipped insert nothing and are not checked.
CREATE FUNCTION switchyard_check_writer_lease() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    deadline text := current_setting('switchyard.lease_deadline', true);
BEGIN
    IF deadline IS NULL OR deadline = '' THEN
        RAISE EXCEPTION 'orders are applied only under a writer lease: no commit deadline set'
            USING ERRCODE = 'SYL01';
    END IF;
    IF clock_timestamp() >= deadline::timestamptz THEN
        RAISE EXCEPTION 'the writer lease lapsed: commit at % after the deadline %', clock_timestamp(), deadline
            USING ERRCODE = 'SYL02';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER orders_within_writer_lease
    AFTER INSERT ON orders
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION switchyard_check_writer_lease();
