#!lua
-- Replay logged events (delivered ones too): a copy of each goes back into
-- the stream, attempts reset, addressed to one destination ('to'; the
-- others skip it) or, without one, to every destination whose filter
-- wants it. The original stays in the log as it was.
-- KEYS[1] stream, KEYS[2] its ids list; ARGV[1] destination ('' = all), ARGV[2..] entry ids
-- Returns, per id in order, the copy's entry id, or false if that entry
-- is no longer in the log.
local out = {}
for n = 2, #ARGV do
  local id = ARGV[n]
  local entry = redis.call('XRANGE', KEYS[1], id, id)
  if #entry == 0 then
    out[n - 1] = false
  else
    local src = entry[1][2]
    local fields = stored_fields(src)
    local of = nil
    for i = 1, #src, 2 do if src[i] == 'of' then of = src[i + 1] end end
    if not of then
      fields[#fields + 1] = 'of'
      fields[#fields + 1] = id
    end
    if ARGV[1] ~= '' then
      fields[#fields + 1] = 'to'
      fields[#fields + 1] = ARGV[1]
    end
    out[n - 1] = append_entry(KEYS[1], KEYS[2], fields)
  end
end
return out
