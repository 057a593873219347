"""Uploads announce their jobs, so that a burst of them needs one broker message, not one each.

An upload pushes its job's id onto a Redis list and sends `classify(id)` only when no message
is already on its way (a flag set with NX). The worker that runs a message takes up to a batch
of ids off the list and classifies their jobs with its own in one model call. With a message
per job, a worker handed the 15 companions' messages of every batch of 16 through Celery after
their jobs were done (about 3 ms each on an idle 2-core host: more than the rest of a job's
work), and every upload paid for publishing one.

What keeps every announced job moving: while the list holds ids, the flag is set and a message
is on its way to take them (a take that leaves ids behind also takes the next one and sends
its job a message; one that empties the list clears the flag, so the next upload sends one).
Each step is one atomic script, so an upload and a take cannot interleave inside one. Whatever escapes this (a process
killed between two steps, Redis lost) is a job left queued: an inference worker rebuilds the
list from the database as it starts (`reannounce`), and the stuck-job sweep sends any job left
behind again with a message of its own.
"""

import functools

from django.conf import settings

from imageclass.cache import redis_client

ANNOUNCED = "imageclass:classify:announced"
MESSAGE_ON_ITS_WAY = "imageclass:classify:message-on-its-way"
# A flag whose message was never sent (its sender died in between) holds back the uploads
# that follow for this long at most; a message still queued after it only gets a twin.
FLAG_LIFETIME = 10
LIST_LIFETIME = 3600  # the ids of an idle list are long handled, or swept

# KEYS: the list, the flag; ARGV: the job id, the two lifetimes. Returns 1 when the caller
# must send the message.
ANNOUNCE = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 1 end
return 0
"""
# KEYS: the list, the flag; ARGV: how many ids to take, the id of the taker's own job (off
# the list, wherever it is). Returns the id that the caller must send a message for, taken
# off the list too ('' when the list is empty, and the flag then cleared), then the ids taken.
TAKE = """
redis.call('LREM', KEYS[1], 1, ARGV[2])
local taken = {}
if tonumber(ARGV[1]) > 0 then taken = redis.call('LPOP', KEYS[1], ARGV[1]) or {} end
local next_id = redis.call('LPOP', KEYS[1]) or ''
if next_id == '' then redis.call('DEL', KEYS[2]) end
return {next_id, unpack(taken)}
"""


def script(source: str):
    return registered(settings.REDIS_URL, source)


@functools.cache
def registered(url: str, source: str):
    return redis_client(url).register_script(source)


def announce(pk) -> bool:
    """Put the job on the list; True when the caller must send its message (none is on its
    way), and then call `not_sent()` if sending fails."""
    return bool(
        script(ANNOUNCE)(
            keys=[ANNOUNCED, MESSAGE_ON_ITS_WAY], args=[str(pk), FLAG_LIFETIME, LIST_LIFETIME]
        )
    )


def not_sent():
    """The message announce() asked for could not be sent: let the next upload send one."""
    redis_client(settings.REDIS_URL).delete(MESSAGE_ON_ITS_WAY)


def reannounce(pks) -> str:
    """Make the list `pks` (oldest first) in one transaction, dropping what it held and the
    flag: a worker starting after a crash or a lost Redis rebuilds it from the database. Returns
    the id the caller must send a message for ('' when there is none)."""
    with redis_client(settings.REDIS_URL).pipeline() as pipe:
        pipe.delete(ANNOUNCED, MESSAGE_ON_ITS_WAY)
        for start in range(0, len(pks), 1000):
            pipe.rpush(ANNOUNCED, *pks[start : start + 1000])
        if pks:
            pipe.expire(ANNOUNCED, LIST_LIFETIME).set(MESSAGE_ON_ITS_WAY, 1, ex=FLAG_LIFETIME)
        pipe.execute()
    return str(pks[0]) if pks else ""


def take(limit: int, own_pk) -> tuple[list[str], str]:
    """Up to `limit` announced ids, oldest first, besides `own_pk` (the caller's own job, which
    its message brought), and the id of the next one ('' when there is none): the caller must
    send that job its message, which then takes the ids after it."""
    next_id, *taken = script(TAKE)(keys=[ANNOUNCED, MESSAGE_ON_ITS_WAY], args=[limit, str(own_pk)])
    return [pk.decode() for pk in taken], next_id.decode()
