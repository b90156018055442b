-- huntflow: per-generation summaries, so a tick's cost does not grow with a campaign's history.
-- evolve writes one row per generation it tells, in the same transaction as the tell; learn and
-- evolve's mode replay read these rows (one per generation) instead of every evaluation row.
-- Generations without a row (in flight, cancelled, or told before this migration) are
-- summarised from their evaluation rows when read, so the numbers are the same either way.

create table hunt.generation_summaries (
  generation_id uuid primary key references hunt.generations (generation_id) on delete cascade,
  campaign_id uuid not null references hunt.campaigns (campaign_id) on delete cascade,
  ask_id integer not null,
  fidelity integer not null,
  evaluations integer not null,
  used integer not null,
  feasible integer not null,
  best_min double precision,
  best_max double precision,
  target_hits integer not null default 0,
  told_at timestamptz not null default now()
);
comment on table hunt.generation_summaries is 'One told generation in numbers: evaluations, non-pending (used), feasible, and the best feasible succeeded objective (min and max), written with the tell.';
comment on column hunt.generation_summaries.used is 'Evaluations that are not pending (they count against the budget).';
comment on column hunt.generation_summaries.best_min is 'Smallest objective among feasible succeeded evaluations (the best when minimizing).';
comment on column hunt.generation_summaries.best_max is 'Largest objective among feasible succeeded evaluations (the best when maximizing).';
comment on column hunt.generation_summaries.target_hits is 'Feasible succeeded evaluations meeting every objective target of the spec (0 without targets).';
create index generation_summaries_campaign_idx on hunt.generation_summaries (campaign_id, ask_id);

alter table hunt.generation_summaries enable row level security;
create policy generation_summaries_service_role_all on hunt.generation_summaries for all to service_role using (true) with check (true);
create policy generation_summaries_authenticated_select on hunt.generation_summaries for select to authenticated using (true);
grant select, insert, update, delete on hunt.generation_summaries to service_role;
grant select on hunt.generation_summaries to authenticated;

-- only the latest few generations keep a copy of the optimizer checkpoint (resume reads the
-- campaign's own); this index finds the copies to drop without scanning the history
create index generations_checkpoint_idx on hunt.generations (campaign_id, generation_index)
  where optimizer_checkpoint is not null;
comment on column hunt.generations.optimizer_checkpoint is 'The optimizer checkpoint taken after this ask; kept on the latest generations only (hunt.campaigns.optimizer_state is what resume reads).';
