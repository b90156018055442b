-- huntflow: a stage may run twice in one tick for one campaign. When evolve plans a promotion
-- or certification (or review clears one after this tick's dispatch ran), the tick runs review
-- and dispatch a second time after evolve (flows/tick.py: _campaign_stages), so the promotion
-- is verified and launched in the tick that asked it instead of two ticks later; each pass is
-- a task run of its own, and a row of its own here: (tick, campaign, stage, pass).

alter table hunt.stage_runs add column if not exists pass smallint not null default 1;
comment on column hunt.stage_runs.pass is 'Which run of the stage in its tick (1; 2: the promotion pass of review and dispatch after evolve, flows/tick.py).';
alter table hunt.stage_runs drop constraint if exists stage_runs_tick_id_campaign_id_stage_key;
do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'stage_runs_tick_campaign_stage_pass_key') then
    alter table hunt.stage_runs add constraint stage_runs_tick_campaign_stage_pass_key
      unique (tick_id, campaign_id, stage, pass);
  end if;
end $$;
