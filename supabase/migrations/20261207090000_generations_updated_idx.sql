-- huntflow: the loop of `tick --until-done` looks, after each tick, whether real work moved
-- (store/waits.py: progress_key). It read the latest updated_at of every evaluation row and of
-- every generation row (196 ms a tick at 1M evaluation rows); every evaluation write commits
-- with an update of a generation row of the same campaign, so the generations' latest
-- updated_at, per campaign from this index, says the same.

create index if not exists generations_campaign_updated_idx
  on hunt.generations (campaign_id, updated_at);
comment on index hunt.generations_campaign_updated_idx is 'The latest generation write per campaign (store/waits.py: progress_key) without scanning the history.';
