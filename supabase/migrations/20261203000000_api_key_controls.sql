-- API keys carry controls: an expiry, a disabled switch, the models they may call,
-- per-minute limits of their own, and a daily or monthly quota. Every change raises
-- `version`, which the gateway's instances compare with a marker in Upstash to learn
-- of it within a second. Keys created before this migration have no controls and
-- keep working as they did. The functions of the earlier migrations stay as they
-- were (a deployment from before this one still works against this schema).

alter table public.api_keys
  add column expires_at timestamptz,
  add column disabled boolean not null default false,
  add column models text[]
    check (models is null or (cardinality(models) between 1 and 100 and array_position(models, null) is null)),
  add column limit_chat integer check (limit_chat > 0),
  add column limit_image integer check (limit_image > 0),
  add column limit_video integer check (limit_video > 0),
  add column quota_period text check (quota_period in ('day', 'month')),
  add column quota_requests bigint check (quota_requests > 0),
  add column quota_tokens bigint check (quota_tokens > 0),
  add column version bigint not null default 1,
  add constraint api_keys_quota_whole check (
    (quota_period is null) = (quota_requests is null and quota_tokens is null)
  );

-- A key in the flat shape the functions below answer (never its hash).
create function public.cloudgpt_api_key_fields(k public.api_keys)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'id', k.id, 'name', k.name, 'prefix', k.prefix,
    'created', floor(extract(epoch from k.created_at))::bigint,
    'last_used', floor(extract(epoch from k.last_used_at))::bigint,
    'expires', floor(extract(epoch from k.expires_at))::bigint,
    'disabled', k.disabled, 'models', to_jsonb(k.models),
    'limit_chat', k.limit_chat, 'limit_image', k.limit_image, 'limit_video', k.limit_video,
    'quota_period', k.quota_period, 'quota_requests', k.quota_requests,
    'quota_tokens', k.quota_tokens, 'version', k.version
  )
$$;

-- The catalog ids of a JSON array, or null for anything else (JSON null: all models).
create function public.cloudgpt_models(p_models jsonb)
returns text[]
language sql
immutable
set search_path = ''
as $$
  select case when jsonb_typeof(p_models) = 'array'
    then array(select jsonb_array_elements_text(p_models)) end
$$;

-- Create a key with its controls (p_controls: the flat fields, any of them) unless the
-- user already has p_max_keys; its creation time (Unix seconds).
create function public.cloudgpt_create_api_key(
  p_id text, p_user_id uuid, p_name text, p_prefix text, p_key_hash text, p_max_keys integer,
  p_controls jsonb
) returns bigint
language plpgsql
set search_path = ''
as $$
declare
  created timestamptz;
begin
  -- One creation per user at a time: concurrent requests cannot pass the cap together.
  perform pg_advisory_xact_lock(hashtextextended('cloudgpt_api_keys:' || p_user_id::text, 0));
  if (select count(*) from public.api_keys where user_id = p_user_id) >= p_max_keys then
    raise exception 'api_key_limit_reached'
      using errcode = 'P0001', detail = format('a user can have at most %s API keys', p_max_keys);
  end if;
  insert into public.api_keys (
    id, user_id, name, prefix, key_hash, expires_at, disabled, models,
    limit_chat, limit_image, limit_video, quota_period, quota_requests, quota_tokens
  ) values (
    p_id, p_user_id, p_name, p_prefix, p_key_hash,
    to_timestamp((p_controls ->> 'expires')::bigint),
    coalesce((p_controls ->> 'disabled')::boolean, false),
    public.cloudgpt_models(p_controls -> 'models'),
    (p_controls ->> 'limit_chat')::integer, (p_controls ->> 'limit_image')::integer,
    (p_controls ->> 'limit_video')::integer, p_controls ->> 'quota_period',
    (p_controls ->> 'quota_requests')::bigint, (p_controls ->> 'quota_tokens')::bigint
  )
  returning created_at into created;
  return floor(extract(epoch from created))::bigint;
end
$$;

-- The user's keys with their controls, newest first, never their hashes. Each row
-- still has the columns the earlier version answered (id, name, prefix, created, last_used).
drop function public.cloudgpt_list_api_keys(uuid);
create function public.cloudgpt_list_api_keys(p_user_id uuid)
returns setof jsonb
language sql
stable
set search_path = ''
as $$
  select public.cloudgpt_api_key_fields(k)
  from public.api_keys k
  where k.user_id = p_user_id
  order by k.created_at desc, k.id desc
$$;

-- Change the user's key: each flat field present in p_changes is set (JSON null
-- clears it), the others are left, and the version rises. The key, or null when
-- the user has no key with this id.
create function public.cloudgpt_update_api_key(p_user_id uuid, p_id text, p_changes jsonb)
returns jsonb
language sql
set search_path = ''
as $$
  update public.api_keys k set
    name = case when p_changes ? 'name' then p_changes ->> 'name' else k.name end,
    expires_at = case when p_changes ? 'expires'
      then to_timestamp((p_changes ->> 'expires')::bigint) else k.expires_at end,
    disabled = case when p_changes ? 'disabled' then (p_changes ->> 'disabled')::boolean else k.disabled end,
    models = case when p_changes ? 'models' then public.cloudgpt_models(p_changes -> 'models') else k.models end,
    limit_chat = case when p_changes ? 'limit_chat'
      then (p_changes ->> 'limit_chat')::integer else k.limit_chat end,
    limit_image = case when p_changes ? 'limit_image'
      then (p_changes ->> 'limit_image')::integer else k.limit_image end,
    limit_video = case when p_changes ? 'limit_video'
      then (p_changes ->> 'limit_video')::integer else k.limit_video end,
    quota_period = case when p_changes ? 'quota_period' then p_changes ->> 'quota_period' else k.quota_period end,
    quota_requests = case when p_changes ? 'quota_requests'
      then (p_changes ->> 'quota_requests')::bigint else k.quota_requests end,
    quota_tokens = case when p_changes ? 'quota_tokens'
      then (p_changes ->> 'quota_tokens')::bigint else k.quota_tokens end,
    version = k.version + 1
  where k.id = p_id and k.user_id = p_user_id
  returning public.cloudgpt_api_key_fields(k)
$$;

-- The key with this hash in the flat shape plus its owner's `user_id` (null if
-- none); last_used_at is written only when older than p_touch_after_seconds.
create function public.cloudgpt_verify_api_key_with_controls(p_key_hash text, p_touch_after_seconds integer)
returns jsonb
language sql
set search_path = ''
as $$
  with hit as (
    select k from public.api_keys k where k.key_hash = p_key_hash
  ), touched as (
    update public.api_keys k set last_used_at = now()
    from hit
    where k.id = (hit.k).id
      and ((hit.k).last_used_at is null
           or (hit.k).last_used_at <= now() - make_interval(secs => p_touch_after_seconds))
    returning k.id
  )
  select public.cloudgpt_api_key_fields(hit.k) || jsonb_build_object('user_id', (hit.k).user_id) from hit
$$;

revoke execute on function
  public.cloudgpt_api_key_fields(public.api_keys),
  public.cloudgpt_models(jsonb),
  public.cloudgpt_create_api_key(text, uuid, text, text, text, integer, jsonb),
  public.cloudgpt_list_api_keys(uuid),
  public.cloudgpt_update_api_key(uuid, text, jsonb),
  public.cloudgpt_verify_api_key_with_controls(text, integer)
from public, anon, authenticated;

grant execute on function
  public.cloudgpt_api_key_fields(public.api_keys),
  public.cloudgpt_models(jsonb),
  public.cloudgpt_create_api_key(text, uuid, text, text, text, integer, jsonb),
  public.cloudgpt_list_api_keys(uuid),
  public.cloudgpt_update_api_key(uuid, text, jsonb),
  public.cloudgpt_verify_api_key_with_controls(text, integer)
to service_role;
