-- Verification answers the key's id beside its owner, so that usage can be
-- recorded per key without a second round trip.

drop function public.cloudgpt_verify_api_key(text, integer);

-- {"user_id": ..., "key_id": ...} for the key with this hash (null if none);
-- last_used_at is written only when older than p_touch_after_seconds, so a busy
-- key is not a write per request.
create function public.cloudgpt_verify_api_key(p_key_hash text, p_touch_after_seconds integer)
returns jsonb
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
  select jsonb_build_object('user_id', hit.user_id, 'key_id', hit.id) from hit
$$;

revoke execute on function public.cloudgpt_verify_api_key(text, integer) from public, anon, authenticated;
grant execute on function public.cloudgpt_verify_api_key(text, integer) to service_role;
