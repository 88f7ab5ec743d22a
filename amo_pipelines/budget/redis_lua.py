"""The Lua scripts of :class:`~amo_pipelines.redis.RedisWindowStore`.

Each runs atomically on the server and reads the time with ``TIME``: every process and
machine then agrees on "now", whatever their own clocks say. Times are milliseconds
(fractional); numbers go back as strings, since Redis truncates Lua numbers to integers.

Keys of one account (state ``s``, fence ``e``, one sorted set per window) share the hash
tag ``{account}``, so a script touches one cluster slot. A window's sorted set holds one
member per grant, scored with the time until which it holds its place: pending grants
``now + lease + span`` (renewed by the heartbeat), answered ones ``answer + span``.
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
"""

_RECOVER = """
local function recover(f, fs, now, step, interval)
  if f < 1 then
    local steps = math.floor((now - fs) / interval + 1e-9)
    if steps > 0 then
      f = math.min(1, f + steps * step)
      fs = fs + steps * interval
    end
  end
  return f, fs
end
"""

# KEYS: state, fence, window...; ARGV: member, lease, step, interval, ttl, then per window
# limit and span.
ACQUIRE = (
    _NOW
    + _RECOVER
    + """
local lease, ttl = tonumber(ARGV[2]), math.ceil(tonumber(ARGV[5]))
local fence = redis.call('GET', KEYS[2])
if not fence then
  -- No record of the account: its first use, or its state was lost (restart, flush)
  -- while grants may have been pending. Nothing is granted for a lease and a span.
  local longest = 0
  for i = 3, #KEYS do longest = math.max(longest, tonumber(ARGV[5 + 2 * (i - 2)])) end
  fence = now + lease + longest
  redis.call('SET', KEYS[2], tostring(fence), 'PX', ttl)
else
  fence = tonumber(fence)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
if now < fence then return {'D', tostring(fence - now)} end
local st = redis.call('HMGET', KEYS[1], 'pu', 'bu', 'bn', 'f', 'fs')
if st[2] then
  local bu = tonumber(st[2])
  if bu < 0 then return {'B', '-1', st[3] or ''} end
  if now < bu then return {'B', tostring(bu - now), st[3] or ''} end
end
if st[1] and now < tonumber(st[1]) then return {'D', tostring(tonumber(st[1]) - now)} end
local f = tonumber(st[4] or '1')
if f < 1 then
  local fs
  f, fs = recover(f, tonumber(st[5]), now, tonumber(ARGV[3]), tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], 'f', tostring(f), 'fs', tostring(fs))
end
local blocking, wait = {}, 0
for i = 3, #KEYS do
  local limit = math.max(1, math.floor(tonumber(ARGV[4 + 2 * (i - 2)]) * f + 1e-9))
  local span = tonumber(ARGV[5 + 2 * (i - 2)])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local n = redis.call('ZCARD', KEYS[i])
  if n >= limit then
    -- The (n - limit)-th place to fall free lets one more in; a pending one frees a
    -- span after its answer at the earliest, so look again a span from now at most.
    local at = redis.call('ZRANGE', KEYS[i], n - limit, n - limit, 'WITHSCORES')
    wait = math.max(wait, math.min(tonumber(at[2]) - now, span))
    blocking[#blocking + 1] = tostring(i - 3)
  end
end
if #blocking > 0 then return {'D', tostring(wait), unpack(blocking)} end
for i = 3, #KEYS do
  local span = tonumber(ARGV[5 + 2 * (i - 2)])
  redis.call('ZADD', KEYS[i], now + lease + span, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], math.ceil(lease + span + 1000))
end
return {'G', tostring(now)}
"""
)

# KEYS: window...; ARGV: member, lease, mode ('done' | 'renew'), then per window its span.
SETTLE = (
    _NOW
    + """
local lease = tonumber(ARGV[2])
for i = 1, #KEYS do
  local span = tonumber(ARGV[3 + i])
  if ARGV[3] == 'done' then
    -- Answered now: the server saw it no later than now. Added even if it had expired.
    redis.call('ZADD', KEYS[i], now + span, ARGV[1])
  else
    redis.call('ZADD', KEYS[i], 'XX', 'GT', now + lease + span, ARGV[1])
  end
  redis.call('PEXPIRE', KEYS[i], math.ceil(lease + span + 1000))
end
return 1
"""
)

# KEYS: state; ARGV: pause, factor, minimum, step, interval, ttl.
NOTE_429 = (
    _NOW
    + _RECOVER
    + """
local st = redis.call('HMGET', KEYS[1], 'pu', 'f', 'fs', 'pa')
local pu = math.max(tonumber(st[1] or '-1'), now + tonumber(ARGV[1]))
local interval = tonumber(ARGV[5])
local f, fs = recover(tonumber(st[2] or '1'), tonumber(st[3] or '0'), now,
                      tonumber(ARGV[4]), interval)
local pa = tonumber(st[4] or '-1e18')
if now - pa >= interval then  -- one penalty per burst of 429s
  f = math.max(tonumber(ARGV[3]), f * tonumber(ARGV[2]))
  fs, pa = now, now
end
redis.call('HSET', KEYS[1], 'pu', tostring(pu), 'f', tostring(f), 'fs', tostring(fs),
           'pa', tostring(pa))
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[6])))
return 1
"""
)

# KEYS: state; ARGV: cooldown (negative: until cleared), note, ttl.
BLOCK = (
    _NOW
    + """
local cooldown = tonumber(ARGV[1])
local upto = cooldown < 0 and -1 or now + cooldown
redis.call('HSET', KEYS[1], 'bu', tostring(upto), 'bn', ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
return 1
"""
)
