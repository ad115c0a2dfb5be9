"""Server-side Lua for the Redis store: each script runs atomically, so concurrent writers in any
number of processes never interleave inside an update.

Layout: one hash per model at `<ns>:profile:<name>:<version>` (fields = ModelProfile fields) and a set
`<ns>:models` of those hash keys. Floats are written with %.17g so a double survives the round trip
through Redis' strings bit for bit; the EWMA is the same expression, in the same order, as
modipick.core.profiles.ewma_step, hence Lua and Python agree exactly.
"""

LOAD_ALL = """
local out = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HGETALL', key)
  if #fields > 0 then out[#out + 1] = fields end
end
return out
"""

# KEYS: profile, index. ARGV: declared_accuracy, state, name, version, mean_ms, var_ms2, samples,
# updated_at, correct, served, input_size. An existing profile keeps what it has learned.
REGISTER = """
redis.call('SADD', KEYS[2], KEYS[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'declared_accuracy', ARGV[1], 'state', ARGV[2])
  if ARGV[11] ~= '0' then  -- 0: not said, the input size known stays
    redis.call('HSET', KEYS[1], 'input_size', ARGV[11])
  end
  return 0
end
redis.call('HSET', KEYS[1], 'declared_accuracy', ARGV[1], 'state', ARGV[2], 'name', ARGV[3],
  'version', ARGV[4], 'mean_ms', ARGV[5], 'var_ms2', ARGV[6], 'samples', ARGV[7],
  'updated_at', ARGV[8], 'correct', ARGV[9], 'served', ARGV[10], 'input_size', ARGV[11])
return 1
"""

# KEYS: profile, index.
DEREGISTER = """
redis.call('SREM', KEYS[2], KEYS[1])
return redis.call('DEL', KEYS[1])
"""

# KEYS: the distinct profiles of the batch. ARGV: alpha, now, then (1-based index into KEYS, ms) pairs
# in arrival order. Each hash is read once and written once per batch.
OBSERVE_MANY = """
local function ewma(mean, var, samples, x, alpha)
  if samples <= 0 then return x, 0.0 end
  local delta = x - mean
  return mean + alpha * delta, (1.0 - alpha) * (var + alpha * delta * delta)
end
local alpha = tonumber(ARGV[1])
local profiles = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'mean_ms', 'var_ms2', 'samples')
  if v[3] then profiles[i] = {tonumber(v[1]), tonumber(v[2]), tonumber(v[3]), 0} end
end
local accepted = 0
for j = 3, #ARGV, 2 do
  local p = profiles[tonumber(ARGV[j])]
  if p then
    p[1], p[2] = ewma(p[1], p[2], p[3], tonumber(ARGV[j + 1]), alpha)
    p[3] = p[3] + 1
    p[4] = p[4] + 1
    accepted = accepted + 1
  end
end
for i, p in pairs(profiles) do
  if p[4] > 0 then
    redis.call('HSET', KEYS[i], 'mean_ms', string.format('%.17g', p[1]), 'var_ms2',
      string.format('%.17g', p[2]), 'samples', string.format('%d', p[3]), 'updated_at', ARGV[2])
  end
end
return accepted
"""

# KEYS: profile. ARGV: 1 if correct else 0.
RECORD_OUTCOME = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'correct', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'served', 1)
return 1
"""

# KEYS: profile. ARGV: mean_ms, var_ms2, updated_at. The sample count stays (at least 1).
RESEED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'mean_ms', ARGV[1], 'var_ms2', ARGV[2], 'updated_at', ARGV[3])
if (tonumber(redis.call('HGET', KEYS[1], 'samples')) or 0) < 1 then
  redis.call('HSET', KEYS[1], 'samples', '1')
end
return 1
"""

# KEYS: profile. ARGV: state.
SET_STATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
return 1
"""

# KEYS: the return-leg stream. ARGV: keep (approximate MAXLEN), then per sample client, upload_ms,
# return_ms, basis_ms ('' for none), owner. One script: a batch lands contiguously, in order.
APPEND_RETURN_LEGS = """
local keep = ARGV[1]
local n = 0
for j = 2, #ARGV, 5 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', keep, '*', 'c', ARGV[j], 'u', ARGV[j + 1], 'r', ARGV[j + 2],
    'b', ARGV[j + 3], 'o', ARGV[j + 4])
  n = n + 1
end
return n
"""
