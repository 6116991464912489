-- CloudGPT API keys: only SHA-256 hashes are stored; every operation is one SQL
-- function, executable by service_role only. Row-level security is on with no
-- policy, so anon and authenticated can read nothing even if granted the table.

create table public.api_keys (
  id text primary key check (id ~ '^key_[A-Za-z0-9]{20}$'),
  user_id uuid not null references auth.users (id) on delete cascade,
  name text not null check (char_length(name) between 1 and 100),
  prefix text not null,
  key_hash text not null unique check (key_hash ~ '^[0-9a-f]{64}$'),
  created_at timestamptz not null default now(),
  last_used_at timestamptz
);

create index api_keys_user_created on public.api_keys (user_id, created_at desc);

alter table public.api_keys enable row level security;
revoke all on table public.api_keys from public, anon, authenticated;
grant select, insert, update, delete on table public.api_keys to service_role;

-- Create a key unless the user already has p_max_keys; its creation time (Unix seconds).
create function public.cloudgpt_create_api_key(
  p_id text, p_user_id uuid, p_name text, p_prefix text, p_key_hash text, p_max_keys integer
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
  insert into public.api_keys (id, user_id, name, prefix, key_hash)
  values (p_id, p_user_id, p_name, p_prefix, p_key_hash)
  returning created_at into created;
  return floor(extract(epoch from created))::bigint;
end
$$;

-- The user's keys, newest first, never their hashes.
create function public.cloudgpt_list_api_keys(p_user_id uuid)
returns table (id text, name text, prefix text, created bigint, last_used bigint)
language sql
stable
set search_path = ''
as $$
  select k.id, k.name, k.prefix,
         floor(extract(epoch from k.created_at))::bigint,
         floor(extract(epoch from k.last_used_at))::bigint
  from public.api_keys k
  where k.user_id = p_user_id
  order by k.created_at desc, k.id desc
$$;

-- Delete the user's key; false when the user has no key with this id.
create function public.cloudgpt_delete_api_key(p_user_id uuid, p_id text)
returns boolean
language sql
set search_path = ''
as $$
  with deleted as (
    delete from public.api_keys k where k.id = p_id and k.user_id = p_user_id returning 1
  )
  select exists (select 1 from deleted)
$$;

-- The owner of the key with this hash (null if none); last_used_at is written only
-- when older than p_touch_after_seconds, so a busy key is not a write per request.
create function public.cloudgpt_verify_api_key(p_key_hash text, p_touch_after_seconds integer)
returns uuid
language sql
set search_path = ''
as $$
  with hit as (
    select k.id, k.user_id, k.last_used_at from public.api_keys k where k.key_hash = p_key_hash
  ), touched as (
    update public.api_keys k set last_used_at = now()
    from hit
    where k.id = hit.id
      and (hit.last_used_at is null
           or hit.last_used_at <= now() - make_interval(secs => p_touch_after_seconds))
    returning k.id
  )
  select hit.user_id from hit
$$;

revoke execute on function
  public.cloudgpt_create_api_key(text, uuid, text, text, text, integer),
  public.cloudgpt_list_api_keys(uuid),
  public.cloudgpt_delete_api_key(uuid, text),
  public.cloudgpt_verify_api_key(text, integer)
from public, anon, authenticated;

grant execute on function
  public.cloudgpt_create_api_key(text, uuid, text, text, text, integer),
  public.cloudgpt_list_api_keys(uuid),
  public.cloudgpt_delete_api_key(uuid, text),
  public.cloudgpt_verify_api_key(text, integer)
to service_role;
