-- huntflow: what learn continues from, kept in a row so that a tick does not count the campaign's
-- trajectory rows (at 1M evaluations, 31 250 rows counted twice per tick: 8-11 ms, growing with
-- the hunt). learn writes it in the same transaction as the trajectory rows it records. It is
-- trusted only while last_generation_id is still the campaign's latest trajectory row (by
-- generation_index); otherwise (rows written by anything else, or none kept yet) learn counts
-- the rows once and keeps the counts from then on (huntflow/store/trajectories.py).

create table hunt.learn_states (
  campaign_id uuid primary key references hunt.campaigns (campaign_id) on delete cascade,
  trajectory_rows integer not null,
  stagnant integer not null,
  last_generation_id uuid not null,
  updated_at timestamptz not null default now()
);
comment on table hunt.learn_states is 'Per campaign, learn''s counts over its trajectory rows (rows, and rows after the last one that improved), written with the rows.';
comment on column hunt.learn_states.trajectory_rows is 'Trajectory rows of the campaign when last_generation_id''s row was the latest.';
comment on column hunt.learn_states.stagnant is 'Rows after the latest one whose improvement exceeded learn''s tolerance (an improvement of null does not count as one).';
comment on column hunt.learn_states.last_generation_id is 'The generation of the latest trajectory row (by generation_index) these counts include.';

alter table hunt.learn_states enable row level security;
create policy learn_states_service_role_all on hunt.learn_states for all to service_role using (true) with check (true);
create policy learn_states_authenticated_select on hunt.learn_states for select to authenticated using (true);
grant select, insert, update, delete on hunt.learn_states to service_role;
grant select on hunt.learn_states to authenticated;
