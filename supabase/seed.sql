-- Local development seed: nothing beyond the defaults the migrations insert into hunt.settings.
-- Campaigns are added with `huntflow campaign add examples/<spec>.yaml`.
select 1;
