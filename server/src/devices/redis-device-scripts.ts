/*
 * Lua scripts of the Redis device directory: each event is one atomic script, O(1) (assign and
 * release cost the round's size, purge the dead process's devices). ARGV[1] is always the key
 * prefix (redis-keys.ts has the layout); key names are built inside, so one Redis serves it all.
 */

const PREFIX = `local p = ARGV[1]
local function dkey(id) return p .. 'device:' .. id end
local function forget(id, proc, round)
  redis.call('DEL', dkey(id))
  redis.call('SREM', p .. 'connected', id)
  redis.call('SREM', p .. 'eligible', id)
  redis.call('SREM', p .. 'available', id)
  redis.call('SREM', p .. 'inround', id)
  if proc then redis.call('SREM', p .. 'process:' .. proc .. ':devices', id) end
  if round and round ~= '' then redis.call('SREM', p .. 'round:' .. round .. ':members', id) end
end
`;

/** ARGV: prefix, clientId, socketId, processId, address, userKey ('' for none). Returns the replaced socket id, or false. */
export const CONNECT = `${PREFIX}
local id, sock, proc = ARGV[2], ARGV[3], ARGV[4]
local prev = redis.call('HMGET', dkey(id), 'socket', 'process', 'round')
local round = prev[3] or ''
if prev[2] and prev[2] ~= proc then redis.call('SREM', p .. 'process:' .. prev[2] .. ':devices', id) end
redis.call('HSET', dkey(id), 'socket', sock, 'process', proc, 'address', ARGV[5], 'user', ARGV[6], 'eligible', '0', 'round', round)
redis.call('SADD', p .. 'connected', id)
redis.call('SREM', p .. 'eligible', id)
redis.call('SREM', p .. 'available', id)
redis.call('SADD', p .. 'process:' .. proc .. ':devices', id)
if prev[1] and prev[1] ~= sock then return prev[1] end
return false`;

/** ARGV: prefix, clientId, socketId. Returns 1 when the device was forgotten, 0 when it has since reconnected elsewhere. */
export const DISCONNECT = `${PREFIX}
local id, sock = ARGV[2], ARGV[3]
local cur = redis.call('HMGET', dkey(id), 'socket', 'process', 'round')
if cur[1] ~= sock then return 0 end
forget(id, cur[2], cur[3])
return 1`;

/** ARGV: prefix, clientId, eligible ('1'/'0'). Returns 1 when the device became available. */
export const SET_CONDITIONS = `${PREFIX}
local id, now = ARGV[2], ARGV[3] == '1'
local cur = redis.call('HMGET', dkey(id), 'eligible', 'round')
if not cur[1] then return 0 end
local was, inround = cur[1] == '1', cur[2] ~= ''
redis.call('HSET', dkey(id), 'eligible', ARGV[3])
if now then
  redis.call('SADD', p .. 'eligible', id)
  if not inround then redis.call('SADD', p .. 'available', id) end
else
  redis.call('SREM', p .. 'eligible', id)
  redis.call('SREM', p .. 'available', id)
end
if now and not was and not inround then return 1 end
return 0`;

/** ARGV: prefix, roundId, clientIds... */
export const ASSIGN = `${PREFIX}
local rid = ARGV[2]
for i = 3, #ARGV do
  local id = ARGV[i]
  local old = redis.call('HGET', dkey(id), 'round')
  if old then
    if old ~= '' and old ~= rid then redis.call('SREM', p .. 'round:' .. old .. ':members', id) end
    redis.call('HSET', dkey(id), 'round', rid)
    redis.call('SREM', p .. 'available', id)
    redis.call('SADD', p .. 'inround', id)
    redis.call('SADD', p .. 'round:' .. rid .. ':members', id)
  end
end
return 0`;

/** ARGV: prefix, roundId. Returns how many released devices are available again. */
export const RELEASE = `${PREFIX}
local rid = ARGV[2]
local released = 0
for _, id in ipairs(redis.call('SMEMBERS', p .. 'round:' .. rid .. ':members')) do
  local cur = redis.call('HMGET', dkey(id), 'round', 'eligible')
  if cur[1] == rid then
    redis.call('HSET', dkey(id), 'round', '')
    redis.call('SREM', p .. 'inround', id)
    if cur[2] == '1' then
      redis.call('SADD', p .. 'available', id)
      released = released + 1
    end
  end
end
redis.call('DEL', p .. 'round:' .. rid .. ':members')
return released`;

/** ARGV: prefix, processId. Forgets every device the (dead) process held; returns their ids. */
export const PURGE_PROCESS = `${PREFIX}
local proc = ARGV[2]
local purged = {}
for _, id in ipairs(redis.call('SMEMBERS', p .. 'process:' .. proc .. ':devices')) do
  local cur = redis.call('HMGET', dkey(id), 'process', 'round')
  if cur[1] == proc then
    forget(id, cur[1], cur[2])
    table.insert(purged, id)
  end
end
redis.call('DEL', p .. 'process:' .. proc .. ':devices')
return purged`;
