-- huntflow: hunt.expect(ok, message) — a check inside a statement, so that a transaction whose
-- statements go to the server together (a psycopg pipeline: BEGIN, the writes, COMMIT in one
-- round trip) can still refuse to commit when a precondition does not hold.
--
-- evolve's commit (store/generations.py: commit_evolve) compare-and-sets the campaign's
-- optimizer_seq and moves its told generations from 'reviewed'; review's completion
-- (store/verifications.py: complete) moves its generation from 'parsed'. Each of those
-- statements ends in `select hunt.expect(<it matched>, <why not>)`: when it did not match the
-- function raises SQLSTATE HF412, the server skips the rest of the pipeline and the transaction
-- is rolled back — nothing of it is written — and the client turns HF412 into StaleTransition.

create or replace function hunt.expect(ok boolean, message text) returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if ok is not true then
    raise exception using errcode = 'HF412', message = message;
  end if;
  return true;
end
$$;
comment on function hunt.expect(boolean, text) is 'True when ok is; else raises SQLSTATE HF412 with the message (a stale precondition: the writing transaction is rolled back).';
