-- huntflow: review's reads stay flat as a campaign's history grows. A generation's verification
-- batches are found by the generation they verify (meta.verification.verifies) through an index
-- instead of a scan of every generation; the best objective told earlier at a rung (review's
-- incumbent) is one walk of an index in objective order instead of a read of every evaluation
-- row of the rung. Rows enter the partial index when they succeed (parse), not when planned.

create index if not exists generations_verifies_idx
  on hunt.generations ((meta -> 'verification' ->> 'verifies'))
  where kind = 'verification';
comment on index hunt.generations_verifies_idx is 'Finds the verification generations of a checked generation (store/verifications.py: of) without scanning the history.';

create index if not exists evaluations_rung_best_idx
  on hunt.evaluations (campaign_id, fidelity, objective)
  where status = 'succeeded' and feasible and objective is not null;
comment on index hunt.evaluations_rung_best_idx is 'The best feasible objective at a rung in one index walk (store/verifications.py: rung_before, review''s incumbent).';
