-- huntflow: the fold of a campaign's told generations, kept in a row so that evolve's mode
-- replay and learn read only the generations after it (a tick's cost stays flat however long
-- the hunt runs). evolve writes it in the same transaction as its tell (write-ahead: a crash
-- before the commit leaves the old fold, so the same mode is replayed). It covers every
-- generation with ask_id <= ask_id, all of them settled (told, or failed and told as failures,
-- with their summary row), whose numbers can no longer change.

create table hunt.campaign_folds (
  campaign_id uuid primary key references hunt.campaigns (campaign_id) on delete cascade,
  ask_id integer not null,
  state jsonb not null,
  previous jsonb,
  updated_at timestamptz not null default now()
);
comment on table hunt.campaign_folds is 'Per campaign, the mode replay folded over its settled generations up to ask_id (bests, used, target hits, told count, stagnation, mode), written with evolve''s tell.';
comment on column hunt.campaign_folds.ask_id is 'Every non-verification generation with ask_id <= this is settled and folded into state.';
comment on column hunt.campaign_folds.state is 'The fold through ask_id: best_top, best_top_gen, best_any, best_any_gen, used, hits, told, prev_best, stagnant, mode, ask_id.';
comment on column hunt.campaign_folds.previous is 'The fold before the last advance (learn, right after evolve, continues from it), or null.';

alter table hunt.campaign_folds enable row level security;
create policy campaign_folds_service_role_all on hunt.campaign_folds for all to service_role using (true) with check (true);
create policy campaign_folds_authenticated_select on hunt.campaign_folds for select to authenticated using (true);
grant select, insert, update, delete on hunt.campaign_folds to service_role;
grant select on hunt.campaign_folds to authenticated;
