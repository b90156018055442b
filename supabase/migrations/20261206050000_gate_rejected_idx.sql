-- huntflow: poison's clean-tick check stays flat as a campaign's history grows. Its "last
-- finished generations" skip those a person rejected at a gate (an evaluation with failure
-- category gate_rejected); with the count of generations read from hunt.settings in the same
-- statement the planner does not know the limit and anti-joined a sequential scan of every
-- evaluation row (129 ms a tick at 1M rows). Gate rejections are few: a partial index of them
-- makes that anti-join a probe of a near-empty index.

create index if not exists evaluations_gate_rejected_idx
  on hunt.evaluations (generation_id)
  where failure_category = 'gate_rejected';
comment on index hunt.evaluations_gate_rejected_idx is 'Gate-rejected evaluations by generation (tasks/poison.py: the last finished generations) without scanning the history.';
