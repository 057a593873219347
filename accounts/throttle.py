"""Login throttling in layers, counted in Redis, so that nobody can lock anybody else out.

- Per (account, address) pair: after LOGIN_FAILURE_LIMIT failures within LOGIN_LOCKOUT_SECONDS
  that pair alone is locked, first for LOGIN_PAIR_LOCK_SECONDS, doubling with every further
  failure up to LOGIN_LOCKOUT_SECONDS. The owner elsewhere, and others at that address, log in.
- Per address, over any accounts: after LOGIN_ADDRESS_FAILURE_LIMIT failures within the window
  the address is locked until the window ends (one place guessing many accounts).
- Per account, over any addresses: after LOGIN_ACCOUNT_FAILURE_LIMIT failures within the
  window the account takes at most one attempt per LOGIN_ACCOUNT_DELAY_SECONDS, a delay that
  slows a distributed guess; addresses the account logged in from (in the last 30 days) are
  exempt, so an attacker cannot shut the owner out.
A success clears its pair's count and lock; the address's and the account's counts stay.
"""

import hashlib

from django.conf import settings

from imageclass.cache import redis_client

PREFIX = "imageclass:login:"
KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600


class LockedOut(Exception):
    def __init__(self, seconds: int):
        super().__init__(f"locked out for {seconds} s")
        self.seconds = seconds


def client_address(request) -> str:
    # REMOTE_ADDR only: a forwarded-for header is client-controlled unless a trusted proxy
    # sets it, and the production proxy configuration rewrites REMOTE_ADDR itself.
    return request.META.get("REMOTE_ADDR", "unknown")


def digest(identifier: str) -> str:
    """A username or email as a key part: case and surrounding spaces ignored, never stored
    in clear."""
    return hashlib.sha256(identifier.strip().lower().encode()).hexdigest()[:32]


class Keys:
    def __init__(self, username: str, address: str):
        account = digest(username)
        self.pair = f"{PREFIX}pair:{account}:{address}"
        self.pair_lock = f"{PREFIX}pair-lock:{account}:{address}"
        self.address = f"{PREFIX}address:{address}"
        self.account = f"{PREFIX}account:{account}"
        self.account_slot = f"{PREFIX}account-slot:{account}"
        self.known = f"{PREFIX}known:{account}:{address}"


def redis():
    return redis_client(settings.REDIS_URL)


def seconds_locked(keys: Keys) -> int:
    """Seconds until this pair may try again (0: now). Takes the account's slot when the
    account is being slowed, so that a check that passes is the attempt's own."""
    window = settings.LOGIN_LOCKOUT_SECONDS
    with redis().pipeline(transaction=False) as pipe:
        pipe.ttl(keys.pair_lock).get(keys.address).ttl(keys.address).get(keys.account).exists(
            keys.known
        )
        pair_ttl, address_failures, address_ttl, account_failures, known = pipe.execute()
    if pair_ttl > 0:
        return pair_ttl
    if int(address_failures or 0) >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
        return max(address_ttl, 1) if address_ttl > 0 else window
    if int(account_failures or 0) >= settings.LOGIN_ACCOUNT_FAILURE_LIMIT and not known:
        if not redis().set(keys.account_slot, 1, ex=settings.LOGIN_ACCOUNT_DELAY_SECONDS, nx=True):
            return max(redis().ttl(keys.account_slot), 1)
    return 0


def record_failure(keys: Keys) -> None:
    window = settings.LOGIN_LOCKOUT_SECONDS
    with redis().pipeline() as pipe:  # MULTI: a count and its expiry are set together
        for key in (keys.pair, keys.address, keys.account):
            pipe.set(key, 0, ex=window, nx=True).incr(key)
        pair_failures = pipe.execute()[1]
    over = pair_failures - settings.LOGIN_FAILURE_LIMIT
    if over >= 0:
        lock = min(
            settings.LOGIN_PAIR_LOCK_SECONDS * 2 ** min(over, 20), settings.LOGIN_LOCKOUT_SECONDS
        )
        redis().set(keys.pair_lock, 1, ex=lock)


def record_success(keys: Keys) -> None:
    with redis().pipeline() as pipe:
        pipe.delete(keys.pair, keys.pair_lock).set(
            keys.known, 1, ex=KNOWN_ADDRESS_SECONDS
        ).execute()


def attempt(username: str, address: str, check):
    """Run the credential check `check()` under the rules: refuse (LockedOut) while locked;
    count a failure when it returns None or raises; on success, clear the pair."""
    keys = Keys(username, address)
    wait = seconds_locked(keys)
    if wait:
        raise LockedOut(wait)
    try:
        result = check()
    except Exception:
        record_failure(keys)
        raise
    if result is None:
        record_failure(keys)
    else:
        record_success(keys)
    return result
