-- huntflow: a stage-run row names the lease owner of the tick that wrote it. A loop that keeps
-- one lease owner across its ticks (tick --until-done, the demo: owner 'loop:<id>', so that the
-- inline generations it runs on its executor outlive the tick that launched them) holds its
-- campaigns under that owner, not under 'tick:<tick id>'; discover's reaper closes a running row
-- as crashed when its campaign is no longer leased by the row's owner (null: 'tick:<tick id>',
-- the rows written before this migration and by one-shot ticks).

alter table hunt.stage_runs add column if not exists owner text;
comment on column hunt.stage_runs.owner is 'Lease owner of the tick that wrote the row (null: tick:<tick_id>); the reaper (store/stage_runs.py: reap_orphans) checks it holds the campaign.';
